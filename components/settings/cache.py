"""Managed Valkey: version, shape, eviction, persistence and the app's loopback TLS tunnel
(its maintenance window and protection are the database's)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.settings import slugs
from components.settings.checks import DatabaseSize, one_of
from components.settings.concern import Concern


class CacheSettings(Concern):
    """The Valkey cluster and the tunnel the app reaches it through."""

    cache_version: Annotated[str, one_of(slugs.VALKEY_VERSIONS, "Valkey version")] = Field(
        description="Managed Valkey major version."
    )
    cache_size: DatabaseSize = Field(description="Valkey node size slug.")
    cache_node_count: int = Field(ge=1, le=3, description="Valkey nodes.")
    cache_eviction_policy: Annotated[
        str, one_of(slugs.VALKEY_EVICTION_POLICIES, "eviction policy")
    ] = Field(description="Valkey maxmemory policy.")
    cache_persistence: Annotated[str, one_of(slugs.VALKEY_PERSISTENCE, "persistence mode")] = Field(
        description="Valkey persistence: rdb or off."
    )
    cache_tunnel_port: int = Field(
        ge=1024, le=65535, description="Loopback port of the TLS tunnel the app uses as Redis."
    )
