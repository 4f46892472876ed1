"""The guardrail policies, as functions: each fires on a bad resource, and both stacks pass."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from pulumi_policy import PolicyResourceOptions, ResourceValidationArgs

from components.offline.runner import PROJECT_DIR
from tests.support.program import plain, stack_run

sys.path.insert(0, str(PROJECT_DIR / "policy"))
import guardrails  # the policy pack is its own Pulumi project, not a package

SSH_RULE = {"protocol": "tcp", "portRange": "22", "sourceAddresses": ["203.0.113.0/24"]}
WEB_RULE = {"protocol": "tcp", "portRange": "443", "sourceAddresses": ["0.0.0.0/0", "::/0"]}
GOOD_LB = {
    "redirectHttpToHttps": True,
    "healthcheck": {"path": "/health/ready", "protocol": "http", "port": 80},
    "forwardingRules": [{"entryProtocol": "https", "entryPort": 443, "targetProtocol": "http"}],
}


def test_ssh_open_to_the_internet_is_refused() -> None:
    bad = {"inboundRules": [SSH_RULE, {**SSH_RULE, "sourceAddresses": ["::/0"]}]}
    assert "no-ssh-from-the-internet" in guardrails.problems_for(guardrails.FIREWALL, bad)
    good = {"inboundRules": [SSH_RULE, WEB_RULE]}
    assert guardrails.problems_for(guardrails.FIREWALL, good) == {}


def test_a_port_range_covering_ssh_counts_as_ssh() -> None:
    bad = {
        "inboundRules": [
            {"protocol": "tcp", "portRange": "1-1024", "sourceAddresses": ["0.0.0.0/0"]}
        ]
    }
    problems = guardrails.problems_for(guardrails.FIREWALL, bad)
    assert "no-ssh-from-the-internet" in problems
    assert "only-web-ports-from-the-internet" in problems


def test_an_exporter_port_open_to_the_internet_is_refused() -> None:
    bad = {
        "inboundRules": [{"protocol": "tcp", "portRange": "9100", "sourceAddresses": ["0.0.0.0/0"]}]
    }
    assert "only-web-ports-from-the-internet" in guardrails.problems_for(guardrails.FIREWALL, bad)


def test_a_database_firewall_trusting_an_address_is_refused() -> None:
    bad = {"rules": [{"type": "ip_addr", "value": "0.0.0.0/0"}]}
    assert "database-firewall-trusts-tags" in guardrails.problems_for(
        guardrails.DATABASE_FIREWALL, bad
    )
    good = {"rules": [{"type": "tag", "value": "clipper-production-app"}]}
    assert guardrails.problems_for(guardrails.DATABASE_FIREWALL, good) == {}


@pytest.mark.parametrize(
    "user_data",
    [
        "write_files:\n- content: |\n    -----BEGIN OPENSSH PRIVATE KEY-----\n",
        "runcmd:\n- echo DB_PASSWORD=hunter2 > /etc/clipper/backend.env\n",
        "runcmd:\n- psql postgresql://doadmin:s3cret@db.example.com:25060/defaultdb\n",
        "runcmd:\n- redis-cli -u rediss://default:s3cret@cache:25061\n",
        "write_files:\n- content: MFA_ENCRYPTION_KEY=abc\n",
    ],
)
def test_secret_material_in_user_data_is_refused(user_data: str) -> None:
    problems = guardrails.problems_for(
        guardrails.DROPLET, {"monitoring": True, "userData": user_data}
    )
    assert "droplet-monitored-no-secrets" in problems


def test_a_droplet_without_monitoring_is_refused() -> None:
    problems = guardrails.problems_for(
        guardrails.DROPLET, {"monitoring": False, "userData": "#cloud-config\n"}
    )
    assert problems["droplet-monitored-no-secrets"] == ["monitoring agent is off"]


def test_an_unprotected_production_database_is_refused() -> None:
    props = {"privateNetworkUuid": "vpc-1", "tags": ["clipper-production"]}
    assert "database-private-and-protected" in guardrails.problems_for(
        guardrails.DATABASE_CLUSTER, props
    )
    assert guardrails.problems_for(guardrails.DATABASE_CLUSTER, props, protected=True) == {}
    public = {"tags": ["clipper-staging"]}
    assert guardrails.problems_for(guardrails.DATABASE_CLUSTER, public) == {
        "database-private-and-protected": ["not attached to the stack's VPC"]
    }


def test_a_load_balancer_must_redirect_and_check_readiness() -> None:
    assert guardrails.problems_for(guardrails.LOAD_BALANCER, GOOD_LB) == {}
    bad = {**GOOD_LB, "redirectHttpToHttps": False, "healthcheck": {"path": "/"}}
    assert (
        len(guardrails.problems_for(guardrails.LOAD_BALANCER, bad)["load-balancer-https-only"]) == 2
    )


def test_the_crossguard_wrapper_reports_what_the_function_finds() -> None:
    policy = next(p for p in guardrails.POLICIES if p.name == "no-ssh-from-the-internet")
    reported: list[str] = []
    args = ResourceValidationArgs(
        resource_type=guardrails.FIREWALL,
        props={"inboundRules": [{**SSH_RULE, "sourceAddresses": ["0.0.0.0/0"]}]},
        urn="urn:pulumi:production::clipper-infra::digitalocean:index/firewall:Firewall::fw",
        name="fw", opts=PolicyResourceOptions(False, [], False, [], None, []),  # type: ignore[arg-type]
        provider=None,
    )  # fmt: skip
    policy.validate(args, lambda message, urn: reported.append(message))
    assert reported and "opens SSH" in reported[0]


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_every_resource_of_the_stack_passes_the_guardrails(stack: str) -> None:
    run = stack_run(stack)
    failures: dict[str, Any] = {}
    for reg in run.registrations:
        problems = guardrails.problems_for(reg.type, plain(reg.inputs), protected=reg.protect)
        if problems:
            failures[reg.name] = problems
    assert failures == {}
