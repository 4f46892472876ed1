"""Stack settings: the only code that reads `pulumi.Config`.

Every difference between staging and production is a setting here; no other code branches on
the stack's name. `parse_settings` is pure (raw config in, a frozen `Settings` out, or a
`SettingsError` listing every problem at once); `load_settings` feeds it from the Pulumi
runtime and also collects the secret values as Pulumi secrets.

Config keys are flat camelCase keys in the `clipper-infra` namespace (`pulumi config set appCount
2`), declared with a description and a default in `Pulumi.yaml`; a test keeps that file and
this model in step.

One module per concern declares its fields, their checks and their docs (identity, network,
access, app_servers, images, release, app_environment, database, cache, edge, dns, alerts,
monitoring, backups; value checks they share in `checks`); `model.Settings` inherits them all,
and `settings.<concern>` is that concern's frozen sub-model. This package's names below are its
public API: import them from `components.settings`.
"""

from components.settings.access import AccessSettings
from components.settings.alerts import AlertSettings
from components.settings.app_environment import AppEnvironmentSettings
from components.settings.app_servers import AppServerSettings
from components.settings.backups import BackupSettings
from components.settings.cache import CacheSettings
from components.settings.concern import Concern
from components.settings.database import DATABASE_EXTENSIONS, DatabaseSettings
from components.settings.dns import DnsSettings
from components.settings.edge import EdgeSettings
from components.settings.identity import IdentitySettings
from components.settings.images import ImageSettings
from components.settings.model import CONCERNS, Settings
from components.settings.monitoring import MonitoringSettings
from components.settings.network import NetworkSettings
from components.settings.parse import config_keys, parse_settings
from components.settings.project import PROJECT, PROJECT_DIR, SettingsError
from components.settings.release import ReleaseSettings
from components.settings.runtime import load_settings, sibling_vpc_ranges
from components.settings.secrets import SECRET_KEYS, Secrets

__all__ = [
    "CONCERNS",
    "DATABASE_EXTENSIONS",
    "PROJECT",
    "PROJECT_DIR",
    "SECRET_KEYS",
    "AccessSettings",
    "AlertSettings",
    "AppEnvironmentSettings",
    "AppServerSettings",
    "BackupSettings",
    "CacheSettings",
    "Concern",
    "DatabaseSettings",
    "DnsSettings",
    "EdgeSettings",
    "IdentitySettings",
    "ImageSettings",
    "MonitoringSettings",
    "NetworkSettings",
    "ReleaseSettings",
    "Secrets",
    "Settings",
    "SettingsError",
    "config_keys",
    "load_settings",
    "parse_settings",
    "sibling_vpc_ranges",
]
