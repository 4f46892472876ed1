"""Managed PostgreSQL: the cluster, the app's database and user, the connection path, settings,
a firewall that trusts only tagged droplets, and an optional read replica.

How the app connects (`dbConnection`):
- "session-pool" (both stacks): DigitalOcean's PgBouncer in **session** mode. pgx caches named
  prepared statements per connection, which PgBouncer's transaction mode breaks; session mode
  keeps a server connection for the client's whole session, so they are safe. What the pool
  buys: PgBouncer accepts many more client connections than PostgreSQL allows, so during a
  blue-green overlap (two backend processes per host, each with pools of up to 50 connections)
  the new colour's clients queue at the pooler instead of failing with "remaining connection
  slots are reserved"; and the server side stays bounded by `dbPoolSize`, leaving headroom for
  the admin user, migrations, backups and monitoring, which connect directly.
- "direct": the app connects to the primary itself (port 25060). Simplest; fine when the
  cluster's connection limit covers every backend process's pools.
Migrations and extension creation always connect directly (`host`/`port`), not through the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_digitalocean as do

from components.data_stores import ClusterArgs, managed_cluster, trust_only_tags
from components.renames import formerly
from components.settings import DatabaseSettings, IdentitySettings

APP_DATABASE = "clipper"
APP_USER = "clipper"
POOL_NAME = "clipper-app"
SSL_MODE = "require"  # DigitalOcean's clusters accept TLS only; the app supports `require`.


@dataclass(frozen=True)
class ManagedPostgresArgs:
    """The stack, the database's settings (shape, maintenance, protection, connection path),
    the network it lives in and the droplet tags it trusts."""

    identity: IdentitySettings
    database: DatabaseSettings
    vpc_id: pulumi.Input[str]
    trusted_tags: tuple[pulumi.Input[str], ...]

    def cluster(self) -> ClusterArgs:
        """What data_stores.managed_cluster takes, from these settings."""
        db = self.database
        return ClusterArgs(
            environment=self.identity.environment, region=self.identity.region,
            version=db.db_version, size=db.db_size, node_count=db.db_node_count,
            vpc_id=self.vpc_id, maintenance_day=db.db_maintenance_day,
            maintenance_hour=db.db_maintenance_hour, trusted_tags=self.trusted_tags,
        )  # fmt: skip


def _uri(user: str, password: str, host: str, port: int, database: str) -> str:
    return (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}"
        f"/{quote(database, safe='')}?sslmode={SSL_MODE}"
    )


class ManagedPostgres(pulumi.ComponentResource):
    """A DigitalOcean PostgreSQL cluster for the app.

    Attributes (all private-network addresses; secrets are Pulumi secrets):
    - `cluster_id`, `cluster_urn`;
    - direct connection to the primary: `host`, `port`, `database` ("clipper"), `ssl_mode`;
    - the app's login: `app_user` ("clipper"), `app_password` (secret);
    - what the backend's DB_HOST/DB_PORT/DB_NAME must be: `app_host`, `app_port`,
      `app_database` (the pool's host, port and name with "session-pool"; the primary with
      "direct");
    - the pool: `pool_name`, `pool_host`, `pool_port` (None with "direct");
    - the admin (for CREATE EXTENSION and ownership): `admin_user`, `admin_password` (secret),
      `admin_uri` (secret, to the app database);
    - `app_uri` (secret): the app's connection string over the path it uses;
    - `replica_host` (None without a read replica).
    """

    cluster_id: pulumi.Output[str]
    cluster_urn: pulumi.Output[str]
    host: pulumi.Output[str]
    port: pulumi.Output[int]
    database: pulumi.Output[str]
    ssl_mode: str
    app_user: pulumi.Output[str]
    app_password: pulumi.Output[str]
    app_host: pulumi.Output[str]
    app_port: pulumi.Output[int]
    app_database: pulumi.Output[str]
    app_uri: pulumi.Output[str]
    pool_name: pulumi.Output[str] | None
    pool_host: pulumi.Output[str] | None
    pool_port: pulumi.Output[int] | None
    admin_user: pulumi.Output[str]
    admin_password: pulumi.Output[str]
    admin_uri: pulumi.Output[str]
    replica_host: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: ManagedPostgresArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            "clipper:database:ManagedPostgres",
            name,
            None,
            formerly("clipper:data:ManagedPostgres", opts),
        )
        child = pulumi.ResourceOptions(parent=self)
        db = args.database
        cluster = managed_cluster(
            name, self, args.cluster(), engine="pg", label="pg",
            # Production data: a `pulumi destroy` or a bad diff cannot drop it.
            opts=pulumi.ResourceOptions(protect=db.db_protect, retain_on_delete=db.db_protect),
        )  # fmt: skip
        trust_only_tags(name, self, cluster.id, args.trusted_tags)
        do.DatabasePostgresqlConfig(
            f"{name}-settings",
            cluster_id=cluster.id,
            log_min_duration_statement=db.db_slow_query_ms,
            opts=child,
        )
        database = do.DatabaseDb(
            f"{name}-database", cluster_id=cluster.id, name=APP_DATABASE, opts=child
        )
        user = do.DatabaseUser(f"{name}-app-user", cluster_id=cluster.id, name=APP_USER, opts=child)
        self._expose_primary(cluster, database, user)
        self._connect_app(name, db, cluster=cluster, database=database, user=user, child=child)
        self.replica_host = _read_replica(name, args, cluster, child)
        self.register_outputs(
            {
                "cluster_id": self.cluster_id,
                "host": self.host,
                "app_host": self.app_host,
                "app_database": self.app_database,
            }
        )

    def _expose_primary(
        self, cluster: do.DatabaseCluster, database: do.DatabaseDb, user: do.DatabaseUser
    ) -> None:
        """The primary's address, the app's login and the admin's, as attributes."""
        self.cluster_id = cluster.id
        self.cluster_urn = cluster.cluster_urn
        self.host = cluster.private_host
        self.port = cluster.port
        self.database = database.name
        self.ssl_mode = SSL_MODE
        self.app_user = user.name
        self.app_password = pulumi.Output.secret(user.password)
        self.admin_user = cluster.user
        self.admin_password = pulumi.Output.secret(cluster.password)
        self.admin_uri = pulumi.Output.secret(
            pulumi.Output.all(
                cluster.user, cluster.password, cluster.private_host, cluster.port, database.name
            ).apply(lambda v: _uri(v[0], v[1], v[2], int(v[3]), v[4]))
        )

    def _connect_app(
        self,
        name: str,
        db: DatabaseSettings,
        *,
        cluster: do.DatabaseCluster,
        database: do.DatabaseDb,
        user: do.DatabaseUser,
        child: pulumi.ResourceOptions,
    ) -> None:
        """The app's connection path (`dbConnection`): the session pool, or the primary."""
        self.pool_name = self.pool_host = self.pool_port = None
        if db.db_connection == "session-pool":
            pool = do.DatabaseConnectionPool(
                f"{name}-pool",
                cluster_id=cluster.id,
                name=POOL_NAME,
                mode="session",
                size=db.db_pool_size,
                db_name=database.name,
                user=user.name,
                opts=child,
            )
            self.pool_name, self.pool_host, self.pool_port = pool.name, pool.private_host, pool.port
            self.app_host, self.app_port, self.app_database = (
                pool.private_host,
                pool.port,
                pool.name,
            )
        elif db.db_connection == "direct":
            self.app_host, self.app_port, self.app_database = self.host, self.port, self.database
        else:
            raise ValueError(f"unknown connection {db.db_connection!r}")
        self.app_uri = pulumi.Output.secret(
            pulumi.Output.all(
                user.name, user.password, self.app_host, self.app_port, self.app_database
            ).apply(lambda v: _uri(v[0], v[1], v[2], int(v[3]), v[4]))
        )


def _read_replica(
    name: str, args: ManagedPostgresArgs, cluster: do.DatabaseCluster, child: pulumi.ResourceOptions
) -> pulumi.Output[str] | None:
    """The optional read replica in the same VPC; its private host, or None without one."""
    db, env = args.database, args.identity.environment
    if not db.db_read_replica:
        return None
    replica = do.DatabaseReplica(
        f"{name}-replica",
        cluster_id=cluster.id,
        name=f"clipper-{env}-pg-replica",
        size=db.db_read_replica_size,
        region=args.identity.region,
        private_network_uuid=args.vpc_id,
        tags=[f"clipper-{env}"],
        opts=child,
    )
    return replica.private_host
