"""DigitalOcean's rules that the provider schema cannot express, each with where it comes from.

The provider's schema (checked by tests/unit/test_provider_schema.py) accepts a replica smaller
than its primary, a standby on the smallest plan or a pool larger than the cluster's connection
limit; the DigitalOcean API refuses them half way through `pulumi up`. Each rule here is one
entry of `RULES`: the config keys it ties, the rule in words, its source (a DigitalOcean docs
page, or a file of terraform-provider-digitalocean / godo, which pulumi-digitalocean bridges),
and a pure check that `settings.parse_settings` runs before any resource is declared.

Values the program itself declares (uptime alert periods, the load balancer's idle timeout) are
constants here too, so the components and the tests use the same allowed set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from components.settings import slugs

if TYPE_CHECKING:
    from components.settings import Settings

PROJECT = "clipper-infra"
TF = "terraform-provider-digitalocean"
DOCS = "https://docs.digitalocean.com"

# digitalocean/uptime/resource_uptime_alert.go: `period` ValidateFunc; godo's
# CreateUptimeAlertRequest sends `period` without omitempty, so unset means "".
UPTIME_ALERT_PERIODS: frozenset[str] = frozenset({"2m", "3m", "5m", "10m", "15m", "30m", "1h"})
# DigitalOcean load balancer API, `http_idle_timeout_seconds`: 30..600 (docs, "Load Balancer
# settings"); the provider only passes it on.
LB_IDLE_TIMEOUT_SECONDS: tuple[int, int] = (30, 600)
# https://docs.digitalocean.com/products/databases/postgresql/details/limits/: "Each cluster is
# limited to 3 nodes" (a primary and up to two standbys).
MAX_STANDBY_NODES = 2
# Standby nodes: "with the exception of the smallest plan" (databases docs); the smallest plans
# are 1 GiB, so standbys need 2 GiB or more.
STANDBY_MIN_MEMORY_GIB = 2
# Database firewalls: "up to 100 IP addresses as trusted sources" (PostgreSQL limits page); a
# droplet counts twice (public and private address). A tag rule counts every tagged droplet.
TRUSTED_SOURCE_ADDRESSES = 100
ADDRESSES_PER_DROPLET = 2
RFC1918: tuple[ipaddress.IPv4Network, ...] = tuple(
    ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


def size_shape(slug: str) -> tuple[int, int]:
    """(vCPUs, GiB of RAM) of a database size slug such as db-s-4vcpu-8gb or gd-2vcpu-8gb."""
    parts = slug.split("-")
    vcpus = next(int(p.removesuffix("vcpu")) for p in parts if p.endswith("vcpu"))
    return vcpus, slugs.DATABASE_MEMORY_GIB[slug]


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


# ---------------------------------------------------------------- the checks (pure)


def _replica_size(s: Settings) -> str | None:
    if not s.db_read_replica:
        return None
    replica, primary = size_shape(s.db_read_replica_size), size_shape(s.db_size)
    if replica[0] >= primary[0] and replica[1] >= primary[1]:
        return None
    return (
        f'{_key("dbReadReplicaSize")} = "{s.db_read_replica_size}" is smaller than'
        f' {_key("dbSize")} = "{s.db_size}": a read-only node must be the same size or larger'
        " than its primary; allowed: a size with at least the primary's vCPUs and memory"
    )


def _standby_nodes(key: str, size_key: str, count: int, size: str) -> str | None:
    if count - 1 > MAX_STANDBY_NODES:
        return f"{_key(key)} = {count}: at most {MAX_STANDBY_NODES} standby nodes (3 nodes)"
    if count > 1 and slugs.DATABASE_MEMORY_GIB[size] < STANDBY_MIN_MEMORY_GIB:
        return (
            f'{_key(key)} = {count} with {_key(size_key)} = "{size}": standby nodes need a plan'
            f" with {STANDBY_MIN_MEMORY_GIB} GiB or more; allowed: {key} 1, or a larger size"
        )
    return None


def _database_standbys(s: Settings) -> str | None:
    return _standby_nodes("dbNodeCount", "dbSize", s.db_node_count, s.db_size)


def _cache_standbys(s: Settings) -> str | None:
    return _standby_nodes("cacheNodeCount", "cacheSize", s.cache_node_count, s.cache_size)


def _pool_sizes(s: Settings) -> str | None:
    limit = slugs.postgres_connection_limit(s.db_size)
    pools = s.db_pool_size if s.db_connection == "session-pool" else 0
    allowed = limit - slugs.POSTGRES_DIRECT_HEADROOM
    if pools <= allowed:
        return None
    return (
        f"{_key('dbPoolSize')} = {s.db_pool_size}: dbSize {s.db_size} allows {limit}"
        f" connections (25 per GiB minus 3) for all pools together, and"
        f" {slugs.POSTGRES_DIRECT_HEADROOM} stay free for admin, migrations and monitoring;"
        f" allowed: at most {allowed} (or a larger dbSize)"
    )


def vpc_range_problem(value: str) -> str | None:
    """Why `value` is not a VPC range DigitalOcean accepts, or None."""
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        return f"not a CIDR network such as 10.110.0.0/20 ({err})"
    private = isinstance(network, ipaddress.IPv4Network) and any(
        network.subnet_of(block) for block in RFC1918
    )
    if not (private and 16 <= network.prefixlen <= 24):
        return "allowed: a private IPv4 range from /16 to /24 (RFC 1918)"
    return None


def _idle_timeout(s: Settings) -> str | None:
    low, high = LB_IDLE_TIMEOUT_SECONDS
    if not s.uses_load_balancer or low <= lb_idle_timeout(s) <= high:
        return None
    return (
        f"{_key('websocketReadTimeoutSeconds')} = {s.websocket_read_timeout_seconds}: the load"
        f" balancer's idle timeout follows it and must be {low}..{high} s"
    )


def lb_idle_timeout(s: Settings) -> int:
    """The load balancer's HTTP idle timeout: the WebSocket timeout, capped at the API's max."""
    return min(s.websocket_read_timeout_seconds, LB_IDLE_TIMEOUT_SECONDS[1])


def _trusted_sources(s: Settings) -> str | None:
    droplets = s.app_count + (1 if s.monitoring_enabled else 0)
    addresses = droplets * ADDRESSES_PER_DROPLET
    if addresses <= TRUSTED_SOURCE_ADDRESSES:
        return None
    return (
        f"{_key('appCount')} = {s.app_count}: the data stores' trusted sources would hold"
        f" {addresses} addresses ({ADDRESSES_PER_DROPLET} per droplet); DigitalOcean allows"
        f" {TRUSTED_SOURCE_ADDRESSES} without a support request"
    )


def _backup_window(s: Settings) -> str | None:
    if s.app_backup_hour in slugs.BACKUP_HOURS:
        return None
    return f"{_key('appBackupHour')} = {s.app_backup_hour}: allowed: " + ", ".join(
        str(h) for h in sorted(slugs.BACKUP_HOURS)
    )


def _spaces_region(s: Settings) -> str | None:
    if s.effective_backup_region in slugs.SPACES_REGIONS:
        return None
    return (
        f'{_key("backupRegion")} = "{s.backup_region}": region {s.region} has no Spaces object'
        " storage for the backup bucket; allowed: one of " + ", ".join(sorted(slugs.SPACES_REGIONS))
    )


def _lets_encrypt_needs_dns(s: Settings) -> str | None:
    if not s.uses_load_balancer or s.dns_manage_domain:
        return None
    return (
        f'{_key("dnsManageDomain")} = false: edgeEntry "load-balancer" uses a DigitalOcean'
        " Let's Encrypt certificate, which needs the domain in DigitalOcean DNS"
    )


@dataclass(frozen=True)
class ProviderRule:
    """One DigitalOcean rule: what it ties, what is allowed, where it is written, its check."""

    name: str
    keys: tuple[str, ...]
    rule: str
    source: str
    check: Callable[[Settings], str | None] | None  # None: checked per value (see `keys`)


RULES: tuple[ProviderRule, ...] = (
    ProviderRule(
        "replica-at-least-primary", ("dbReadReplicaSize", "dbSize"),
        "a read-only node is the same size as its primary or larger",
        f"{DOCS}/products/databases/postgresql/how-to/add-read-only-nodes/; {TF}"
        " docs/resources/database_replica.md (size can only be increased)",
        _replica_size,
    ),
    ProviderRule(
        "database-standbys", ("dbNodeCount", "dbSize"),
        "at most two standby nodes, and none on a plan under 2 GiB",
        f"{DOCS}/products/databases/ (\"zero, one, or two standby nodes ... with the exception"
        " of the smallest plan\"); .../postgresql/details/limits/ (3 nodes)",
        _database_standbys,
    ),
    ProviderRule(
        "cache-standbys", ("cacheNodeCount", "cacheSize"),
        "the same standby rule for the Valkey cluster",
        f"{DOCS}/products/databases/ (standby nodes, all caching engines)",
        _cache_standbys,
    ),
    ProviderRule(
        "connection-pools-within-limit", ("dbPoolSize", "dbSize"),
        "all connection pools together within 25 connections per GiB of RAM minus 3",
        f"{DOCS}/products/databases/postgresql/details/limits/ (connection limits)",
        _pool_sizes,
    ),
    ProviderRule(
        "vpc-range-private", ("vpcIpRange",),
        "a VPC range is RFC 1918 private IPv4, /16 to /24",
        f"{TF} docs/resources/vpc.md (ip_range); {DOCS}/products/networking/vpc/",
        None,
    ),
    ProviderRule(
        "vpc-ranges-disjoint", ("vpcIpRange",),
        "VPC ranges in one account do not overlap (staging and production share the account)",
        f"{TF} docs/resources/vpc.md (\"cannot overlap with other networks in the same"
        " account\")",
        None,  # cross-stack: `vpc_overlaps`
    ),
    ProviderRule(
        "engine-versions-offered", ("dbVersion", "cacheVersion"),
        "PostgreSQL versions DigitalOcean still offers (14 ended November 2026); Valkey 8",
        f"{DOCS}/products/databases/postgresql/details/supported-versions/;"
        f" {DOCS}/products/databases/valkey/ (slugs.POSTGRES_VERSIONS, VALKEY_VERSIONS)",
        None,
    ),
    ProviderRule(
        "lb-idle-timeout", ("websocketReadTimeoutSeconds",),
        "the load balancer's HTTP idle timeout is 30..600 s",
        f"{DOCS}/products/networking/load-balancers/details/limits/;"
        f" {TF} digitalocean/loadbalancer/resource_loadbalancer.go (passed through)",
        _idle_timeout,
    ),
    ProviderRule(
        "trusted-source-addresses", ("appCount", "monitoringEnabled"),
        "a database firewall trusts at most 100 addresses (2 per droplet)",
        f"{DOCS}/products/databases/postgresql/details/limits/ (trusted sources)",
        _trusted_sources,
    ),
    ProviderRule(
        "droplet-backup-window", ("appBackupHour",),
        "a droplet backup window starts at 0, 4, 8, 12, 16 or 20 UTC",
        "godo droplets.go (BackupPolicy), DigitalOcean API droplet backup_policy.hour enum",
        _backup_window,
    ),
    ProviderRule(
        "spaces-region", ("backupRegion", "region"),
        "the backup bucket's region has Spaces object storage",
        f"{DOCS}/products/spaces/details/availability/",
        _spaces_region,
    ),
    ProviderRule(
        "managed-certificate-needs-dns", ("dnsManageDomain", "edgeEntry"),
        "a Let's Encrypt certificate on a load balancer needs the domain in DigitalOcean DNS",
        f"{TF} docs/resources/certificate.md (type lets_encrypt: domains managed by DO DNS)",
        _lets_encrypt_needs_dns,
    ),
    ProviderRule(
        "uptime-alert-period", (),
        "every uptime alert has a period: 2m, 3m, 5m, 10m, 15m, 30m or 1h",
        f"{TF} digitalocean/uptime/resource_uptime_alert.go; godo uptime.go (period, no"
        " omitempty)",
        None,  # the program's own constant: components/alerts.py, UPTIME_ALERT_PERIODS
    ),
)  # fmt: skip


def problems(settings: Settings) -> list[str]:
    """Every provider rule the stack's (individually valid) settings break."""
    found = [rule.check(settings) for rule in RULES if rule.check is not None]
    return [p for p in found if p]


def vpc_overlaps(stack: str, vpc_range: str, others: Mapping[str, str]) -> list[str]:
    """The other stacks (name -> their vpcIpRange) whose VPC overlaps this stack's."""
    mine = ipaddress.ip_network(vpc_range)
    found = []
    for other, theirs in sorted(others.items()):
        if other == stack or vpc_range_problem(theirs):
            continue
        if mine.overlaps(ipaddress.ip_network(theirs)):
            found.append(
                f'{_key("vpcIpRange")} = "{vpc_range}" overlaps stack {other}\'s {theirs}: VPC'
                " ranges in one DigitalOcean account must not overlap; allowed: a range"
                " disjoint from every other stack's (Pulumi.<stack>.yaml)"
            )
    return found
