"""The backup host's rendered files, each read by what reads it on the host: the systemd units
by `systemd-analyze verify` (and their schedules by `systemd-analyze calendar`), the install
command by shellcheck, and the config and credentials files by clipper-backup's own parsers."""

from __future__ import annotations

import subprocess
from configparser import ConfigParser
from pathlib import Path

import pytest
from clipper.backup_config import Config as BackupConfig
from clipper.envfile import parse_env_text

from components.backups import BACKUP_SCRIPT_SOURCE, enable_command
from components.host import layout as host_layout
from components.host.layout import under_root
from components.renderers.backup_units import (
    BACKUP_SERVICE,
    BACKUP_TIMER,
    DRILL_SCHEDULE,
    DRILL_SERVICE,
    DRILL_TIMER,
    BackupTarget,
    backup_host_files,
    render_backup_config,
    render_backup_credentials,
    render_backup_service,
    render_backup_timer,
    render_drill_service,
    render_drill_timer,
)
from tests.support.edge import install_host_files

SCHEDULE = "*-*-* 03:15:00 UTC"
TARGET = BackupTarget("production", "clipper", "clipper-example-com-backups", "nyc3")


def _unit(text: str) -> ConfigParser:
    parser = ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    return parser


def _run(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, input=stdin, capture_output=True, text=True, check=False, timeout=60
    )


@pytest.fixture
def unit_root(tmp_path: Path) -> Path:
    """The backup files at their host paths under a root, with the real script installed where
    the units start it (verify checks that the executable exists)."""
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/systemd").symlink_to("/usr/lib/systemd")
    install_host_files(backup_host_files(TARGET, SCHEDULE), tmp_path)
    script = Path(under_root(host_layout.BACKUP_SCRIPT, str(tmp_path)))
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(BACKUP_SCRIPT_SOURCE.read_text())
    script.chmod(0o755)
    return tmp_path


def test_the_units_pass_systemd_analyze_verify(unit_root: Path) -> None:
    units = [
        str(unit_root / "etc/systemd/system" / unit)
        for unit in (BACKUP_SERVICE, BACKUP_TIMER, DRILL_SERVICE, DRILL_TIMER)
    ]
    proc = _run(["systemd-analyze", "verify", "--man=no", f"--root={unit_root}", *units])
    findings = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.strip() and not line.startswith("Failed to resolve symlink")
    ]
    assert proc.returncode == 0 and findings == [], "\n".join(findings)


@pytest.mark.parametrize("schedule", [SCHEDULE, DRILL_SCHEDULE])
def test_systemd_reads_each_schedule_as_a_time_in_utc(schedule: str) -> None:
    proc = _run(["systemd-analyze", "calendar", schedule])
    assert proc.returncode == 0, proc.stderr
    # Already in systemd's normalized form, pinned to UTC whatever the host's time zone.
    assert f"Normalized form: {schedule}\n" in proc.stdout
    assert schedule.endswith(" UTC")
    assert "Next elapse:" in proc.stdout


def test_the_backup_timer_is_daily_persistent_and_spread() -> None:
    timer = _unit(render_backup_timer(SCHEDULE))
    assert timer["Timer"]["OnCalendar"] == SCHEDULE
    assert timer["Timer"]["Unit"] == BACKUP_SERVICE
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["RandomizedDelaySec"] == "15min"
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_the_drill_timer_runs_weekly_after_the_nights_backup() -> None:
    timer = _unit(render_drill_timer())
    assert timer["Timer"]["Unit"] == DRILL_SERVICE
    assert timer["Timer"]["OnCalendar"].startswith("Sun ")
    assert timer["Timer"]["Persistent"] == "true"


@pytest.mark.parametrize(
    ("text", "command"), [(render_backup_service(), "backup"), (render_drill_service(), "drill")]
)
def test_each_service_runs_the_script_once_fenced_in_and_at_low_priority(
    text: str, command: str
) -> None:
    service = _unit(text)["Service"]
    assert service["ExecStart"] == f"{host_layout.BACKUP_SCRIPT} {command}"
    assert service["Type"] == "oneshot"
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert service["IOSchedulingClass"] == "idle"
    # What the script writes is exactly what the sandbox leaves writable.
    assert "/var/lib/" + service["StateDirectory"] == host_layout.BACKUP_WORK_DIR
    assert service["ReadWritePaths"] == "-" + host_layout.NODE_EXPORTER_TEXTFILE_DIR
    assert host_layout.BACKUP_METRICS_FILE.startswith(host_layout.NODE_EXPORTER_TEXTFILE_DIR)


def test_the_config_is_what_the_script_loads(tmp_path: Path) -> None:
    path = tmp_path / "backup.json"
    path.write_text(render_backup_config(TARGET))
    loaded = BackupConfig.load(path)
    assert loaded.bucket == TARGET.bucket
    assert loaded.endpoint == "https://nyc3.digitaloceanspaces.com"
    assert str(loaded.credentials_file) == host_layout.BACKUP_CREDENTIALS_FILE
    assert str(loaded.db_admin_env_file) == host_layout.DB_ADMIN_ENV_FILE
    assert str(loaded.metrics_file) == host_layout.BACKUP_METRICS_FILE
    assert loaded.prefix == "production"
    assert not any(str(p).endswith(".env") for p in loaded.config_files)


@pytest.mark.parametrize(
    "secret", ["plain0123456789", 'with "quotes" and $dollars', "trailing space ", "a#b\\c"]
)
def test_the_credentials_file_round_trips_through_the_scripts_parser(secret: str) -> None:
    text = render_backup_credentials("DO00ACCESSKEY", secret)
    values = parse_env_text(text, "backup.env")
    assert values == {"SPACES_ACCESS_KEY_ID": "DO00ACCESSKEY", "SPACES_SECRET_ACCESS_KEY": secret}


def test_the_install_command_passes_shellcheck(tmp_path: Path) -> None:
    script = tmp_path / "enable.sh"
    script.write_text("#!/bin/sh\n" + enable_command("17") + "\n")
    proc = _run(["shellcheck", "-f", "gcc", str(script)])
    assert proc.returncode == 0, proc.stdout


def test_the_install_command_installs_a_client_as_new_as_the_server() -> None:
    command = enable_command("17")
    assert "postgresql-client-17" in command
    assert "/usr/lib/postgresql/17/bin/pg_dump" in command
    assert "rclone" in command
