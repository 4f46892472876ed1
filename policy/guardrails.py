"""Guardrails as plain functions: resource properties in, violations out.

Each `check_*` returns the list of problems with one resource's properties (empty when it
complies), so tests call them directly; `POLICIES` wraps them for Pulumi CrossGuard. Property
names are the provider's camelCase input names, as the policy engine sees them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import ResourceValidationArgs, ResourceValidationPolicy

Props = Mapping[str, Any]
Check = Callable[[Props, bool], list[str]]

FIREWALL = "digitalocean:index/firewall:Firewall"
DROPLET = "digitalocean:index/droplet:Droplet"
DATABASE_CLUSTER = "digitalocean:index/databaseCluster:DatabaseCluster"
DATABASE_FIREWALL = "digitalocean:index/databaseFirewall:DatabaseFirewall"
LOAD_BALANCER = "digitalocean:index/loadBalancer:LoadBalancer"

_EVERYWHERE = {"0.0.0.0/0", "::/0"}
# Shapes of secret material that must never reach droplet user-data.
_SECRET_SHAPES = [
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b(DB|REDIS)_PASSWORD\s*=\s*\S"),
    re.compile(r"\b(TWITCH_CLIENT_SECRET|MFA_ENCRYPTION_KEY|JWT_PRIVATE_KEY)\s*=\s*\S"),
    re.compile(r"postgres(ql)?://[^:/\s]+:[^@\s]+@"),
    re.compile(r"rediss?://[^:/\s]*:[^@\s]+@"),
]


def _ports(rule: Props) -> set[int]:
    text = str(rule.get("portRange", "") or "")
    if text in ("", "all", "1-65535"):
        return set(range(1, 65536)) if text else set()
    low, _, high = text.partition("-")
    return set(range(int(low), int(high or low) + 1))


def check_no_ssh_from_the_internet(props: Props, protected: bool) -> list[str]:
    """A droplet firewall never opens SSH (22) to every address."""
    problems = []
    for rule in props.get("inboundRules") or []:
        sources = set(rule.get("sourceAddresses") or [])
        if 22 in _ports(rule) and sources & _EVERYWHERE:
            problems.append(
                f"inbound rule {rule.get('portRange')} opens SSH to {sorted(sources & _EVERYWHERE)}"
            )
    return problems


def check_only_web_ports_from_the_internet(props: Props, protected: bool) -> list[str]:
    """Nothing but 80/443 (and ICMP) is reachable from every address."""
    problems = []
    for rule in props.get("inboundRules") or []:
        if rule.get("protocol") == "icmp":
            continue
        if set(rule.get("sourceAddresses") or []) & _EVERYWHERE:
            extra = _ports(rule) - {80, 443}
            if extra:
                problems.append(f"port(s) {rule.get('portRange')} open to the internet")
    return problems


def check_database_firewall_trusts_tags(props: Props, protected: bool) -> list[str]:
    """Database and cache firewalls trust droplet tags (or droplets), never address ranges."""
    return [
        f"rule {rule.get('type')}={rule.get('value')} trusts an address, not a tag"
        for rule in props.get("rules") or []
        if rule.get("type") not in ("tag", "droplet")
    ]


def check_droplet_is_monitored_and_clean(props: Props, protected: bool) -> list[str]:
    """Droplets run the monitoring agent and carry no secret in user-data."""
    problems = [] if props.get("monitoring") else ["monitoring agent is off"]
    user_data = str(props.get("userData") or "")
    problems += [
        f"user-data contains secret material ({shape.pattern})"
        for shape in _SECRET_SHAPES
        if shape.search(user_data)
    ]
    return problems


def check_database_is_private_and_protected(props: Props, protected: bool) -> list[str]:
    """Clusters live in the VPC; a cluster tagged for production is protected."""
    problems = [] if props.get("privateNetworkUuid") else ["not attached to the stack's VPC"]
    tags = [str(t) for t in props.get("tags") or []]
    if any("production" in t for t in tags) and not protected:
        problems.append("a production cluster must be declared with protect=True")
    return problems


def check_load_balancer_serves_https_only(props: Props, protected: bool) -> list[str]:
    """The load balancer redirects HTTP to HTTPS and checks the app's readiness."""
    problems = [] if props.get("redirectHttpToHttps") else ["HTTP is not redirected to HTTPS"]
    health = props.get("healthcheck") or {}
    if health.get("path") != "/health/ready":
        problems.append(f"health check path is {health.get('path')!r}, not '/health/ready'")
    if not any(r.get("entryProtocol") == "https" for r in props.get("forwardingRules") or []):
        problems.append("no HTTPS forwarding rule")
    return problems


RULES: dict[str, tuple[str, str, Check]] = {
    "no-ssh-from-the-internet": (FIREWALL, "SSH only from admin networks", check_no_ssh_from_the_internet),
    "only-web-ports-from-the-internet": (FIREWALL, "only 80/443 are public", check_only_web_ports_from_the_internet),
    "database-firewall-trusts-tags": (DATABASE_FIREWALL, "data stores trust tags", check_database_firewall_trusts_tags),
    "droplet-monitored-no-secrets": (DROPLET, "monitored droplets, clean user-data", check_droplet_is_monitored_and_clean),
    "database-private-and-protected": (DATABASE_CLUSTER, "private, protected data", check_database_is_private_and_protected),
    "load-balancer-https-only": (LOAD_BALANCER, "HTTPS-only load balancer", check_load_balancer_serves_https_only),
}  # fmt: skip


def problems_for(resource_type: str, props: Props, protected: bool = False) -> dict[str, list[str]]:
    """Every policy's problems with one resource (policies for other types are skipped)."""
    return {
        name: check(props, protected)
        for name, (typ, _, check) in RULES.items()
        if typ == resource_type and check(props, protected)
    }


def _policy(name: str, typ: str, description: str, check: Check) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: Callable[[str, str | None], None]) -> None:
        if args.resource_type == typ:
            for problem in check(args.props, bool(args.opts.protect)):
                report(problem, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate)


POLICIES = tuple(_policy(name, typ, desc, check) for name, (typ, desc, check) in RULES.items())
