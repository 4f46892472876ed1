"""Managed PostgreSQL: version, shape, the maintenance window (the cache shares it), protection,
the read replica, slow-query logging and how the app connects."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from components.settings import slugs
from components.settings.checks import DatabaseSize, one_of
from components.settings.concern import Concern

# PostgreSQL extensions the app's migrations need; created with the admin user before migrating.
DATABASE_EXTENSIONS: tuple[str, ...] = ("pgcrypto", "pg_trgm", "vector", "ltree")

_HOUR_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def _hour(value: str) -> str:
    if not _HOUR_RE.match(value):
        raise ValueError("allowed: a UTC time of day as HH:MM, such as 04:00")
    return value


Weekday = Annotated[str, one_of(slugs.WEEKDAYS, "weekday")]
Hour = Annotated[str, AfterValidator(_hour)]


class DatabaseSettings(Concern):
    """The PostgreSQL cluster and the app's path to it."""

    db_version: Annotated[str, one_of(slugs.POSTGRES_VERSIONS, "PostgreSQL version")] = Field(
        description="Managed PostgreSQL major version."
    )
    db_size: DatabaseSize = Field(description="Database node size slug.")
    db_node_count: int = Field(ge=1, le=3, description="Nodes: 1 primary plus standbys.")
    db_maintenance_day: Weekday = Field(description="Weekly maintenance day (lower case).")
    db_maintenance_hour: Hour = Field(description="Maintenance start, UTC, HH:MM.")
    db_protect: bool = Field(description="Protect the cluster from deletion and retain on delete.")
    db_read_replica: bool = Field(description="Add a read-only replica.")
    db_read_replica_size: DatabaseSize = Field(description="Size slug of the read replica.")
    db_slow_query_ms: int = Field(
        ge=0, le=600000, description="Log statements slower than this (0 logs all)."
    )
    db_connection: Literal["session-pool", "direct"] = Field(
        description="How the app connects: a PgBouncer pool in session mode, or directly."
    )
    db_pool_size: int = Field(ge=1, le=1000, description="Server connections of the pool.")
