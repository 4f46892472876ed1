"""The site's records in DigitalOcean DNS: whether the stack manages the domain, and the TTL."""

from __future__ import annotations

from pydantic import Field

from components.settings.concern import Concern


class DnsSettings(Concern):
    """Whether the stack owns the zone, and its records' TTL."""

    dns_manage_domain: bool = Field(description="Create the domain in DigitalOcean DNS.")
    dns_ttl: int = Field(ge=30, le=86400, description="TTL of the records, in seconds.")
