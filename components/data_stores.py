"""What every managed data store of the stack shares: a cluster in the VPC with a maintenance
window and the stack's tag, and a firewall that trusts droplet tags only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_digitalocean as do


@dataclass(frozen=True)
class ClusterArgs:
    """What every managed data store is given: its shape, network, maintenance window, and
    the droplet tags it trusts. `ManagedPostgresArgs` and `ManagedValkeyArgs` extend it."""

    environment: str
    region: str
    version: str
    size: str
    node_count: int
    vpc_id: pulumi.Input[str]
    maintenance_day: str
    maintenance_hour: str
    trusted_tags: tuple[pulumi.Input[str], ...]


def managed_cluster(
    name: str,
    parent: pulumi.Resource,
    args: ClusterArgs,
    *,
    engine: str,
    label: str,
    opts: pulumi.ResourceOptions,
    **engine_inputs: Any,
) -> do.DatabaseCluster:
    """`<name>-cluster`: a DigitalOcean database cluster on the stack's private network."""
    return do.DatabaseCluster(
        f"{name}-cluster",
        name=f"clipper-{args.environment}-{label}",
        engine=engine,
        version=args.version,
        size=args.size,
        node_count=args.node_count,
        region=args.region,
        private_network_uuid=args.vpc_id,
        maintenance_windows=[
            do.DatabaseClusterMaintenanceWindowArgs(
                day=args.maintenance_day, hour=args.maintenance_hour
            )
        ],
        tags=[f"clipper-{args.environment}"],
        opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=parent), opts),
        **engine_inputs,
    )


def trust_only_tags(
    name: str,
    parent: pulumi.Resource,
    cluster_id: pulumi.Input[str],
    tags: Sequence[pulumi.Input[str]],
) -> do.DatabaseFirewall:
    """`<name>-firewall`: only droplets carrying one of `tags` may connect."""
    return do.DatabaseFirewall(
        f"{name}-firewall",
        cluster_id=cluster_id,
        rules=[do.DatabaseFirewallRuleArgs(type="tag", value=t) for t in tags],
        opts=pulumi.ResourceOptions(parent=parent),
    )
