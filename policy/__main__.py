"""The guardrail policy pack: `pulumi preview --policy-pack policy` (CI runs it on every preview)."""

from guardrails import POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(
    name="clipper-guardrails",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=list(POLICIES),
)
