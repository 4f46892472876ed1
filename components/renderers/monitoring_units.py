"""How the monitoring containers run: one systemd unit per container, and the activation
scripts that remote commands run after the files are in place (static files,
scripts/clipper-{monitoring,agents}-activate.sh, each fed by the config file rendered here and
installed beside it: volume, units, health URLs).

Why systemd units rather than a compose file: Ubuntu's docker.io has no compose plugin, and a
unit per container gets restart-on-failure, boot ordering after the data volume's mount
(`RequiresMountsFor`), `systemctl reload` (SIGHUP for Prometheus and Alertmanager) and the
journal for free. Each unit is checked with `systemd-analyze verify` in the tests.

Every container uses the host network (`--network host`), so ufw and the cloud firewall decide
who reaches it: Docker's published ports would bypass ufw. Prometheus, Alertmanager, Grafana and
blackbox_exporter listen on 127.0.0.1 only (operators use an SSH tunnel); Loki listens on the
private address for Alloy's pushes.

Secrets (SMTP password, Slack webhook, DigitalOcean's database-metrics password, Grafana's admin
password) arrive over SSH as root-owned 0600 files under SECRETS_DIR. A container runs as an
unprivileged user that cannot read them, so each unit copies the ones it needs into its own
runtime directory (tmpfs, removed when it stops) owned by the container's user, mode 0400, and
mounts that directory read-only at /run/secrets.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from components.host.files import HostFile
from components.host.layout import (
    ALLOY_HTTP_PORT,
    LOKI_PORT,
    NODE_EXPORTER_PORT,
    NODE_EXPORTER_TEXTFILE_DIR,
)
from components.renderers import alertmanager, alloy, dashboard, grafana, loki, prometheus
from components.renderers.cloud_init import (
    UfwRule,
    base_ufw_rules,
    render_host_user_data,
    ufw_rules,
)
from components.renderers.host_scripts import config_beside, render_script_config, script_text
from components.settings import Settings

ETC_DIR = "/etc/clipper-monitoring"
SECRETS_DIR = f"{ETC_DIR}/secrets"
DATA_MOUNT = "/srv/monitoring"  # the DigitalOcean volume
RUNTIME_PARENT = "clipper-monitoring"  # under /run
UNIT_DIR = "/etc/systemd/system"
ACTIVATE_SCRIPT = "/usr/local/sbin/clipper-monitoring-activate"
AGENTS_ACTIVATE_SCRIPT = "/usr/local/sbin/clipper-agents-activate"
# The activation scripts are static (scripts/*.sh); their per-stack data is beside them.
ACTIVATE_CONFIG = config_beside(ACTIVATE_SCRIPT, "clipper-monitoring-activate.env")
AGENTS_ACTIVATE_CONFIG = config_beside(AGENTS_ACTIVATE_SCRIPT, "clipper-agents-activate.env")
# Called by both activation scripts, from their own directory.
RETIRE_UNITS_SCRIPT = "/usr/local/sbin/clipper-retire-units"
ALLOY_STATE_DIR = "/var/lib/clipper-alloy"
# The first line of every unit rendered here: how an activation script tells a unit it once
# installed (and may retire) from every other unit on the host.
UNIT_HEADER = "# Rendered by components/renderers/monitoring_units.py; do not edit on the host."
DOCKER = "/usr/bin/docker"

# Secret file names (under SECRETS_DIR on the host, /run/secrets in a container): names only.
SMTP_PASSWORD = "smtp-password"  # noqa: S105
SLACK_WEBHOOK_URL = "slack-webhook-url"
DB_METRICS_PASSWORD = "db-metrics-password"  # noqa: S105
GRAFANA_ADMIN_PASSWORD = "grafana-admin-password"  # noqa: S105

NODE_EXPORTER_TEXTFILE_MOUNT = "/textfile"  # inside node_exporter's container

# Container users (the images' own unprivileged users).
NOBODY = "65534:65534"
GRAFANA_USER = "472:472"
LOKI_USER = "10001:10001"


def volume_device(volume_name: str) -> str:
    """Where a DigitalOcean volume appears on its droplet."""
    return f"/dev/disk/by-id/scsi-0DO_Volume_{volume_name}"


@dataclass(frozen=True)
class MonitoringImages:
    """The image each container runs: `repo:tag@sha256:...` as the preview resolved it
    (components/images/digest.py), or the settings' tags where only paths matter."""

    prometheus: str
    alertmanager: str
    grafana: str
    loki: str
    blackbox_exporter: str
    node_exporter: str
    alloy: str

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitoringImages:
        """The settings' references as they are (for shapes and offline renders)."""
        return cls(**{name: getattr(settings, f"image_{name}") for name in IMAGE_NAMES})


# MonitoringImages' fields; each is the settings field `image_<name>`.
IMAGE_NAMES: tuple[str, ...] = (
    "prometheus", "alertmanager", "grafana", "loki", "blackbox_exporter", "node_exporter",
    "alloy",
)  # fmt: skip


@dataclass(frozen=True)
class Mount:
    """A bind mount: host path -> container path, read-only unless `writable`."""

    host: str
    container: str
    writable: bool = False
    # Mounts made on the host later (the data volume) show inside too (node_exporter's rootfs).
    follow_host_mounts: bool = False

    def flag(self) -> str:
        options = "rw" if self.writable else "ro"
        if self.follow_host_mounts:
            options += ",rslave"
        return f"--volume={self.host}:{self.container}:{options}"


@dataclass(frozen=True)
class Container:
    """One long-running container and how systemd supervises it."""

    name: str  # unit clipper-<name>.service, container clipper-<name>
    description: str
    image: str
    user: str
    args: tuple[str, ...] = ()
    mounts: tuple[Mount, ...] = ()
    secrets: tuple[str, ...] = ()  # file names under SECRETS_DIR
    env: tuple[tuple[str, str], ...] = ()
    env_file: str | None = None
    capabilities: tuple[str, ...] = ()  # added back after --cap-drop=ALL
    reload_by_sighup: bool = False
    needs_volume: bool = True
    data_dir: str | None = None  # under DATA_MOUNT, owned by `user`
    health_url: str = ""

    @property
    def unit(self) -> str:
        return f"clipper-{self.name}.service"

    @property
    def unit_path(self) -> str:
        return f"{UNIT_DIR}/{self.unit}"

    @property
    def runtime_dir(self) -> str:
        return f"/run/{RUNTIME_PARENT}/{self.name}"


def monitoring_containers(
    settings: Settings, images: MonitoringImages, *, private_address: str
) -> list[Container]:
    """The monitoring host's containers, in start order."""
    # Prometheus may use at most 60% of the volume; Loki's retention bounds the rest.
    tsdb_size_gb = max(1, settings.monitoring_volume_gb * 6 // 10)
    return [
        # Prometheus on this host scrapes it on loopback.
        node_exporter_container(images, listen_address="127.0.0.1"),
        Container(
            name="loki",
            description="Loki (logs)",
            image=images.loki,
            user=LOKI_USER,
            args=(f"-config.file={loki.CONFIG_FILE}",),
            mounts=(
                Mount(f"{ETC_DIR}/loki", loki.CONFIG_DIR),
                Mount(f"{DATA_MOUNT}/loki", loki.DATA_DIR, writable=True),
            ),
            data_dir="loki",
            health_url=f"http://{private_address}:{LOKI_PORT}/ready",
        ),
        Container(
            name="blackbox",
            description="blackbox_exporter (HTTPS, TLS and TCP probes)",
            image=images.blackbox_exporter,
            user=NOBODY,
            args=(
                "--config.file=/etc/blackbox_exporter/blackbox.yml",
                f"--web.listen-address=127.0.0.1:{prometheus.BLACKBOX_PORT}",
            ),
            mounts=(Mount(f"{ETC_DIR}/blackbox", "/etc/blackbox_exporter"),),
            reload_by_sighup=True,
            needs_volume=False,
            health_url=f"http://127.0.0.1:{prometheus.BLACKBOX_PORT}/-/healthy",
        ),
        Container(
            name="alertmanager",
            description="Alertmanager (alert routing)",
            image=images.alertmanager,
            user=NOBODY,
            args=(
                f"--config.file={alertmanager.CONFIG_FILE}",
                "--storage.path=/alertmanager",
                f"--web.listen-address=127.0.0.1:{prometheus.ALERTMANAGER_PORT}",
                "--cluster.listen-address=",  # one instance: no gossip port
            ),
            mounts=(
                Mount(f"{ETC_DIR}/alertmanager", alertmanager.CONFIG_DIR),
                Mount(f"{DATA_MOUNT}/alertmanager", "/alertmanager", writable=True),
            ),
            secrets=(
                SMTP_PASSWORD,
                *((SLACK_WEBHOOK_URL,) if settings.alert_slack_channel else ()),
            ),
            reload_by_sighup=True,
            data_dir="alertmanager",
            health_url=f"http://127.0.0.1:{prometheus.ALERTMANAGER_PORT}/-/ready",
        ),
        Container(
            name="prometheus",
            description="Prometheus (metrics and alert rules)",
            image=images.prometheus,
            user=NOBODY,
            args=(
                f"--config.file={prometheus.CONFIG_FILE}",
                "--storage.tsdb.path=/prometheus",
                f"--storage.tsdb.retention.time={settings.metrics_retention_days}d",
                f"--storage.tsdb.retention.size={tsdb_size_gb}GB",
                f"--web.listen-address=127.0.0.1:{prometheus.PROMETHEUS_PORT}",
            ),
            mounts=(
                Mount(f"{ETC_DIR}/prometheus", prometheus.CONFIG_DIR),
                Mount(f"{DATA_MOUNT}/prometheus", "/prometheus", writable=True),
            ),
            secrets=(DB_METRICS_PASSWORD,),
            reload_by_sighup=True,
            data_dir="prometheus",
            health_url=f"http://127.0.0.1:{prometheus.PROMETHEUS_PORT}/-/ready",
        ),
        Container(
            name="grafana",
            description="Grafana (dashboards)",
            image=images.grafana,
            user=GRAFANA_USER,
            mounts=(
                Mount(f"{ETC_DIR}/grafana/provisioning", grafana.PROVISIONING_DIR),
                Mount(f"{ETC_DIR}/grafana/dashboards", grafana.DASHBOARDS_DIR),
                Mount(f"{DATA_MOUNT}/grafana", "/var/lib/grafana", writable=True),
            ),
            secrets=(GRAFANA_ADMIN_PASSWORD,),
            env_file=f"{ETC_DIR}/grafana/grafana.env",
            data_dir="grafana",
            health_url=f"http://127.0.0.1:{prometheus.GRAFANA_PORT}/api/health",
        ),
    ]


def node_exporter_container(images: MonitoringImages, *, listen_address: str) -> Container:
    """node_exporter on every host (the pinned image, not the distribution's package): the
    host's root read-only at /host, and the textfile directory the host scripts write their
    metrics to (clipper-backup's, clipper-release's)."""
    return Container(
        name="node-exporter",
        description="node_exporter (host metrics, host scripts' textfile metrics)",
        image=images.node_exporter,
        user=NOBODY,
        args=(
            "--path.rootfs=/host",
            f"--web.listen-address={listen_address}:{NODE_EXPORTER_PORT}",
            f"--collector.textfile.directory={NODE_EXPORTER_TEXTFILE_MOUNT}",
        ),
        mounts=(
            Mount("/", "/host", follow_host_mounts=True),
            Mount(NODE_EXPORTER_TEXTFILE_DIR, NODE_EXPORTER_TEXTFILE_MOUNT),
        ),
        needs_volume=False,
        health_url=f"http://127.0.0.1:{NODE_EXPORTER_PORT}/metrics",
    )


def alloy_container(images: MonitoringImages) -> Container:
    """Alloy on an app host: root in its container (nginx's log is www-data:adm 0640 and the
    journal is root's), every host path read-only but its storage (the sources' positions)."""
    return Container(
        name="alloy",
        description="Grafana Alloy (ships logs to Loki, request metrics)",
        image=images.alloy,
        user="0:0",
        args=(
            "run",
            # VPC only (ufw and the cloud firewall): Prometheus scrapes /metrics here.
            f"--server.http.listen-addr=0.0.0.0:{ALLOY_HTTP_PORT}",
            f"--storage.path={alloy.STORAGE_DIR}",
            "--disable-reporting",
            alloy.CONFIG_FILE,
        ),
        mounts=(
            Mount(f"{ETC_DIR}/alloy", alloy.CONFIG_DIR),
            Mount(ALLOY_STATE_DIR, alloy.STORAGE_DIR, writable=True),
            Mount("/var/log/nginx", "/var/log/nginx"),
            Mount(alloy.DOCKER_CONTAINERS_DIR, alloy.DOCKER_CONTAINERS_DIR),
            Mount(alloy.JOURNAL_DIR, alloy.JOURNAL_DIR),
            Mount("/etc/machine-id", "/etc/machine-id"),
        ),
        # Read nginx's www-data:adm 0640 log without owning it.
        capabilities=("DAC_READ_SEARCH",),
        env=(("HOST", "%H"),),  # systemd's %H: the droplet's host name
        needs_volume=False,
        health_url=f"http://127.0.0.1:{ALLOY_HTTP_PORT}/-/ready",
    )


def _continued(words: Sequence[str]) -> str:
    return " \\\n    ".join(words)


def render_container_unit(container: Container) -> str:
    """The systemd unit that runs `container` with `docker run --rm`, restarting it on failure."""
    c = container
    name = f"clipper-{c.name}"
    uid, gid = c.user.split(":")
    unit = [
        "[Unit]",
        f"Description=Clipper monitoring: {c.description}, {c.image}",
        "After=docker.service network-online.target",
        "Requires=docker.service",
        "Wants=network-online.target",
    ]
    if c.needs_volume:
        unit.append(f"RequiresMountsFor={DATA_MOUNT}")
    service = ["", "[Service]", "Type=exec"]
    run = [DOCKER, "run", "--rm", f"--name={name}", "--network=host", f"--user={c.user}"]
    run += ["--security-opt=no-new-privileges", "--cap-drop=ALL"]
    run += [f"--cap-add={cap}" for cap in c.capabilities]
    if c.secrets:
        service += [f"RuntimeDirectory={RUNTIME_PARENT}/{c.name}", "RuntimeDirectoryMode=0755"]
        run.append(Mount(c.runtime_dir, "/run/secrets").flag())
    run += [m.flag() for m in c.mounts]
    run += [f"--env={key}={value}" for key, value in c.env]
    if c.env_file:
        run.append(f"--env-file={c.env_file}")
    run += [c.image, *c.args]
    service.append(f"ExecStartPre=-{DOCKER} rm --force {name}")
    service += [
        f"ExecStartPre=/usr/bin/install -m 0400 -o {uid} -g {gid}"
        f" {SECRETS_DIR}/{secret} {c.runtime_dir}/{secret}"
        for secret in c.secrets
    ]
    service.append("ExecStart=" + _continued([shlex.quote(w) for w in run]))
    service.append(f"ExecStop={DOCKER} stop --time=30 {name}")
    if c.reload_by_sighup:
        service.append(f"ExecReload={DOCKER} kill --signal=HUP {name}")
    service += ["Restart=always", "RestartSec=10", "TimeoutStopSec=45"]
    install = ["", "[Install]", "WantedBy=multi-user.target"]
    return UNIT_HEADER + "\n" + "\n".join(unit + service + install) + "\n"


def render_activate_config(containers: Sequence[Container], *, volume_name: str) -> str:
    """ACTIVATE_CONFIG, what the monitoring host's activation script
    (scripts/clipper-monitoring-activate.sh) reads: the volume, the data directories, the units
    and their health URLs."""
    return render_script_config(
        f"Sourced by {ACTIVATE_SCRIPT}; rendered by components/renderers/monitoring_units.py.",
        {
            "DEVICE": volume_device(volume_name),
            "MOUNT": DATA_MOUNT,
            "DATA_DIRS": [
                f"{c.user.split(':')[0]} {c.user.split(':')[1]} {c.data_dir}"
                for c in containers
                if c.data_dir
            ],
            "TEXTFILE_DIR": NODE_EXPORTER_TEXTFILE_DIR,
            "UNITS": [c.unit for c in containers],
            "UNIT_HEADER": UNIT_HEADER,
            "HEALTH_URLS": [c.health_url for c in containers if c.health_url],
        },
    )


def app_agent_containers(images: MonitoringImages) -> list[Container]:
    """What runs on every app host for monitoring: node_exporter (scraped from the VPC) and
    Alloy."""
    return [node_exporter_container(images, listen_address="0.0.0.0"), alloy_container(images)]  # noqa: S104


def render_agents_activate_config(settings: Settings, images: MonitoringImages) -> str:
    """AGENTS_ACTIVATE_CONFIG, what an app host's activation script
    (scripts/clipper-agents-activate.sh) reads: Alloy's ufw rule, the units, their health URLs."""
    containers = app_agent_containers(images)
    # cloud-init opens it on new droplets; a droplet created before (user-data changes do not
    # replace droplets) gets the same rule from the script.
    (rule,) = [r for r in ufw_rules(settings) if r.port == ALLOY_HTTP_PORT]
    if rule.source == "any":
        raise ValueError("Alloy's metrics are for the VPC only")
    return render_script_config(
        f"Sourced by {AGENTS_ACTIVATE_SCRIPT}; rendered by"
        " components/renderers/monitoring_units.py.",
        {
            "ALLOY_PORT": rule.port,
            "ALLOY_FROM": rule.source,
            "ALLOY_RULE_COMMENT": rule.comment,
            "STATE_DIR": ALLOY_STATE_DIR,
            "TEXTFILE_DIR": NODE_EXPORTER_TEXTFILE_DIR,
            "UNITS": [c.unit for c in containers],
            "UNIT_HEADER": UNIT_HEADER,
            "HEALTH_URLS": [c.health_url for c in containers],
        },
    )


@dataclass(frozen=True)
class MonitoringSecrets:
    """The secret files' contents (plain text here: the component wraps them as secrets)."""

    smtp_password: str
    db_metrics_password: str
    grafana_admin_password: str
    slack_webhook_url: str | None = None


@dataclass(frozen=True)
class MonitoringHostConfig:
    """What the monitoring host's config files need besides settings (none of it secret)."""

    private_address: str
    volume_name: str
    targets: prometheus.ScrapeTargets
    ca_certificates: dict[str, str] = field(default_factory=dict)  # file name -> PEM


def monitoring_config_files(
    settings: Settings, config: MonitoringHostConfig, images: MonitoringImages
) -> list[HostFile]:
    """Every non-secret file of the monitoring host: configs, dashboards, units, the script."""
    containers = monitoring_containers(settings, images, private_address=config.private_address)
    files = [
        HostFile(
            f"{ETC_DIR}/prometheus/prometheus.yml",
            prometheus.render_prometheus_config(settings, config.targets),
        ),
        HostFile(
            f"{ETC_DIR}/prometheus/rules/{prometheus.RULES_FILE_NAME}",
            prometheus.render_alert_rules(settings),
        ),
        *(
            HostFile(f"{ETC_DIR}/prometheus/ca/{name}", pem)
            for name, pem in sorted(config.ca_certificates.items())
        ),
        HostFile(
            f"{ETC_DIR}/alertmanager/alertmanager.yml",
            alertmanager.render_alertmanager_config(settings),
        ),
        HostFile(f"{ETC_DIR}/blackbox/blackbox.yml", prometheus.render_blackbox_config(settings)),
        HostFile(
            f"{ETC_DIR}/loki/loki.yml",
            loki.render_loki_config(settings, listen_address=config.private_address),
        ),
        HostFile(f"{ETC_DIR}/grafana/grafana.env", grafana.render_grafana_env(settings)),
        HostFile(
            f"{ETC_DIR}/grafana/provisioning/datasources/clipper.yml",
            grafana.render_datasources(settings, loki_address=config.private_address),
        ),
        HostFile(
            f"{ETC_DIR}/grafana/provisioning/dashboards/clipper.yml",
            grafana.render_dashboard_provider(settings),
        ),
        HostFile(
            f"{ETC_DIR}/grafana/dashboards/{grafana.DASHBOARD_FILE_NAME}",
            dashboard.render_overview_dashboard(settings),
        ),
        *(HostFile(c.unit_path, render_container_unit(c)) for c in containers),
        HostFile(
            ACTIVATE_CONFIG, render_activate_config(containers, volume_name=config.volume_name)
        ),
        HostFile(ACTIVATE_SCRIPT, script_text("clipper-monitoring-activate"), "0755"),
        HostFile(RETIRE_UNITS_SCRIPT, script_text("clipper-retire-units"), "0755"),
    ]
    return files


def monitoring_secret_files(secrets: MonitoringSecrets) -> list[HostFile]:
    """The monitoring host's secret files, root-owned 0600."""
    values = {
        SMTP_PASSWORD: secrets.smtp_password,
        DB_METRICS_PASSWORD: secrets.db_metrics_password,
        GRAFANA_ADMIN_PASSWORD: secrets.grafana_admin_password,
    }
    if secrets.slack_webhook_url is not None:
        values[SLACK_WEBHOOK_URL] = secrets.slack_webhook_url
    return [HostFile(f"{SECRETS_DIR}/{name}", value, "0600") for name, value in values.items()]


def app_agent_files(
    settings: Settings, images: MonitoringImages, *, loki_address: str
) -> list[HostFile]:
    """An app host's monitoring files: Alloy's config, the agents' units and the activation
    script (no secrets)."""
    return [
        HostFile(
            f"{ETC_DIR}/alloy/config.alloy",
            alloy.render_alloy_config(settings, loki_address=loki_address),
        ),
        *(HostFile(c.unit_path, render_container_unit(c)) for c in app_agent_containers(images)),
        HostFile(AGENTS_ACTIVATE_CONFIG, render_agents_activate_config(settings, images)),
        HostFile(AGENTS_ACTIVATE_SCRIPT, script_text("clipper-agents-activate"), "0755"),
        HostFile(RETIRE_UNITS_SCRIPT, script_text("clipper-retire-units"), "0755"),
    ]


def monitoring_firewall(settings: Settings) -> list[UfwRule]:
    """The monitoring host's ufw rules: every host's (SSH from the admin networks,
    node_exporter from the VPC) and Loki's pushes from the VPC. Nothing else: the UIs are on
    loopback."""
    return [
        *base_ufw_rules(settings),
        UfwRule(LOKI_PORT, settings.vpc_ip_range, "loki pushes from the VPC"),
    ]


def render_monitoring_user_data(settings: Settings, *, deploy_public_key: str) -> str:
    """The monitoring droplet's `#cloud-config`: the same hardening as every host
    (cloud_init.render_host_user_data) with its own firewall. No monitoring file is here: they
    change often, some are secret, and they arrive over SSH once the volume is attached."""
    return render_host_user_data(
        settings,
        deploy_public_key=deploy_public_key,
        firewall=monitoring_firewall(settings),
        setup_commands=[
            'step "monitoring"',
            f'echo "the containers start over SSH once the volume is attached ({ACTIVATE_SCRIPT})"',
        ],
    )
