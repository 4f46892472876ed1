"""The app droplets: how many, their shape, IPv6, DigitalOcean backups, and whether a change of
what they are built from replaces them."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.settings import slugs
from components.settings.checks import DropletSize, one_of
from components.settings.concern import Concern

DropletImage = Annotated[str, one_of(slugs.DROPLET_IMAGES, "Ubuntu LTS image")]


class AppServerSettings(Concern):
    """The app droplets' count, shape and droplet backups."""

    app_count: int = Field(ge=1, le=10, description="Number of app droplets.")
    app_size: DropletSize = Field(description="Droplet size slug of each app server.")
    app_image: DropletImage = Field(description="Ubuntu LTS image slug of the app servers.")
    app_swap_mb: int = Field(ge=0, le=16384, description="Swap file size in MiB (0: none).")
    app_ipv6: bool = Field(description="Give droplets IPv6 and publish an AAAA record.")
    app_backups: bool = Field(description="Turn on DigitalOcean droplet backups.")
    app_backup_plan: Annotated[str, one_of(slugs.BACKUP_PLANS, "backup plan")] = Field(
        description="Droplet backup plan: daily (kept 7 days) or weekly (kept 4 weeks)."
    )
    app_backup_weekday: Annotated[str, one_of(slugs.BACKUP_WEEKDAYS, "backup weekday")] = Field(
        description="Day of a weekly droplet backup (SUN..SAT)."
    )
    app_backup_hour: int = Field(description="UTC start hour of the backup window (0,4,...,20).")
    app_replace_on_user_data_change: bool = Field(
        description="false: a change of what droplets are built from (cloud-init, image, account"
        " SSH keys) leaves existing droplets alone (roll them one at a time, README); true: it"
        " replaces them on the next `pulumi up`."
    )
