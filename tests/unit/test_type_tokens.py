"""Type tokens name their module: a component's type is `clipper:<module>:<Class>`, where
<module> is the module or package directly under components/ that defines the class, so the
plan and the Pulumi console say where each component's code lives. Components whose token
changed carry their old token as an alias (components/renames.py), so `pulumi up` moves their
state (and their children's) instead of replacing them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.program import stack_run

COMPONENTS = Path(__file__).resolve().parents[2] / "components"

# The tokens renamed when they were made to match their modules: the plan must alias each.
RENAMED = {
    "clipper:alerts:Alerts": "clipper:monitoring:Alerts",
    "clipper:app_secrets:AppSecrets": "clipper:secrets:AppSecrets",
    "clipper:app_servers:AppHostTags": "clipper:compute:AppHostTags",
    "clipper:app_servers:AppServers": "clipper:compute:AppServers",
    "clipper:cache:ManagedValkey": "clipper:data:ManagedValkey",
    "clipper:database:ManagedPostgres": "clipper:data:ManagedPostgres",
    "clipper:deploy_key:DeployKey": "clipper:access:DeployKey",
    "clipper:entry:Entry": "clipper:edge:Entry",
    "clipper:firewall:AppFirewall": "clipper:network:AppFirewall",
    "clipper:host:HostKeys": "clipper:compute:HostKeys",
}


def _declared_tokens() -> list[tuple[Path, str, str]]:
    """(file, class, token) for every ComponentResource subclass under components/."""
    found = []
    for path in sorted(COMPONENTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            if not any(ast.unparse(base).endswith("ComponentResource") for base in node.bases):
                continue
            tokens = [
                c.value
                for c in ast.walk(node)
                if isinstance(c, ast.Constant)
                and isinstance(c.value, str)
                and c.value.startswith("clipper:")
                and c.value.count(":") == 2
            ]
            found.append((path, node.name, tokens[0] if tokens else ""))
    return found


def test_every_component_declares_a_token_named_after_its_module_and_class() -> None:
    declared = _declared_tokens()
    assert len(declared) >= 15  # the walk found the components
    for path, cls, token in declared:
        module = path.relative_to(COMPONENTS).parts[0].removesuffix(".py")
        assert token == f"clipper:{module}:{cls}", f"{path.name}: {cls} declares {token!r}"


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_each_renamed_component_is_aliased_to_its_old_token(stack: str) -> None:
    run = stack_run(stack)
    aliased = {r.type: r.alias_types for r in run.registrations if r.type.startswith("clipper:")}
    for new, old in RENAMED.items():
        assert aliased[new] == (old,), f"{new} must alias {old}"
    unrenamed = {t: a for t, a in aliased.items() if t not in RENAMED and a}
    assert unrenamed == {}, "an alias nobody documented"
