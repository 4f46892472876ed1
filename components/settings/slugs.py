"""Allowed DigitalOcean slugs, kept in one place.

Where they came from: DigitalOcean's public API reference and product docs (regions:
`GET /v2/regions`; droplet sizes: `GET /v2/sizes`; database sizes, engines and versions:
`GET /v2/databases/options`; Ubuntu LTS distribution images: `GET /v2/images?type=distribution`),
as published in 2025-2026. Managed Redis was retired in 2025; its successor engine is `valkey`.
When DigitalOcean adds a slug, add it here: the settings layer rejects anything else, so a typo
fails at `pulumi preview` instead of half way through `pulumi up`.
"""

from __future__ import annotations

REGIONS: frozenset[str] = frozenset(
    {"nyc1", "nyc3", "sfo2", "sfo3", "ams3", "sgp1", "lon1", "fra1", "tor1", "blr1", "syd1", "atl1"}
)
# Regions with Spaces object storage (the backup bucket); nyc1 has none.
SPACES_REGIONS: frozenset[str] = REGIONS - {"nyc1"}

# Basic (s-), premium AMD/Intel, general purpose (g-/gd-), CPU-optimised (c-) and memory (m-) sizes
# that fit a web app host. Tiny 512 MB sizes are left out on purpose: Docker + nginx + two colours
# of the app do not fit.
DROPLET_SIZES: frozenset[str] = frozenset(
    {
        "s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb",
        "s-8vcpu-16gb", "s-2vcpu-4gb-amd", "s-4vcpu-8gb-amd", "s-8vcpu-16gb-amd",
        "s-2vcpu-4gb-intel", "s-4vcpu-8gb-intel", "s-8vcpu-16gb-intel",
        "g-2vcpu-8gb", "g-4vcpu-16gb", "g-8vcpu-32gb", "gd-2vcpu-8gb", "gd-4vcpu-16gb",
        "c-2", "c-4", "c-8", "m-2vcpu-16gb", "m-4vcpu-32gb",
    }
)  # fmt: skip

# Ubuntu LTS releases only: unattended-upgrades and the packages cloud-init installs assume them.
DROPLET_IMAGES: frozenset[str] = frozenset({"ubuntu-22-04-x64", "ubuntu-24-04-x64"})

DATABASE_SIZES: frozenset[str] = frozenset(
    {
        "db-s-1vcpu-1gb", "db-s-1vcpu-2gb", "db-s-2vcpu-4gb", "db-s-4vcpu-8gb",
        "db-s-6vcpu-16gb", "db-s-8vcpu-32gb", "db-s-16vcpu-64gb",
        "gd-2vcpu-8gb", "gd-4vcpu-16gb", "gd-8vcpu-32gb", "gd-16vcpu-64gb",
        "m-2vcpu-16gb", "m-4vcpu-32gb", "m-8vcpu-64gb",
    }
)  # fmt: skip

# Memory of each database size; DigitalOcean's PostgreSQL connection limit follows from it
# (DigitalOcean docs, "PostgreSQL limits": 25 connections per GiB of RAM, 3 of them reserved for
# maintenance; e.g. 1 GiB: 22, 2 GiB: 47, 8 GiB: 197). Connection pools share that limit.
DATABASE_MEMORY_GIB: dict[str, int] = {
    size: int(size.rsplit("-", 1)[1].removesuffix("gb")) for size in DATABASE_SIZES
}
# Connections kept free of the app's pool: the admin (extensions), migrations, backups, metrics.
POSTGRES_DIRECT_HEADROOM = 5


def postgres_connection_limit(size: str) -> int:
    """Connections a cluster of `size` accepts from users (all pools and direct clients)."""
    return 25 * DATABASE_MEMORY_GIB[size] - 3


# The app needs PostgreSQL 17 features (clipper-app.md); 16 is accepted for a staged upgrade.
POSTGRES_VERSIONS: frozenset[str] = frozenset({"16", "17"})
VALKEY_VERSIONS: frozenset[str] = frozenset({"8"})

# Valkey `maxmemory-policy` values accepted by DigitalOcean's valkey config API.
VALKEY_EVICTION_POLICIES: frozenset[str] = frozenset(
    {
        "noeviction",
        "allkeys_lru",
        "allkeys_random",
        "volatile_lru",
        "volatile_random",
        "volatile_ttl",
    }
)
VALKEY_PERSISTENCE: frozenset[str] = frozenset({"rdb", "off"})

WEEKDAYS: tuple[str, ...] = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)  # fmt: skip

# Droplet backup policy (DigitalOcean API `backup_policy`): daily keeps 7 backups, weekly keeps 4.
BACKUP_PLANS: frozenset[str] = frozenset({"daily", "weekly"})
BACKUP_WEEKDAYS: tuple[str, ...] = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
BACKUP_HOURS: frozenset[int] = frozenset({0, 4, 8, 12, 16, 20})
BACKUP_RETENTION_DAYS: dict[str, int] = {"daily": 7, "weekly": 28}
