"""Managed Valkey (DigitalOcean retired managed Redis in 2025): the cluster, its settings, its
firewall, and the CA certificate each app host's TLS tunnel verifies it against."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_digitalocean as do

from components.data_stores import ClusterArgs, managed_cluster, trust_only_tags
from components.renames import formerly
from components.settings import CacheSettings, DatabaseSettings, IdentitySettings

TUNNEL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class ManagedValkeyArgs:
    """The stack, the cache's settings (shape, eviction, persistence, tunnel port), the network
    it lives in and the droplet tags it trusts."""

    identity: IdentitySettings
    cache: CacheSettings
    # The data stores share one maintenance window and one protection switch: the database's.
    database: DatabaseSettings
    vpc_id: pulumi.Input[str]
    trusted_tags: tuple[pulumi.Input[str], ...]

    def cluster(self) -> ClusterArgs:
        """What data_stores.managed_cluster takes, from these settings."""
        cache, db = self.cache, self.database
        return ClusterArgs(
            environment=self.identity.environment, region=self.identity.region,
            version=cache.cache_version, size=cache.cache_size, node_count=cache.cache_node_count,
            vpc_id=self.vpc_id, maintenance_day=db.db_maintenance_day,
            maintenance_hour=db.db_maintenance_hour, trusted_tags=self.trusted_tags,
        )  # fmt: skip


class ManagedValkey(pulumi.ComponentResource):
    """A DigitalOcean Valkey cluster, TLS only, reachable from the tagged droplets.

    Attributes:
    - `cluster_id`, `cluster_urn`;
    - the cluster, for the tunnel: `host` (private host name), `port`, `ca_certificate` (PEM,
      DigitalOcean's CA for the cluster; not secret);
    - the login: `user` ("default"), `password` (secret);
    - what the backend's REDIS_HOST/REDIS_PORT must be: `app_host` ("127.0.0.1") and `app_port`
      (the tunnel's loopback port) — the app's client cannot speak TLS;
    - `uri` (secret): `rediss://` URI of the cluster over the private network.
    """

    cluster_id: pulumi.Output[str]
    cluster_urn: pulumi.Output[str]
    host: pulumi.Output[str]
    port: pulumi.Output[int]
    ca_certificate: pulumi.Output[str]
    user: pulumi.Output[str]
    password: pulumi.Output[str]
    app_host: str
    app_port: int
    uri: pulumi.Output[str]

    def __init__(
        self, name: str, args: ManagedValkeyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            "clipper:cache:ManagedValkey", name, None, formerly("clipper:data:ManagedValkey", opts)
        )
        child = pulumi.ResourceOptions(parent=self)
        cache = args.cache
        cluster = managed_cluster(
            name, self, args.cluster(), engine="valkey", label="valkey",
            opts=pulumi.ResourceOptions(protect=args.database.db_protect),
            eviction_policy=cache.cache_eviction_policy,
        )  # fmt: skip
        do.DatabaseValkeyConfig(
            f"{name}-settings",
            cluster_id=cluster.id,
            ssl=True,
            persistence=cache.cache_persistence,
            opts=child,
        )
        trust_only_tags(name, self, cluster.id, args.trusted_tags)
        ca = do.get_database_ca_output(
            cluster_id=cluster.id, opts=pulumi.InvokeOutputOptions(parent=self)
        )

        self.cluster_id = cluster.id
        self.cluster_urn = cluster.cluster_urn
        self.host = cluster.private_host
        self.port = cluster.port
        self.ca_certificate = ca.certificate
        self.user = cluster.user
        self.password = pulumi.Output.secret(cluster.password)
        self.app_host = TUNNEL_HOST
        self.app_port = cache.cache_tunnel_port
        self.uri = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.user, cluster.password, cluster.private_host, cluster.port
            ).apply(
                lambda v: f"rediss://{quote(v[0], safe='')}:{quote(v[1], safe='')}@{v[2]}:{v[3]}"
            )
        )
        self.register_outputs({"cluster_id": self.cluster_id, "host": self.host})
