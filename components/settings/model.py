"""`Settings`: every concern's fields in one flat, validated, frozen model.

Operators set flat camelCase keys and the code reads flat attributes (`settings.db_size`), so
`Settings` inherits every concern model (the fields, their checks and their docs stay beside
their concern); each concern is also one frozen sub-model (`settings.database`), which is what
a component that needs only that concern takes. Values that tie concerns together (the site's
origins, the regions that default to the stack's) are derived here.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any, Self

from components.settings import image_rules
from components.settings.access import AccessSettings
from components.settings.alerts import AlertSettings
from components.settings.app_environment import AppEnvironmentSettings
from components.settings.app_servers import AppServerSettings
from components.settings.backups import BackupSettings
from components.settings.cache import CacheSettings
from components.settings.concern import Concern
from components.settings.database import DatabaseSettings
from components.settings.dns import DnsSettings
from components.settings.edge import EdgeSettings
from components.settings.identity import IdentitySettings
from components.settings.images import ImageSettings
from components.settings.monitoring import MonitoringSettings
from components.settings.network import NetworkSettings
from components.settings.release import ReleaseSettings

# Each concern by the name of its sub-model attribute, in the order of the keys in Pulumi.yaml.
CONCERNS: dict[str, type[Concern]] = {
    "identity": IdentitySettings,
    "network": NetworkSettings,
    "access": AccessSettings,
    "app_servers": AppServerSettings,
    "images": ImageSettings,
    "release": ReleaseSettings,
    "app_environment": AppEnvironmentSettings,
    "database": DatabaseSettings,
    "cache": CacheSettings,
    "edge": EdgeSettings,
    "dns": DnsSettings,
    "alerts": AlertSettings,
    "monitoring": MonitoringSettings,
    "backups": BackupSettings,
}


# pydantic orders the fields from the last base to the first: the concerns are listed backwards
# so that the keys (and the problems a parse reports) keep the order of CONCERNS and Pulumi.yaml.
class Settings(
    BackupSettings,
    MonitoringSettings,
    AlertSettings,
    DnsSettings,
    EdgeSettings,
    CacheSettings,
    DatabaseSettings,
    AppEnvironmentSettings,
    ReleaseSettings,
    ImageSettings,
    AppServerSettings,
    AccessSettings,
    NetworkSettings,
    IdentitySettings,
):
    """Every non-secret setting of one stack, validated. Field docs are the operators' docs."""

    # ------------------------------------------------------------- one concern each (cached)

    @cached_property
    def identity(self) -> IdentitySettings:
        return IdentitySettings.view_of(self)

    @cached_property
    def network(self) -> NetworkSettings:
        return NetworkSettings.view_of(self)

    @cached_property
    def access(self) -> AccessSettings:
        return AccessSettings.view_of(self)

    @cached_property
    def app_servers(self) -> AppServerSettings:
        return AppServerSettings.view_of(self)

    @cached_property
    def images(self) -> ImageSettings:
        return ImageSettings.view_of(self)

    @cached_property
    def release(self) -> ReleaseSettings:
        return ReleaseSettings.view_of(self)

    @cached_property
    def app_environment(self) -> AppEnvironmentSettings:
        return AppEnvironmentSettings.view_of(self)

    @cached_property
    def database(self) -> DatabaseSettings:
        return DatabaseSettings.view_of(self)

    @cached_property
    def cache(self) -> CacheSettings:
        return CacheSettings.view_of(self)

    @cached_property
    def edge(self) -> EdgeSettings:
        return EdgeSettings.view_of(self)

    @cached_property
    def dns(self) -> DnsSettings:
        return DnsSettings.view_of(self)

    @cached_property
    def alerts(self) -> AlertSettings:
        return AlertSettings.view_of(self)

    @cached_property
    def monitoring(self) -> MonitoringSettings:
        return MonitoringSettings.view_of(self)

    @cached_property
    def backups(self) -> BackupSettings:
        return BackupSettings.view_of(self)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy whose sub-models are cut again from its own values (pydantic copies the
        instance's cached attributes with the fields, so `update` would leave them stale)."""
        copied = super().model_copy(update=update, deep=deep)
        for name in CONCERNS:
            copied.__dict__.pop(name, None)
        return copied

    # ------------------------------------------------------------- derived across concerns

    @property
    def effective_cors_origins(self) -> list[str]:
        return list(self.cors_allowed_origins) or [self.site_url]

    @property
    def effective_websocket_origins(self) -> list[str]:
        return list(self.websocket_allowed_origins) or [self.site_url]

    @property
    def twitch_redirect_uri(self) -> str:
        return f"{self.site_url}/api/v1/auth/twitch/callback"

    @property
    def effective_registry_region(self) -> str:
        if self.registry_region:
            return self.registry_region
        return image_rules.REGISTRY_NEAREST_REGION.get(self.region, self.region)

    @property
    def effective_backup_region(self) -> str:
        return self.backup_region or self.region

    @property
    def effective_alert_smtp_from(self) -> str:
        return self.alert_smtp_from or f"alerts@{self.domain}"
