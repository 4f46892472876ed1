"""DigitalOcean's own monitoring: resource alerts on the app droplets and the data stores, and an
uptime check of the site from several regions. Cheap, and it works even when our own monitoring
host is down."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

from components.renames import formerly
from components.settings import AlertSettings, IdentitySettings

UPTIME_REGIONS: tuple[str, ...] = ("us_east", "us_west", "eu_west", "se_asia")
SSL_EXPIRY_DAYS = 14
# How long the certificate must stay under SSL_EXPIRY_DAYS before alerting: the API's longest
# period (provider_rules.UPTIME_ALERT_PERIODS), since the condition changes by the day.
SSL_EXPIRY_PERIOD = "1h"
LATENCY_MS = 2000


@dataclass(frozen=True)
class AlertsArgs:
    """The stack (its name and site), the alert settings (recipients, thresholds, Slack
    channel), and what to watch."""

    identity: IdentitySettings
    alerts: AlertSettings
    droplet_tag: pulumi.Input[str]
    database_cluster_ids: Sequence[pulumi.Input[str]]
    slack_webhook_url: pulumi.Input[str] | None = None  # a secret
    health_path: str = "/health/ready"


class Alerts(pulumi.ComponentResource):
    """CPU, memory and disk alerts for the tagged droplets (new droplets are covered by the tag)
    and for the database clusters; an HTTPS uptime check of `<site>/health/ready` with alerts
    when it is down, slow or its certificate is about to expire. Email always; Slack when
    `alert_slack_channel` is set (its webhook stays a secret).

    Attributes: `uptime_check_id`.
    """

    uptime_check_id: pulumi.Output[str]

    def __init__(self, name: str, args: AlertsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            "clipper:alerts:Alerts", name, None, formerly("clipper:monitoring:Alerts", opts)
        )
        child = pulumi.ResourceOptions(parent=self)
        monitor_targets, uptime_targets = _notification_targets(args)
        _resource_alerts(name, args, monitor_targets, child)
        check = _uptime_check(name, args, uptime_targets, child)
        self.uptime_check_id = check.id
        self.register_outputs({"uptime_check_id": self.uptime_check_id})


def _notification_targets(
    args: AlertsArgs,
) -> tuple[do.MonitorAlertAlertsArgs, do.UptimeAlertNotificationArgs]:
    """Who hears of an alert: the emails always; the Slack channel (webhook a secret) when set."""
    alerts = args.alerts
    channel = alerts.alert_slack_channel
    slack = (
        [(channel, pulumi.Output.secret(args.slack_webhook_url))]
        if channel and args.slack_webhook_url is not None
        else []
    )
    monitor_targets = do.MonitorAlertAlertsArgs(
        emails=list(alerts.alert_emails),
        slacks=[do.MonitorAlertAlertsSlackArgs(channel=c, url=u) for c, u in slack] or None,
    )
    uptime_targets = do.UptimeAlertNotificationArgs(
        emails=list(alerts.alert_emails),
        slacks=[do.UptimeAlertNotificationSlackArgs(channel=c, url=u) for c, u in slack] or None,
    )
    return monitor_targets, uptime_targets


def _resource_alerts(
    name: str,
    args: AlertsArgs,
    monitor_targets: do.MonitorAlertAlertsArgs,
    child: pulumi.ResourceOptions,
) -> None:
    """CPU, memory and disk above their thresholds: on the tagged droplets and the clusters."""
    env, alerts = args.identity.environment, args.alerts
    metrics = (
        ("cpu", "cpu", "cpu_alerts", alerts.alert_cpu_percent),
        ("memory", "memory_utilization_percent", "memory_utilization_alerts",
         alerts.alert_memory_percent),
        ("disk", "disk_utilization_percent", "disk_utilization_alerts",
         alerts.alert_disk_percent),
    )  # fmt: skip
    for short, droplet_metric, database_metric, threshold in metrics:
        do.MonitorAlert(
            f"{name}-droplet-{short}",
            type=f"v1/insights/droplet/{droplet_metric}",
            description=f"clipper {env}: app droplet {short} above {threshold}%",
            compare="GreaterThan",
            value=threshold,
            window="5m",
            tags=[args.droplet_tag],
            alerts=monitor_targets,
            opts=child,
        )
        if args.database_cluster_ids:
            do.MonitorAlert(
                f"{name}-database-{short}",
                type=f"v1/dbaas/alerts/{database_metric}",
                description=f"clipper {env}: database/cache {short} above {threshold}%",
                compare="GreaterThan",
                value=threshold,
                window="5m",
                entities=list(args.database_cluster_ids),
                alerts=monitor_targets,
                opts=child,
            )


def _uptime_check(
    name: str,
    args: AlertsArgs,
    uptime_targets: do.UptimeAlertNotificationArgs,
    child: pulumi.ResourceOptions,
) -> do.UptimeCheck:
    """The HTTPS check of the site's health path from several regions, and its alerts."""
    env = args.identity.environment
    check = do.UptimeCheck(
        f"{name}-uptime",
        name=f"clipper-{env}-site",
        target=f"{args.identity.site_url}{args.health_path}",
        type="https",
        regions=list(UPTIME_REGIONS),
        enabled=True,
        opts=child,
    )
    # (type, period, comparison, threshold): down for 2 minutes; slow for 5; certificate
    # expiring within SSL_EXPIRY_DAYS (certbot or the load balancer failed to renew). Every
    # alert needs a period: unset, the provider sends "" and the API refuses it.
    uptime_alerts: tuple[tuple[str, str, str | None, int | None], ...] = (
        ("down", "2m", None, None),
        ("latency", "5m", "greater_than", LATENCY_MS),
        ("ssl_expiry", SSL_EXPIRY_PERIOD, "less_than", SSL_EXPIRY_DAYS),
    )
    for kind, period, comparison, limit in uptime_alerts:
        do.UptimeAlert(
            f"{name}-uptime-{kind.replace('_', '-')}",
            check_id=check.id,
            name=f"clipper-{env}-site-{kind.replace('_', '-')}",
            type=kind,
            period=period,
            comparison=comparison,
            threshold=limit,
            notifications=[uptime_targets],
            opts=child,
        )
    return check
