"""Which stack this is: its environment, region and domain (every component is named or placed
by them)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from components.settings import slugs
from components.settings.checks import one_of
from components.settings.concern import Concern

_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)(?!-)([a-z0-9-]{1,63}(?<!-)\.)+[a-z]{2,63}$")


def _domain(value: str) -> str:
    if not _DOMAIN_RE.match(value):
        raise ValueError("not a lower-case DNS name such as clipper.example.com")
    return value


Region = Annotated[str, one_of(slugs.REGIONS, "DigitalOcean region")]
Domain = Annotated[str, AfterValidator(_domain)]


class IdentitySettings(Concern):
    """The stack's environment, region and domain."""

    environment: Literal["staging", "production"] = Field(
        description="Sent to the app as ENVIRONMENT and names the DigitalOcean project."
    )
    region: Region = Field(description="DigitalOcean region for every resource of the stack.")
    domain: Domain = Field(description="The site's domain; the app is served at https://<domain>.")

    @property
    def site_url(self) -> str:
        return f"https://{self.domain}"

    @property
    def api_base_url(self) -> str:
        """What the frontend calls (baked into a built frontend as VITE_API_BASE_URL)."""
        return f"{self.site_url}/api/v1"
