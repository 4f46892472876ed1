"""The backup host's files: clipper-backup's config, its Spaces credentials, and the systemd
units that run the daily backup and the weekly restore drill.

They go to the first app host over SSH (components/backups.py, a RemoteFiles bundle), not in
cloud-init: only one host runs backups, and every droplet shares one user-data (a change to it
would replace or diverge the droplets). The credentials file is the only secret one (mode 0600).

Pure functions: settings and resolved values in, text out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from components.host import layout as host_layout
from components.host.files import HostFile
from components.renderers.env_file import render_env_file

BACKUP_SERVICE = "clipper-backup.service"
BACKUP_TIMER = "clipper-backup.timer"
DRILL_SERVICE = "clipper-backup-drill.service"
DRILL_TIMER = "clipper-backup-drill.timer"
TIMERS: tuple[str, str] = (BACKUP_TIMER, DRILL_TIMER)

# The drill restores last night's backup into a scratch database on the same cluster: weekly,
# on a quiet morning, after that day's backup (the default 03:15 plus its random delay).
DRILL_SCHEDULE = "Sun *-*-* 05:30:00 UTC"
# Spread the start so that several stacks (one account, one Spaces region) do not dump at once.
RANDOMIZED_DELAY = "15min"
# A dump of a large database takes a while; a hung one must not block the next night's run.
BACKUP_TIMEOUT = "3h"
DRILL_TIMEOUT = "4h"

# Non-secret host config a backup archives beside the dump (never an env file).
CONFIG_FILES_TO_ARCHIVE: tuple[str, ...] = (
    host_layout.DEPLOY_CONFIG_FILE,
    host_layout.NGINX_SITE_FILE,
    host_layout.NGINX_ACTIVE_UPSTREAMS_FILE,
    host_layout.RELEASES_FILE,
)


@dataclass(frozen=True)
class BackupTarget:
    """Where backups go and what they dump (all non-secret)."""

    environment: str
    database: str
    bucket: str
    region: str

    @property
    def endpoint(self) -> str:
        return f"https://{self.region}.digitaloceanspaces.com"


def render_backup_config(target: BackupTarget) -> str:
    """/etc/clipper/backup.json: what clipper-backup reads (no secret: those are in env files)."""
    doc = {
        "schema": 1,
        "environment": target.environment,
        "database": target.database,
        "db_admin_env_file": host_layout.DB_ADMIN_ENV_FILE,
        "credentials_file": host_layout.BACKUP_CREDENTIALS_FILE,
        "bucket": target.bucket,
        "endpoint": target.endpoint,
        "region": target.region,
        "prefix": target.environment,
        "work_dir": host_layout.BACKUP_WORK_DIR,
        "metrics_file": host_layout.BACKUP_METRICS_FILE,
        "releases_file": host_layout.RELEASES_FILE,
        "config_files": list(CONFIG_FILES_TO_ARCHIVE),
    }
    return json.dumps(doc, indent=2) + "\n"


def render_backup_credentials(access_key_id: str, secret_access_key: str) -> str:
    """/etc/clipper/backup.env (0600): the bucket-scoped Spaces key, in the env-file format."""
    return render_env_file(
        {"SPACES_ACCESS_KEY_ID": access_key_id, "SPACES_SECRET_ACCESS_KEY": secret_access_key},
        "Spaces key of the backup bucket (read-write on that bucket only): clipper-backup.",
    )


def _service(description: str, command: str, timeout: str) -> str:
    work_dir = host_layout.BACKUP_WORK_DIR.removeprefix("/var/lib/")
    return f"""\
[Unit]
Description={description}
Documentation=man:systemd.timer(5) file://{host_layout.BACKUP_SCRIPT}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={host_layout.BACKUP_SCRIPT} {command}
TimeoutStartSec={timeout}
# Root only to read the 0600 credentials; otherwise fenced in and gentle with the app's host.
Nice=10
IOSchedulingClass=idle
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
StateDirectory={work_dir}
StateDirectoryMode=0700
ReadWritePaths=-{host_layout.NODE_EXPORTER_TEXTFILE_DIR}
"""


def _timer(description: str, service: str, schedule: str) -> str:
    return f"""\
[Unit]
Description={description}

[Timer]
Unit={service}
OnCalendar={schedule}
# Run at boot when the host was off at the scheduled time.
Persistent=true
RandomizedDelaySec={RANDOMIZED_DELAY}
AccuracySec=1min

[Install]
WantedBy=timers.target
"""


def render_backup_service() -> str:
    """clipper-backup.service: one logical backup to Spaces."""
    return _service("Clipper: PostgreSQL backup to Spaces", "backup", BACKUP_TIMEOUT)


def render_backup_timer(schedule: str) -> str:
    """clipper-backup.timer: the daily backup at `schedule` (settings.backup_schedule)."""
    return _timer("Clipper: daily PostgreSQL backup", BACKUP_SERVICE, schedule)


def render_drill_service() -> str:
    """clipper-backup-drill.service: restore the latest backup into a scratch db and check it."""
    return _service("Clipper: restore drill of the latest backup", "drill", DRILL_TIMEOUT)


def render_drill_timer() -> str:
    """clipper-backup-drill.timer: the weekly restore drill."""
    return _timer("Clipper: weekly restore drill", DRILL_SERVICE, DRILL_SCHEDULE)


def unit_path(unit: str) -> str:
    return f"{host_layout.SYSTEMD_UNIT_DIR}/{unit}"


def backup_host_files(target: BackupTarget, schedule: str) -> list[HostFile]:
    """The non-secret files of the backup host (the script itself is added by the component)."""
    return [
        HostFile(host_layout.BACKUP_CONFIG_FILE, render_backup_config(target), "0644"),
        HostFile(unit_path(BACKUP_SERVICE), render_backup_service(), "0644"),
        HostFile(unit_path(BACKUP_TIMER), render_backup_timer(schedule), "0644"),
        HostFile(unit_path(DRILL_SERVICE), render_drill_service(), "0644"),
        HostFile(unit_path(DRILL_TIMER), render_drill_timer(), "0644"),
    ]
