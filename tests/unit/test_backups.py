"""Backups under mocks, for both stacks: the bucket, its retention rule, versioning and
protection, the bucket-scoped key, the key's way to the host (SSH only, 0600), and the job on the
first app host only. Plus the backup settings, checked against systemd's own calendar parser."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from components.backups import BACKUP_SCRIPT_SOURCE, NONCURRENT_VERSION_DAYS, bucket_name
from components.host import layout as host_layout
from components.offline.mocks import Registration
from components.offline.runner import ProgramRun, stack_config
from components.settings import SettingsError, parse_settings
from tests.support.program import contains_text, custom_run, is_secret, of_role, plain, stack_run
from tests.support.release_host import settings_for

STACKS = ["staging", "production"]
BUCKET = "digitalocean:index/spacesBucket:SpacesBucket"
KEY = "digitalocean:index/spacesKey:SpacesKey"
DROPLET = "digitalocean:index/droplet:Droplet"
REMOTE_FILES = "clipper:host:RemoteFiles"
COMMAND = "command:remote:Command"
BACKUPS = "clipper:backups:Backups"


def _bucket(run: ProgramRun) -> Registration:
    (bucket,) = run.of_type(BUCKET)
    return bucket


def _backup_files(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """Every file the backups component installs, by path: its plain entry (path, mode,
    content) and whether the recorded input was a secret."""
    (component,) = run.of_type(BACKUPS)
    files: dict[str, dict[str, Any]] = {}
    for reg in run.of_type(REMOTE_FILES):
        if reg.parent_urn == component.urn:
            for entry in plain(reg.inputs["files"]):
                files[entry["path"]] = {**entry, "secret": is_secret(reg.inputs["files"])}
    return files


def _backup_commands(run: ProgramRun) -> list[Registration]:
    """The remote commands of the backups component and of its RemoteFiles bundles."""
    (component,) = run.of_type(BACKUPS)
    parents = {component.urn} | {
        r.urn for r in run.of_type(REMOTE_FILES) if r.parent_urn == component.urn
    }
    return [r for r in run.of_type(COMMAND) if r.parent_urn in parents]


# ---------------------------------------------------------------------------- the bucket


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_has_one_private_versioned_bucket_in_its_region(stack: str) -> None:
    run = stack_run(stack)
    bucket = plain(_bucket(run).inputs)
    settings = settings_for(stack)
    assert bucket["name"] == bucket_name(settings.domain)
    assert bucket["acl"] == "private"
    assert bucket["versioning"] == {"enabled": True}
    assert bucket["region"] == settings.region
    assert bucket["forceDestroy"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_the_lifecycle_rule_expires_backups_after_the_retention_days(stack: str) -> None:
    (rule,) = plain(_bucket(stack_run(stack)).inputs)["lifecycleRules"]
    assert rule["enabled"] is True
    assert "prefix" not in rule  # the whole bucket: no backup escapes retention
    assert rule["expiration"] == {"days": 30}
    assert rule["noncurrentVersionExpiration"] == {"days": NONCURRENT_VERSION_DAYS}
    assert rule["abortIncompleteMultipartUploadDays"] == 1


def test_the_retention_follows_the_setting() -> None:
    run = custom_run("staging", overrides={"backupRetentionDays": "45"})
    (rule,) = plain(_bucket(run).inputs)["lifecycleRules"]
    assert rule["expiration"] == {"days": 45}


def test_the_production_bucket_is_protected_and_retained_and_staging_is_not() -> None:
    production, staging = _bucket(stack_run("production")), _bucket(stack_run("staging"))
    assert production.protect and production.retain_on_delete
    assert not staging.protect and not staging.retain_on_delete


def test_another_backup_region_moves_the_bucket_and_the_endpoint() -> None:
    run = custom_run("staging", overrides={"backupRegion": "ams3"})
    assert plain(_bucket(run).inputs)["region"] == "ams3"
    config = json.loads(_backup_files(run)[host_layout.BACKUP_CONFIG_FILE]["content"])
    assert config["endpoint"] == "https://ams3.digitaloceanspaces.com"
    assert run.outputs["backupEndpoint"].value == "https://ams3.digitaloceanspaces.com"


@pytest.mark.parametrize("stack", STACKS)
def test_the_project_holds_the_bucket(stack: str) -> None:
    run = stack_run(stack)
    (project,) = run.of_type("digitalocean:index/project:Project")
    assert _bucket(run).outputs["bucketUrn"] in plain(project.inputs["resources"])


@pytest.mark.parametrize(
    "domain",
    ["clipper.example.com", "a" * 60 + ".example.com", "x-" * 40 + "clipper.example.com"],
)
def test_bucket_names_are_valid_spaces_names(domain: str) -> None:
    name = bucket_name(domain)
    assert 3 <= len(name) <= 63
    assert name.replace("-", "").isalnum() and name == name.lower()
    assert not name.startswith("-") and "--" not in name.replace(domain.replace(".", "-"), "")


# ---------------------------------------------------------------------------- the key


@pytest.mark.parametrize("stack", STACKS)
def test_the_key_may_only_read_and_write_the_backup_bucket(stack: str) -> None:
    run = stack_run(stack)
    (key,) = run.of_type(KEY)
    assert plain(key.inputs["grants"]) == [
        {"bucket": plain(_bucket(run).inputs)["name"], "permission": "readwrite"}
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_the_spaces_secret_reaches_the_host_only_as_a_0600_file_over_ssh(stack: str) -> None:
    run = stack_run(stack)
    (key,) = run.of_type(KEY)
    secret = plain(key.outputs["secretKey"])
    assert is_secret(key.outputs["secretKey"])

    credentials = _backup_files(run)[host_layout.BACKUP_CREDENTIALS_FILE]
    assert credentials["secret"]
    assert credentials["mode"] == "0600"
    assert f"SPACES_SECRET_ACCESS_KEY={secret}\n" in credentials["content"]
    # The only other places it appears are secret: the installer's stdin and the key itself.
    for reg in run.registrations:
        if reg.urn == key.urn:
            continue
        for name, value in reg.inputs.items():
            if contains_text(value, secret):
                assert is_secret(value), (reg.name, name)
    for droplet in run.of_type(DROPLET):
        assert not contains_text(droplet.inputs["userData"], secret)
    for command in _backup_commands(run):
        assert not contains_text(command.inputs["create"], secret)
    for name, output in run.outputs.items():
        assert output.secret or not contains_text(output.value, secret), name


# ---------------------------------------------------------------------------- the backup host


@pytest.mark.parametrize("stack", STACKS)
def test_backups_are_installed_and_started_only_on_the_first_app_host(stack: str) -> None:
    run = stack_run(stack)
    droplets = sorted(of_role(run, DROPLET), key=lambda d: plain(d.inputs["name"]))
    first = droplets[0].outputs["ipv4Address"]
    commands = _backup_commands(run)
    assert len(commands) == 3  # files, credentials, enable
    for command in commands:
        connection = plain(command.inputs["connection"])
        assert connection["host"] == first
        assert connection["user"] == host_layout.DEPLOY_USER
        assert is_secret(command.inputs["connection"])  # it carries the private key
    if stack == "production":
        assert len(droplets) == 2  # and the second one gets nothing


@pytest.mark.parametrize("stack", STACKS)
def test_the_host_gets_the_script_its_config_and_both_timers(stack: str) -> None:
    files = _backup_files(stack_run(stack))
    script = files[host_layout.BACKUP_SCRIPT]
    assert script["mode"] == "0755"
    assert script["content"] == BACKUP_SCRIPT_SOURCE.read_text()
    for unit in ("clipper-backup", "clipper-backup-drill"):
        assert files[f"/etc/systemd/system/{unit}.service"]["mode"] == "0644"
        assert "OnCalendar=" in files[f"/etc/systemd/system/{unit}.timer"]["content"]
    config = json.loads(files[host_layout.BACKUP_CONFIG_FILE]["content"])
    assert config["prefix"] == stack
    assert config["database"] == "clipper"
    assert host_layout.BACKEND_ENV_FILE not in config["config_files"]
    assert host_layout.DB_ADMIN_ENV_FILE not in config["config_files"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_timers_start_after_the_files_and_the_release(stack: str) -> None:
    run = stack_run(stack)
    enable = run.named(f"{stack}-backups-enable")
    names = {d.rsplit("::", 1)[-1] for d in enable.depends_on}
    # Each host's last release step, and both bundles on the backup host.
    for host in of_role(run, DROPLET):
        number = plain(host.inputs["name"]).rsplit("-", 1)[-1]
        assert f"{stack}-release-app-{number}-deploy" in names
    assert {f"{stack}-backups-files-install", f"{stack}-backups-credentials-install"} <= names
    assert "systemctl enable --now clipper-backup.timer clipper-backup-drill.timer" in plain(
        enable.inputs["create"]
    )


def test_the_schedule_setting_reaches_the_timer() -> None:
    run = custom_run("staging", overrides={"backupSchedule": "Mon..Fri *-*-* 01:30:00 UTC"})
    timer = _backup_files(run)["/etc/systemd/system/clipper-backup.timer"]["content"]
    assert "\nOnCalendar=Mon..Fri *-*-* 01:30:00 UTC\n" in timer


# ---------------------------------------------------------------------------- settings


def _calendar_accepted_by_systemd(expression: str) -> bool:
    proc = subprocess.run(
        ["systemd-analyze", "calendar", expression],
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    return proc.returncode == 0


def _problems(**overrides: str) -> list[str]:
    config, secret_keys = stack_config("staging", overrides=overrides)
    raw = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith("clipper-infra:")}
    try:
        parse_settings("staging", raw, {k.split(":", 1)[1] for k in secret_keys})
    except SettingsError as err:
        return err.problems
    return []


@pytest.mark.parametrize(
    "schedule",
    [
        "*-*-* 03:15:00 UTC",
        "*-*-* 03:15:00",
        "*-*-* 03:15",
        "Sun *-*-* 05:30:00 UTC",
        "Mon..Fri *-*-* 01:00:00",
        "Mon,Thu *-*-* 22:45:00 UTC",
        "*-*-1,15 04:00:00",
        "*-*-* 0/6:05:00 UTC",
    ],
)
def test_a_schedule_systemd_accepts_is_accepted(schedule: str) -> None:
    assert _calendar_accepted_by_systemd(schedule)
    assert _problems(backupSchedule=schedule) == []


@pytest.mark.parametrize(
    ("schedule", "phrase"),
    [
        ("daily at 3", "not a systemd OnCalendar time"),
        ("*-*-* 25:00:00", "outside 0..23"),
        ("*-13-* 03:00:00", "outside 1..12"),
        ("Funday *-*-* 03:00:00", "not a systemd OnCalendar time"),
        ("*-*-* 03:x:00", "the minute field"),
        ("*-*-* 03:15:00 Europe/Nowhere", "not a systemd OnCalendar time"),
    ],
)
def test_a_schedule_systemd_rejects_is_rejected_naming_the_key(schedule: str, phrase: str) -> None:
    assert not _calendar_accepted_by_systemd(schedule)
    (problem,) = _problems(backupSchedule=schedule)
    assert problem.startswith("clipper-infra:backupSchedule = ")
    assert phrase in problem


@pytest.mark.parametrize("schedule", ["*-*-* 03:*:00", "*-*-* 03:0/5:00", "*-*-* *:00,30:00"])
def test_a_schedule_that_runs_more_than_hourly_is_rejected(schedule: str) -> None:
    assert _calendar_accepted_by_systemd(schedule)  # valid for systemd, wrong for a backup
    (problem,) = _problems(backupSchedule=schedule)
    assert "more than once an hour" in problem


@pytest.mark.parametrize(("days", "ok"), [("6", False), ("7", True), ("30", True), ("0", False)])
def test_retention_is_at_least_a_week(days: str, ok: bool) -> None:
    problems = _problems(backupRetentionDays=days)
    assert (problems == []) is ok
    assert all("backupRetentionDays" in p for p in problems)


def test_a_stack_region_without_spaces_needs_a_backup_region() -> None:
    (problem,) = _problems(region="nyc1")
    assert problem.startswith("clipper-infra:backupRegion")
    assert "nyc1 has no Spaces" in problem
    assert _problems(region="nyc1", backupRegion="nyc3") == []
    (bad,) = _problems(backupRegion="nyc1")
    assert "has no Spaces object storage" in bad
