"""The cloud firewall in front of the app droplets (DigitalOcean applies it before traffic reaches
the host; UFW on the host repeats the same policy as a second layer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

from components.host.layout import ALLOY_HTTP_PORT, NODE_EXPORTER_PORT
from components.renames import formerly
from components.settings import IdentitySettings, NetworkSettings

EVERYWHERE: tuple[str, str] = ("0.0.0.0/0", "::/0")
# Every port of a protocol, in the form the provider reads back (provider_normalisations).
ALL_PORTS = "all"
# Scrape ports on the app hosts: node_exporter, and Alloy's (request metrics from the access log).
EXPORTER_PORTS: tuple[int, ...] = (NODE_EXPORTER_PORT, ALLOY_HTTP_PORT)


@dataclass(frozen=True)
class AppFirewallArgs:
    """Who may reach the app droplets (selected by `droplet_tag`) on which port: the admin
    networks and the VPC come from `network`."""

    identity: IdentitySettings
    network: NetworkSettings
    droplet_tag: pulumi.Input[str]
    # With a load balancer, web traffic is accepted from it only; None: from the internet.
    load_balancer_id: pulumi.Input[str] | None = None
    monitoring_sources: tuple[str, ...] = ()  # extra scrape sources (the VPC is always one)


def _tcp(
    port: int | str,
    *,
    addresses: Sequence[str] = (),
    load_balancers: Sequence[pulumi.Input[str]] = (),
) -> do.FirewallInboundRuleArgs:
    return do.FirewallInboundRuleArgs(
        protocol="tcp",
        port_range=str(port),
        source_addresses=list(addresses) or None,
        source_load_balancer_uids=list(load_balancers) or None,
    )


class AppFirewall(pulumi.ComponentResource):
    """Inbound: SSH (22) only from the admin networks; 80/443 from the internet, or only 80 from
    the load balancer when there is one (TLS ends there); exporter ports only from the VPC (and
    any extra monitoring sources). Outbound: anything (packages, images, the Twitch API).

    Attributes: `firewall_id`.
    """

    firewall_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: AppFirewallArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            "clipper:firewall:AppFirewall",
            name,
            None,
            formerly("clipper:network:AppFirewall", opts),
        )
        inbound = [_tcp(22, addresses=args.network.admin_cidrs)]
        if args.load_balancer_id is None:
            inbound += [_tcp(80, addresses=EVERYWHERE), _tcp(443, addresses=EVERYWHERE)]
        else:
            inbound.append(_tcp(80, load_balancers=[args.load_balancer_id]))
        scrapers = (args.network.vpc_ip_range, *args.monitoring_sources)
        inbound += [_tcp(port, addresses=scrapers) for port in EXPORTER_PORTS]

        outbound = [
            do.FirewallOutboundRuleArgs(
                protocol=protocol,
                port_range=None if protocol == "icmp" else ALL_PORTS,
                destination_addresses=list(EVERYWHERE),
            )
            for protocol in ("tcp", "udp", "icmp")
        ]
        firewall = do.Firewall(
            f"{name}-firewall",
            name=f"clipper-{args.identity.environment}-app",
            tags=[args.droplet_tag],
            inbound_rules=inbound,
            outbound_rules=outbound,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.firewall_id = firewall.id
        self.register_outputs({"firewall_id": self.firewall_id})
