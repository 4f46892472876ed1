"""The stack's public entry point: a reserved IP on the one droplet, or a load balancer in front of
several (with a DigitalOcean-managed Let's Encrypt certificate)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

from components.renames import formerly
from components.settings import EdgeSettings, IdentitySettings

# DigitalOcean load balancers allow an HTTP idle timeout of 30..600 s.
LB_MAX_IDLE_TIMEOUT_SECONDS = 600
STICKY_COOKIE = "clipper_lb"
HEALTH_PATH = "/health/ready"


@dataclass(frozen=True)
class EntryArgs:
    """The stack, how traffic enters (`edge.edge_entry`: "reserved-ip" | "load-balancer"), and
    the app droplets it fronts."""

    identity: IdentitySettings
    edge: EdgeSettings
    vpc_id: pulumi.Input[str]
    droplet_tag: pulumi.Input[str]
    droplet_ids: Sequence[pulumi.Input[str]]
    # The first droplet's IPv6 address; None: the droplets have no IPv6, so the entry has none.
    droplet_ipv6: pulumi.Input[str] | None = None
    # With a reserved IP: what must finish before the address moves to a (new) droplet, its
    # release's deploy. An ordering only: the assignment's inputs stay known at preview.
    move_after: pulumi.Input[pulumi.Resource] | None = None
    sticky_ttl_seconds: int = 3600


class Entry(pulumi.ComponentResource):
    """Where DNS points.

    Attributes:
    - `ipv4`: the public IPv4 address (the reserved IP, or the load balancer's);
    - `ipv6`: the public IPv6 address for an AAAA record, or None (the droplet's with a reserved
      IP, the load balancer's when it is dual-stack);
    - `resource_urn`: the DigitalOcean URN of the reserved IP or load balancer, for the project;
    - `load_balancer_id`: the load balancer's id (None with a reserved IP), for the firewall.

    The load balancer ends TLS with a managed Let's Encrypt certificate for the domain and www,
    redirects HTTP to HTTPS, forwards to nginx on :80 with PROXY protocol (so nginx sees the
    client address; its health checks use PROXY protocol too), checks `/health/ready`, keeps
    sessions sticky by cookie (watch-party WebSockets live in one backend process) and selects
    droplets by tag, so a replaced droplet joins once it is healthy.
    """

    ipv4: pulumi.Output[str]
    ipv6: pulumi.Output[str] | None
    resource_urn: pulumi.Output[str]
    load_balancer_id: pulumi.Output[str] | None

    def __init__(self, name: str, args: EntryArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("clipper:entry:Entry", name, None, formerly("clipper:edge:Entry", opts))
        mode = args.edge.edge_entry
        if mode == "reserved-ip":
            self._reserved_ip(name, args)
        elif mode == "load-balancer":
            self._load_balancer(name, args)
        else:
            raise ValueError(f"unknown entry mode {mode!r}")
        self.register_outputs({"ipv4": self.ipv4})

    def _reserved_ip(self, name: str, args: EntryArgs) -> None:
        if len(args.droplet_ids) != 1:
            raise ValueError("a reserved IP fronts exactly one droplet; use a load balancer")
        child = pulumi.ResourceOptions(parent=self)
        reserved = do.ReservedIp(f"{name}-reserved-ip", region=args.identity.region, opts=child)
        # A separate assignment: replacing the droplet moves the address, it is never released.
        # It waits for `move_after` (the new droplet's deploy); Pulumi replaces it create-before-
        # delete, and the provider's delete of the old assignment unassigns nothing once the
        # address is on the new droplet (resource_reserved_ip_assignment.go), so the address
        # moves from a serving droplet to a serving droplet.
        after = [args.move_after] if args.move_after is not None else []
        do.ReservedIpAssignment(
            f"{name}-reserved-ip-assignment",
            ip_address=reserved.ip_address,
            droplet_id=pulumi.Output.from_input(args.droplet_ids[0]).apply(int),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )
        self.ipv4 = reserved.ip_address
        self.ipv6 = pulumi.Output.from_input(args.droplet_ipv6) if args.droplet_ipv6 else None
        self.resource_urn = reserved.reserved_ip_urn
        self.load_balancer_id = None

    def _load_balancer(self, name: str, args: EntryArgs) -> None:
        child = pulumi.ResourceOptions(parent=self)
        env, edge = args.identity.environment, args.edge
        ipv6 = args.droplet_ipv6 is not None
        certificate = _managed_certificate(name, args, child)
        lb = do.LoadBalancer(
            f"{name}-lb",
            name=f"clipper-{env}",
            region=args.identity.region,
            vpc_uuid=args.vpc_id,
            size_unit=edge.lb_size_unit,
            network_stack="DUALSTACK" if ipv6 else "IPV4",
            droplet_tag=args.droplet_tag,
            forwarding_rules=_forwarding_rules(certificate.name),
            redirect_http_to_https=True,
            tls_cipher_policy="STRONG",
            enable_proxy_protocol=True,
            enable_backend_keepalive=True,
            http_idle_timeout_seconds=min(
                edge.websocket_read_timeout_seconds, LB_MAX_IDLE_TIMEOUT_SECONDS
            ),
            sticky_sessions=do.LoadBalancerStickySessionsArgs(
                type="cookies",
                cookie_name=STICKY_COOKIE,
                cookie_ttl_seconds=args.sticky_ttl_seconds,
            ),
            healthcheck=_health_check(),
            # DNS records are ours (components/dns.py): the LB must not create its own.
            disable_lets_encrypt_dns_records=True,
            opts=child,
        )
        self.ipv4 = lb.ip
        self.ipv6 = lb.ipv6 if ipv6 else None
        self.resource_urn = lb.load_balancer_urn
        self.load_balancer_id = lb.id


def _managed_certificate(
    name: str, args: EntryArgs, child: pulumi.ResourceOptions
) -> do.Certificate:
    """DigitalOcean's Let's Encrypt certificate for the domain and www."""
    domain = args.identity.domain
    domains = [domain, f"www.{domain}"]
    # The name follows the domains: a new certificate (new name) is created and swapped
    # into the load balancer before the old one, still in use until then, is deleted.
    digest = hashlib.sha256(",".join(domains).encode()).hexdigest()[:8]
    return do.Certificate(
        f"{name}-certificate",
        name=f"clipper-{args.identity.environment}-{digest}",
        type="lets_encrypt",
        domains=domains,
        opts=child,
    )


def _forwarding_rules(
    certificate_name: pulumi.Input[str],
) -> list[do.LoadBalancerForwardingRuleArgs]:
    """HTTPS ends at the load balancer and goes on as HTTP to nginx's :80."""
    return [
        do.LoadBalancerForwardingRuleArgs(
            entry_protocol="https",
            entry_port=443,
            target_protocol="http",
            target_port=80,
            certificate_name=certificate_name,
        ),
        # Only so that :80 exists to redirect; redirect_http_to_https answers it.
        do.LoadBalancerForwardingRuleArgs(
            entry_protocol="http", entry_port=80, target_protocol="http", target_port=80
        ),
    ]


def _health_check() -> do.LoadBalancerHealthcheckArgs:
    """nginx's :80 answering the backend's readiness path (PROXY protocol, like the traffic)."""
    return do.LoadBalancerHealthcheckArgs(
        protocol="http",
        port=80,
        path=HEALTH_PATH,
        check_interval_seconds=10,
        response_timeout_seconds=5,
        unhealthy_threshold=3,
        healthy_threshold=2,
    )
