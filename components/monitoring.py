"""Self-hosted observability: one monitoring droplet (Prometheus, Alertmanager, Grafana, Loki,
blackbox_exporter) with its data on a DigitalOcean volume; node_exporter on every host and
Grafana Alloy on every app host. Every image runs by the digest the preview resolved
(components/images/digest.py).

DigitalOcean's own alerts (components/alerts.py) keep working when this host is down; this adds
what they cannot do: request metrics from the access log (error rate, p95), central logs with
retention, probes of the site and the data stores from inside the VPC, alert routing to email
and Slack, and dashboards.

Order on `pulumi up`, per host, the host setup of components/host/setup.py (pulumi-command remote
commands as the `deploy` user):
1. `ready`: cloud-init finished and wrote the host-ready marker (the same check the release uses);
2. `config` (non-secret files) and `secrets` (0600 files, secret stdin) over SSH;
3. `activate`: on the monitoring host, mount the volume and (re)start the containers; on an app
   host, (re)start node_exporter and Alloy (`agents`). It runs again when a file's content
   changes (a sha256 trigger).

Nothing secret is in user-data: the SMTP password, the Slack webhook, DigitalOcean's
database-metrics credentials and the Grafana admin password reach the host only over SSH.
The UIs listen on the monitoring host's loopback; reach them with the `monitoringTunnel` output
(`ssh -N -L 3000:127.0.0.1:3000 -L 9090:127.0.0.1:9090 -L 9093:127.0.0.1:9093 deploy@<host>`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do
import pulumi_random as random

from components.cache import ManagedValkey
from components.database import ManagedPostgres
from components.firewall import ALL_PORTS
from components.host import layout as host_layout
from components.host.connection import deploy_ssh
from components.host.files import HostFile, role_tag
from components.host.keys import learn_host_key
from components.host.layout import LOKI_PORT
from components.host.remote_files import RemoteFile
from components.host.setup import Activation, Bundle, set_up_host
from components.images.digest import pinned_reference
from components.renderers import monitoring_units as units
from components.renderers.prometheus import (
    ALERTMANAGER_PORT,
    GRAFANA_PORT,
    PROMETHEUS_PORT,
    DataStore,
    ScrapeHost,
    ScrapeTargets,
)
from components.renderers.prometheus import (
    CONFIG_DIR as PROMETHEUS_CONFIG_DIR,
)
from components.settings import IdentitySettings, Settings

EVERYWHERE: tuple[str, str] = ("0.0.0.0/0", "::/0")
POSTGRES_CA = "postgres.crt"
VALKEY_CA = "valkey.crt"


@dataclass(frozen=True)
class MonitoringHostTagArgs:
    """Whose tag: the stack's."""

    identity: IdentitySettings


class MonitoringHostTag(pulumi.ComponentResource):
    """The monitoring droplet's tag (`clipper-<env>-monitoring`), declared before the data
    stores so that their firewalls can trust it. Attribute: `role`."""

    role: pulumi.Output[str]

    def __init__(
        self, name: str, args: MonitoringHostTagArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clipper:monitoring:MonitoringHostTag", name, None, opts)
        tag = do.Tag(
            f"{name}-role",
            name=role_tag(args.identity.environment, "monitoring"),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.role = tag.name
        self.register_outputs({"role": self.role})


@dataclass(frozen=True)
class MonitoredAppHost:
    """An app droplet: a short name (for resource names), its host name (the `host` label of
    its metrics and logs), its id, and its public (SSH) and private (scrape) IPv4."""

    name: str
    hostname: str
    droplet_id: pulumi.Input[str]
    public_ipv4: pulumi.Input[str]
    private_ipv4: pulumi.Input[str]
    host_key: pulumi.Input[str]  # pinned SSH host key (components/host/keys.py)


@dataclass(frozen=True)
class MonitoringArgs:
    """The stack's settings, where to run, what to watch, and the secrets alerting needs."""

    settings: Settings
    vpc_id: pulumi.Input[str]
    tag: MonitoringHostTag
    environment_tag: pulumi.Input[str]
    app_tag: pulumi.Input[str]
    deploy_public_key: pulumi.Input[str]
    ssh_private_key: pulumi.Input[str]  # secret
    app_hosts: Sequence[MonitoredAppHost]
    database: ManagedPostgres
    cache: ManagedValkey
    smtp_password: pulumi.Input[str]  # secret
    slack_webhook_url: pulumi.Input[str] | None = None  # secret


PLACEHOLDER_ADDRESS = "10.0.0.1"


def _data_stores(db: ManagedPostgres, cache: ManagedValkey) -> pulumi.Output[tuple[DataStore, ...]]:
    """The data stores Prometheus probes (and, for the clusters, scrapes), once resolved."""
    ca = f"{PROMETHEUS_CONFIG_DIR}/ca"
    parts: list[pulumi.Output[DataStore]] = [
        pulumi.Output.all(db.host, db.port).apply(
            lambda v: DataStore("postgres", str(v[0]), int(v[1]), True, f"{ca}/{POSTGRES_CA}")
        ),
        pulumi.Output.all(cache.host, cache.port).apply(
            lambda v: DataStore("valkey", str(v[0]), int(v[1]), True, f"{ca}/{VALKEY_CA}")
        ),
    ]
    if db.pool_host is not None and db.pool_port is not None:
        parts.append(
            pulumi.Output.all(db.pool_host, db.pool_port).apply(
                lambda v: DataStore("postgres-pool", str(v[0]), int(v[1]))
            )
        )
    if db.replica_host is not None:
        parts.append(
            pulumi.Output.all(db.replica_host, db.port).apply(
                lambda v: DataStore("postgres-replica", str(v[0]), int(v[1]))
            )
        )
    return pulumi.Output.all(*parts).apply(tuple)


def _host_config(
    settings: Settings,
    *,
    private_address: str,
    stores: Sequence[DataStore],
    metrics_user: str,
    postgres_ca: str,
    valkey_ca: str,
    app_hosts: Sequence[tuple[str, str]],
) -> units.MonitoringHostConfig:
    env = settings.environment
    return units.MonitoringHostConfig(
        private_address=private_address,
        volume_name=f"clipper-{env}-monitoring-data",
        targets=ScrapeTargets(
            app_hosts=tuple(ScrapeHost(name, address) for name, address in app_hosts),
            monitoring_host=ScrapeHost(f"clipper-{env}-monitoring", private_address),
            data_stores=tuple(stores),
            database_metrics_username=metrics_user,
        ),
        ca_certificates={POSTGRES_CA: postgres_ca, VALKEY_CA: valkey_ca},
    )


def _sha256(files: Sequence[HostFile]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.path}\0{file.mode}\0{file.content}\0".encode())
    return digest.hexdigest()


def _pinned_images(
    name: str, settings: Settings, *, parent: pulumi.Resource
) -> pulumi.Output[units.MonitoringImages]:
    """Every monitoring image as `repo:tag@sha256:...`, looked up at preview (a tag that moves
    shows in the preview as a changed unit, and hosts run exactly what it showed)."""
    pinned = {
        image: pinned_reference(
            f"{name}-{image}",
            getattr(settings, f"image_{image}"),
            pulumi.InvokeOutputOptions(parent=parent),
        )
        for image in units.IMAGE_NAMES
    }
    return pulumi.Output.all(**pinned).apply(lambda v: units.MonitoringImages(**v))


def tunnel_command(address: str) -> str:
    """The SSH command that forwards Grafana, Prometheus and Alertmanager to the operator."""
    forwards = " ".join(
        f"-L {port}:127.0.0.1:{port}" for port in (GRAFANA_PORT, PROMETHEUS_PORT, ALERTMANAGER_PORT)
    )
    return f"ssh -N {forwards} {host_layout.DEPLOY_USER}@{address}"


class Monitoring(pulumi.ComponentResource):
    """The monitoring droplet, its data volume and firewall, its files and containers, and
    node_exporter and Alloy on each app host, every container by digest.

    Attributes: `private_ipv4`, `public_ipv4`, `tunnel_command` (plain), `grafana_admin_password`
    (secret), `droplet_urn` and `volume_urn` (for the DigitalOcean project).
    """

    private_ipv4: pulumi.Output[str]
    public_ipv4: pulumi.Output[str]
    tunnel_command: pulumi.Output[str]
    grafana_admin_password: pulumi.Output[str]
    droplet_urn: pulumi.Output[str]
    volume_urn: pulumi.Output[str]

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clipper:monitoring:Monitoring", name, None, opts)
        volume = self._volume(name, args)
        droplet = self._droplet(name, args)
        # A volume attaches to one droplet: a replacement droplet gets it only after the old
        # attachment is gone.
        attachment = do.VolumeAttachment(
            f"{name}-data-attachment",
            droplet_id=droplet.id.apply(int),
            volume_id=volume.id,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        firewall = self._firewall(name, args)
        grafana_password = random.RandomPassword(
            f"{name}-grafana-admin-password",
            length=32,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        images = _pinned_images(name, args.settings, parent=self)
        self._set_up_monitoring_host(
            name, args, droplet, firewall=firewall, attachment=attachment, images=images,
            grafana_password=grafana_password.result,
        )  # fmt: skip
        self._set_up_agents(name, args, droplet, images)

        self.private_ipv4 = droplet.ipv4_address_private
        self.public_ipv4 = droplet.ipv4_address
        self.tunnel_command = droplet.ipv4_address.apply(tunnel_command)
        self.grafana_admin_password = pulumi.Output.secret(grafana_password.result)
        self.droplet_urn = droplet.droplet_urn
        self.volume_urn = volume.volume_urn
        self.register_outputs(
            {
                "private_ipv4": self.private_ipv4,
                "public_ipv4": self.public_ipv4,
                "tunnel_command": self.tunnel_command,
            }
        )

    def _volume(self, name: str, args: MonitoringArgs) -> do.Volume:
        """The data volume: metrics, logs, Grafana's and Alertmanager's state."""
        s = args.settings
        return do.Volume(
            f"{name}-data",
            name=_placeholder_config(s).volume_name,
            region=s.region,
            size=s.monitoring_volume_gb,
            initial_filesystem_type="ext4",
            initial_filesystem_label="clipper-monitor",
            description=f"clipper {s.environment}: metrics, logs, Grafana and Alertmanager state",
            tags=[args.environment_tag],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _droplet(self, name: str, args: MonitoringArgs) -> do.Droplet:
        """The monitoring droplet (no secret in its user-data)."""
        s = args.settings
        user_data = pulumi.Output.from_input(args.deploy_public_key).apply(
            lambda key: units.render_monitoring_user_data(s, deploy_public_key=key)
        )
        return do.Droplet(
            f"{name}-droplet",
            name=f"clipper-{s.environment}-monitoring",
            region=s.region,
            size=s.monitoring_size,
            image=s.app_image,
            vpc_uuid=args.vpc_id,
            ipv6=False,
            monitoring=True,
            ssh_keys=list(s.ssh_key_fingerprints),
            tags=[args.tag.role, args.environment_tag],
            user_data=user_data,
            graceful_shutdown=True,
            opts=pulumi.ResourceOptions(
                parent=self,
                ignore_changes=[] if s.app_replace_on_user_data_change else ["user_data"],
            ),
        )

    def _firewall(self, name: str, args: MonitoringArgs) -> do.Firewall:
        """SSH from the admin networks, Loki pushes from the app droplets; any way out."""
        return do.Firewall(
            f"{name}-firewall",
            name=f"clipper-{args.settings.environment}-monitoring",
            tags=[args.tag.role],
            inbound_rules=[
                do.FirewallInboundRuleArgs(
                    protocol="tcp",
                    port_range="22",
                    source_addresses=list(args.settings.admin_cidrs),
                ),
                # Alloy's pushes, from the app droplets only.
                do.FirewallInboundRuleArgs(
                    protocol="tcp", port_range=str(LOKI_PORT), source_tags=[args.app_tag]
                ),
            ],
            outbound_rules=[
                do.FirewallOutboundRuleArgs(
                    protocol=protocol,
                    port_range=None if protocol == "icmp" else ALL_PORTS,
                    destination_addresses=list(EVERYWHERE),
                )
                for protocol in ("tcp", "udp", "icmp")
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _set_up_monitoring_host(
        self,
        name: str,
        args: MonitoringArgs,
        droplet: do.Droplet,
        *,
        firewall: do.Firewall,
        attachment: do.VolumeAttachment,
        images: pulumi.Output[units.MonitoringImages],
        grafana_password: pulumi.Output[str],
    ) -> None:
        """Learn the host's key, then the host setup: wait, `config` and `secrets` bundles, and
        `activate` (mount the volume, (re)start the containers) when a file or the volume
        changes."""
        s = args.settings
        metrics_login = do.get_database_metrics_credentials_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        )
        config_files = self._config_files(args, droplet, images, metrics_login.username)
        slack = bool(s.alert_slack_channel and args.slack_webhook_url is not None)
        secret_files = _secret_files(args, metrics_login.password, grafana_password, slack=slack)
        secret_shape = units.monitoring_secret_files(
            units.MonitoringSecrets("", "", "", "" if slack else None)
        )
        host_key = learn_host_key(
            name, self, address=droplet.ipv4_address, private_key=args.ssh_private_key,
            droplet_id=droplet.id, depends_on=[firewall],
        )  # fmt: skip
        set_up_host(
            name,
            parent=self,
            connection=deploy_ssh(droplet.ipv4_address, args.ssh_private_key, host_key),
            droplet_id=droplet.id,
            bundles=[
                Bundle("config", "monitoring", _bundle_files(_config_shape(s), config_files)),
                Bundle(
                    "secrets", "monitoring", _bundle_files(secret_shape, secret_files), secret=True
                ),
            ],
            activation=Activation(
                "activate",
                f"sudo -n {units.ACTIVATE_SCRIPT}",
                triggers=[
                    droplet.id,
                    attachment.id,
                    config_files.apply(_sha256),
                    secret_files.apply(_sha256),  # secret: derived from the secret files
                ],
                after=[attachment],
            ),
            reachable_after=[firewall],
        )

    def _config_files(
        self,
        args: MonitoringArgs,
        droplet: do.Droplet,
        images: pulumi.Output[units.MonitoringImages],
        metrics_user: pulumi.Output[str],
    ) -> pulumi.Output[list[HostFile]]:
        """The monitoring host's non-secret files, rendered once every address is known."""
        s = args.settings
        postgres_ca = do.get_database_ca_output(
            cluster_id=args.database.cluster_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        app_names = [h.hostname for h in args.app_hosts]
        return pulumi.Output.all(
            droplet.ipv4_address_private,
            _data_stores(args.database, args.cache),
            metrics_user,
            postgres_ca.certificate,
            args.cache.ca_certificate,
            images,
            *(h.private_ipv4 for h in args.app_hosts),
        ).apply(
            lambda v: units.monitoring_config_files(
                s,
                _host_config(
                    s, private_address=str(v[0]), stores=v[1], metrics_user=str(v[2]),
                    postgres_ca=str(v[3]), valkey_ca=str(v[4]),
                    app_hosts=list(zip(app_names, map(str, v[6:]), strict=True)),
                ),
                v[5],
            )
        )  # fmt: skip

    def _set_up_agents(
        self,
        name: str,
        args: MonitoringArgs,
        droplet: do.Droplet,
        images: pulumi.Output[units.MonitoringImages],
    ) -> None:
        """node_exporter and Alloy on each app host; Alloy pushes to this host's private
        address. Per host: wait, the `agents` bundle, and `agents-activate`."""
        s = args.settings
        agent_files = pulumi.Output.all(droplet.ipv4_address_private, images).apply(
            lambda v: units.app_agent_files(s, v[1], loki_address=str(v[0]))
        )
        agent_shape = units.app_agent_files(
            s, units.MonitoringImages.from_settings(s), loki_address=PLACEHOLDER_ADDRESS
        )
        for host in args.app_hosts:
            set_up_host(
                f"{name}-{host.name}",
                parent=self,
                connection=deploy_ssh(host.public_ipv4, args.ssh_private_key, host.host_key),
                droplet_id=host.droplet_id,
                bundles=[Bundle("agents", "app", _bundle_files(agent_shape, agent_files))],
                activation=Activation(
                    "agents-activate",
                    f"sudo -n {units.AGENTS_ACTIVATE_SCRIPT}",
                    triggers=[host.droplet_id, agent_files.apply(_sha256)],
                ),
            )


def _secret_files(
    args: MonitoringArgs,
    metrics_password: pulumi.Output[str],
    grafana_password: pulumi.Output[str],
    *,
    slack: bool,
) -> pulumi.Output[list[HostFile]]:
    """The 0600 files (SMTP password, database-metrics login, Grafana admin, Slack), kept
    secret: rendered inside apply from secrets, and wrapped again."""
    rendered: pulumi.Output[list[HostFile]] = pulumi.Output.all(
        args.smtp_password,
        metrics_password,
        grafana_password,
        args.slack_webhook_url if slack else "",
    ).apply(
        lambda v: units.monitoring_secret_files(
            units.MonitoringSecrets(
                smtp_password=str(v[0]),
                db_metrics_password=str(v[1]),
                grafana_admin_password=str(v[2]),
                slack_webhook_url=str(v[3]) if slack else None,
            )
        )
    )
    return pulumi.Output.secret(rendered)


def _placeholder_config(settings: Settings) -> units.MonitoringHostConfig:
    """The host's config on placeholder addresses: what never depends on an output (the volume's
    name, the bundles' paths and modes)."""
    return _host_config(
        settings, private_address=PLACEHOLDER_ADDRESS, stores=(), metrics_user="",
        postgres_ca="", valkey_ca="", app_hosts=[],
    )  # fmt: skip


def _config_shape(settings: Settings) -> list[HostFile]:
    """The config bundle's paths and modes, from the same renderer run on placeholders."""
    return units.monitoring_config_files(
        settings, _placeholder_config(settings), units.MonitoringImages.from_settings(settings)
    )


def _bundle_files(
    shape: Sequence[HostFile], files: pulumi.Output[list[HostFile]]
) -> list[RemoteFile]:
    """One bundle's files: paths and modes from `shape` (paths never depend on outputs), each
    content from `files`, so no resource is declared inside `apply`."""

    def content(path: str) -> pulumi.Output[str]:
        return files.apply(lambda rendered: _content(rendered, path))

    return [RemoteFile(f.path, content(f.path), f.mode) for f in shape]


def _content(files: Sequence[HostFile], path: str) -> str:
    for file in files:
        if file.path == path:
            return file.content
    raise ValueError(f"{path} is in the declared bundle but was not rendered")
