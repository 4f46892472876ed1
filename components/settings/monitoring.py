"""The self-hosted monitoring (components/monitoring.py): the droplet and its volume, retention,
and the exact image of each monitoring service."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from components.settings import image_rules
from components.settings.checks import DropletSize
from components.settings.concern import Concern

# Monitoring images: an exact version tag, deployed by the digest the preview resolves.
PinnedImage = Annotated[str, AfterValidator(image_rules.pinned_image)]


class MonitoringSettings(Concern):
    """The monitoring host, how long it keeps data, and its services' images."""

    monitoring_enabled: bool = Field(
        description="Run the monitoring droplet: Prometheus, Alertmanager, Grafana, Loki, probes."
    )
    monitoring_size: DropletSize = Field(description="Droplet size slug of the monitoring host.")
    monitoring_volume_gb: int = Field(
        ge=10, le=16000, description="GiB of the volume that keeps metrics and logs."
    )
    metrics_retention_days: int = Field(ge=1, le=3650, description="Days Prometheus keeps metrics.")
    log_retention_days: int = Field(ge=1, le=3650, description="Days Loki keeps logs.")
    image_prometheus: PinnedImage = Field(
        description="Prometheus image, the 3.5 long-term-support line; deployed by digest."
    )
    image_alertmanager: PinnedImage = Field(
        description="Alertmanager image, exact version; deployed by digest."
    )
    image_grafana: PinnedImage = Field(
        description="Grafana image, exact version; deployed by digest."
    )
    image_loki: PinnedImage = Field(
        description="Loki image (tsdb index, schema v13), exact version; deployed by digest."
    )
    image_alloy: PinnedImage = Field(
        description="Grafana Alloy image (log shipper on each app host); deployed by digest."
    )
    image_node_exporter: PinnedImage = Field(
        description="node_exporter image (host metrics and the textfile collector, every host);"
        " deployed by digest."
    )
    image_blackbox_exporter: PinnedImage = Field(
        description="blackbox_exporter image (HTTPS and TLS probes); deployed by digest."
    )
