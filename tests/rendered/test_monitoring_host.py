"""The monitoring host's user-data, its container units and the activation scripts (its own and
Alloy's on the app hosts), checked by the tools that read them: cloud-init schema,
systemd-analyze verify, shellcheck; and the rules the design sets for them (no secret in
user-data, UIs on loopback only, secrets 0600 on disk and 0400 for the container's user)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from components.host.layout import (
    BACKUP_METRICS_FILE,
    HOST_SETUP_CONFIG,
    HOST_SETUP_SCRIPT,
    LOKI_PORT,
    NODE_EXPORTER_PORT,
    NODE_EXPORTER_TEXTFILE_DIR,
)
from components.offline.render import USER_DATA_PATH
from components.offline.runner import placeholder_secret
from components.renderers import monitoring_units as units
from components.renderers.host_scripts import script_text
from tests.support.host_scripts import dry_run, dry_run_setup, install_beside, sourced
from tests.support.monitoring import STACKS, role_files, run_tool, stack_settings, write

MONITORING_UNITS = ("node-exporter", "loki", "blackbox", "alertmanager", "prometheus", "grafana")
SECRET_KEYS = ("alertSmtpPassword", "alertSlackWebhookUrl", "twitchClientSecret")


def _user_data(stack: str) -> str:
    return role_files(stack, "monitoring")[USER_DATA_PATH].content


def _unit(stack: str, name: str, role: str = "monitoring") -> str:
    return role_files(stack, role)[f"{units.UNIT_DIR}/clipper-{name}.service"].content


def _exec_start(unit: str) -> list[str]:
    match = re.search(r"^ExecStart=(.*?)(?=^\w+=)", unit, re.M | re.S)
    assert match
    return shlex.split(match.group(1).replace("\\\n", " "))


@pytest.mark.parametrize("stack", STACKS)
def test_the_monitoring_user_data_passes_the_cloud_init_schema(stack: str, tmp_path: Path) -> None:
    path = write(tmp_path / "user-data.yaml", _user_data(stack))
    result = run_tool(["cloud-init", "schema", "--config-file", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_the_monitoring_host_is_hardened_like_the_app_hosts(stack: str) -> None:
    monitoring = yaml.safe_load(_user_data(stack))
    app = yaml.safe_load(role_files(stack, "app")[USER_DATA_PATH].content)
    assert monitoring["disable_root"] is True and monitoring["ssh_pwauth"] is False
    app_files = {f["path"]: f["content"] for f in app["write_files"]}
    # The same setup script too; only its config (firewall, role steps) is the role's own.
    for entry in monitoring["write_files"]:
        if entry["path"] != HOST_SETUP_CONFIG:
            assert entry["content"] == app_files[entry["path"]], entry["path"]
    assert HOST_SETUP_SCRIPT in app_files
    assert monitoring["users"] == app["users"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_monitoring_user_data_holds_no_secret_and_no_monitoring_config(stack: str) -> None:
    text = _user_data(stack)
    for key in SECRET_KEYS:
        assert placeholder_secret(key) not in text
    assert "mock-metrics-password" not in text and "mock-random-password" not in text
    assert units.ETC_DIR not in text.replace(units.ACTIVATE_SCRIPT, "")


@pytest.mark.parametrize("stack", STACKS)
def test_the_monitoring_firewall_opens_ssh_to_admins_and_loki_and_node_exporter_to_the_vpc(
    stack: str, tmp_path: Path
) -> None:
    settings = stack_settings(stack)
    run = dry_run_setup(role_files(stack, "monitoring"), tmp_path)
    assert run.returncode == 0, run.stderr
    rules = run.lines("ufw", "allow")
    opened = {(int(re.search(r"port (\d+)", r)[1]), r.split(" from ")[1].split()[0])  # type: ignore[index]
              for r in rules}  # fmt: skip
    expected = {(22, cidr) for cidr in settings.admin_cidrs}
    expected |= {(LOKI_PORT, settings.vpc_ip_range), (NODE_EXPORTER_PORT, settings.vpc_ip_range)}
    assert opened == expected


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("name", [*MONITORING_UNITS, "alloy"])
def test_each_container_unit_passes_systemd_analyze_verify(
    stack: str, name: str, tmp_path: Path
) -> None:
    role = "app" if name == "alloy" else "monitoring"
    unit = write(tmp_path / f"clipper-{name}.service", _unit(stack, name, role))
    result = run_tool(["systemd-analyze", "verify", "--man=no", str(unit)])
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_systemd_analyze_refuses_a_broken_unit(tmp_path: Path) -> None:
    text = _unit("staging", "prometheus").replace("Type=exec", "Type=sometimes")
    unit = write(tmp_path / "clipper-prometheus.service", text)
    result = run_tool(["systemd-analyze", "verify", "--man=no", str(unit)])
    assert result.stderr.strip() != ""


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("name", MONITORING_UNITS)
def test_containers_use_the_host_network_and_publish_no_port(stack: str, name: str) -> None:
    argv = _exec_start(_unit(stack, name))
    assert "--network=host" in argv
    assert not any(a.startswith(("-p", "--publish")) for a in argv)
    assert "--cap-drop=ALL" in argv and "--security-opt=no-new-privileges" in argv
    assert argv[argv.index("run") + 1 :].count("--rm") == 1


@pytest.mark.parametrize("stack", STACKS)
def test_the_uis_listen_on_loopback_only(stack: str) -> None:
    prometheus_args = _exec_start(_unit(stack, "prometheus"))
    alertmanager_args = _exec_start(_unit(stack, "alertmanager"))
    assert "--web.listen-address=127.0.0.1:9090" in prometheus_args
    assert "--web.listen-address=127.0.0.1:9093" in alertmanager_args
    assert "--cluster.listen-address=" in alertmanager_args
    assert "--web.listen-address=127.0.0.1:9115" in _exec_start(_unit(stack, "blackbox"))


@pytest.mark.parametrize("stack", STACKS)
def test_prometheus_keeps_metrics_for_the_configured_days_within_the_volume(stack: str) -> None:
    settings = stack_settings(stack)
    argv = _exec_start(_unit(stack, "prometheus"))
    assert f"--storage.tsdb.retention.time={settings.metrics_retention_days}d" in argv
    (size,) = [a for a in argv if a.startswith("--storage.tsdb.retention.size=")]
    assert 0 < int(size.split("=")[1].removesuffix("GB")) < settings.monitoring_volume_gb


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("name", ["prometheus", "alertmanager", "grafana", "loki"])
def test_data_lives_on_the_volume_and_the_unit_waits_for_its_mount(stack: str, name: str) -> None:
    unit = _unit(stack, name)
    assert f"RequiresMountsFor={units.DATA_MOUNT}" in unit
    writable = [a for a in _exec_start(unit) if a.startswith("--volume=") and a.endswith(":rw")]
    assert len(writable) == 1 and writable[0].startswith(f"--volume={units.DATA_MOUNT}/")


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_reach_containers_as_0400_copies_for_their_user(stack: str) -> None:
    unit = _unit(stack, "alertmanager")
    copies = [
        line for line in unit.splitlines() if line.startswith("ExecStartPre=/usr/bin/install")
    ]
    expected = {units.SMTP_PASSWORD}
    if stack_settings(stack).alert_slack_channel:
        expected.add(units.SLACK_WEBHOOK_URL)
    assert {line.rsplit("/", 1)[1] for line in copies} == expected
    for line in copies:
        assert "-m 0400 -o 65534 -g 65534" in line
    assert f"--volume=/run/{units.RUNTIME_PARENT}/alertmanager:/run/secrets:ro" in _exec_start(unit)


@pytest.mark.parametrize("stack", STACKS)
def test_secret_files_are_0600_and_everything_else_is_not_secret(stack: str) -> None:
    files = role_files(stack, "monitoring")
    secret = {p for p in files if p.startswith(f"{units.SECRETS_DIR}/")}
    names = {units.SMTP_PASSWORD, units.DB_METRICS_PASSWORD, units.GRAFANA_ADMIN_PASSWORD}
    assert {p.rsplit("/", 1)[1] for p in secret} >= names
    for path in secret:
        assert files[path].mode == "0600"
    assert files[f"{units.SECRETS_DIR}/{units.SMTP_PASSWORD}"].content == placeholder_secret(
        "alertSmtpPassword"
    )
    others = "".join(f.content for p, f in files.items() if p not in secret)
    for path in secret:
        assert files[path].content not in others


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize(
    ("role", "path"),
    [("monitoring", units.ACTIVATE_SCRIPT), ("app", units.AGENTS_ACTIVATE_SCRIPT)],
)
def test_the_activation_scripts_are_the_shipped_files_with_their_config_beside(
    stack: str, role: str, path: str, tmp_path: Path
) -> None:
    # The scripts themselves are shellchecked as files by scripts/test.sh.
    files = role_files(stack, role)
    file = files[path]
    assert file.mode == "0755"
    assert file.content == script_text(Path(path).name)
    config = files[f"{path}.env"]  # ACTIVATE_CONFIG, AGENTS_ACTIVATE_CONFIG
    assert config.mode == "0644"
    parsed = run_tool(["bash", "-n", str(write(tmp_path / "config", config.content))])
    assert parsed.returncode == 0, parsed.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_activation_mounts_the_stack_volume_and_never_formats_one_with_data(stack: str) -> None:
    files = role_files(stack, "monitoring")
    script = files[units.ACTIVATE_SCRIPT].content
    config = files[units.ACTIVATE_CONFIG].content
    assert sourced(config, "DEVICE") == [
        f"/dev/disk/by-id/scsi-0DO_Volume_clipper-{stack}-monitoring-data"
    ]
    assert sourced(config, "MOUNT") == [units.DATA_MOUNT]
    lines = script.splitlines()
    mkfs = next(i for i, line in enumerate(lines) if "mkfs" in line)
    assert lines[mkfs - 1].startswith("if ! blkid")
    assert "nofail" in script  # a missing volume must not stop the host from booting
    assert lines[0] == "#!/bin/bash" and "set -euo pipefail" in lines


@pytest.mark.parametrize("stack", STACKS)
def test_activation_waits_until_every_container_answers(stack: str) -> None:
    files = role_files(stack, "monitoring")
    script = files[units.ACTIVATE_SCRIPT].content
    config = files[units.ACTIVATE_CONFIG].content
    urls = sourced(config, "HEALTH_URLS")
    assert len(urls) == len(set(urls)) == len(MONITORING_UNITS)
    assert sourced(config, "UNITS") == [f"clipper-{n}.service" for n in MONITORING_UNITS]
    assert 'systemctl restart "${UNITS[@]}"' in script
    assert 'for url in "${HEALTH_URLS[@]}"; do\n  curl --fail' in script


# STAND-IN for the attached volume: `[ -b DEVICE ]` is true, `[ ! -b DEVICE ]` false (there is no
# DigitalOcean volume here; every other `[` test in the script passes too).
_VOLUME_ATTACHED = '[() { [[ $1 == "!" ]] && return 1; return 0; }\n'


def test_activation_prepares_the_volume_then_starts_and_waits_for_each_container(
    tmp_path: Path,
) -> None:
    files = role_files("staging", "monitoring")
    config = files[units.ACTIVATE_CONFIG].content
    run = dry_run(
        files[units.ACTIVATE_SCRIPT], files[units.ACTIVATE_CONFIG], tmp_path,
        bash_env=_VOLUME_ATTACHED, siblings=("clipper-retire-units",),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    # Units of ours it no longer runs are retired, keeping exactly these.
    unit_names = [f"clipper-{n}.service" for n in MONITORING_UNITS]
    assert run.lines("clipper-retire-units") == [
        shlex.join(["clipper-retire-units", units.UNIT_HEADER, *unit_names])
    ]
    # The volume has a filesystem (blkid's stand-in succeeds): never formatted.
    assert run.lines("mkfs.ext4") == []
    mount = units.DATA_MOUNT
    assert run.lines("install", "-d", "-m", "0750") == [
        f"install -d -m 0750 -o 10001 -g 10001 {mount}/loki",
        f"install -d -m 0750 -o 65534 -g 65534 {mount}/alertmanager",
        f"install -d -m 0750 -o 65534 -g 65534 {mount}/prometheus",
        f"install -d -m 0750 -o 472 -g 472 {mount}/grafana",
    ]
    unit_list = " ".join(f"clipper-{n}.service" for n in MONITORING_UNITS)
    calls = [shlex.join(c) for c in run.calls]
    restart = calls.index(f"systemctl restart {unit_list}")
    assert calls[restart - 1] == f"systemctl enable {unit_list}"
    # Then each container's health URL, in start order, and nothing else.
    curls = calls[restart + 1 :]
    assert [c.split()[-1] for c in curls] == sourced(config, "HEALTH_URLS")
    assert all(c.startswith("curl --fail --silent --show-error") for c in curls)
    assert run.stdout.splitlines()[-1] == "==> clipper-monitoring-activate: monitoring is up"


def test_agents_activation_opens_alloys_port_to_the_vpc_then_starts_both_agents(
    tmp_path: Path,
) -> None:
    files = role_files("production", "app")
    run = dry_run(
        files[units.AGENTS_ACTIVATE_SCRIPT], files[units.AGENTS_ACTIVATE_CONFIG], tmp_path,
        siblings=("clipper-retire-units",),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.lines("clipper-retire-units") == [
        shlex.join(["clipper-retire-units", units.UNIT_HEADER,
                    "clipper-node-exporter.service", "clipper-alloy.service"])
    ]  # fmt: skip
    vpc = stack_settings("production").vpc_ip_range
    assert run.lines("ufw") == [
        f"ufw allow proto tcp from {vpc} to any port 9080 comment 'alloy from the VPC'"
    ]
    calls = [shlex.join(c) for c in run.calls]
    agents = "clipper-node-exporter.service clipper-alloy.service"
    assert calls.index("systemctl daemon-reload") < calls.index(f"systemctl restart {agents}")
    assert [c.split()[-1] for c in calls if c.startswith("curl ")] == [
        "http://127.0.0.1:9100/metrics", "http://127.0.0.1:9080/-/ready",
    ]  # fmt: skip
    assert run.stdout.splitlines()[-1] == "==> clipper-agents-activate: agents are up"


def test_a_failing_step_stops_the_activation_script(tmp_path: Path) -> None:
    """Run the script with a volume that never appears: it stops with a clear error, before
    touching fstab or any service."""
    files = role_files("staging", "monitoring")
    script, config = files[units.ACTIVATE_SCRIPT], files[units.ACTIVATE_CONFIG]
    # Not three minutes of waiting: one look for the volume.
    text = script.content.replace("seq 1 90", "seq 1 1").replace("sleep 2", "true")
    assert text != script.content
    device = re.sub(
        r"(?m)^DEVICE=.*$", f"DEVICE={tmp_path}/no-such-volume", config.content, count=1
    )
    assert device != config.content
    path = install_beside(
        replace(script, content=text), replace(config, content=device), tmp_path / "sbin"
    )
    result = run_tool(["bash", str(path)])
    assert result.returncode == 1
    assert "the monitoring volume is not attached" in result.stderr
    assert "filesystem and mount" not in result.stdout


@pytest.mark.parametrize("stack", STACKS)
def test_alloy_reads_host_logs_read_only_and_names_its_host(stack: str) -> None:
    unit = _unit(stack, "alloy", "app")
    argv = _exec_start(unit)
    mounts = [a for a in argv if a.startswith("--volume=")]
    writable = [m for m in mounts if m.endswith(":rw")]
    assert writable == [f"--volume={units.ALLOY_STATE_DIR}:/var/lib/alloy/data:rw"]
    assert "--volume=/var/log/nginx:/var/log/nginx:ro" in mounts
    assert "--env=HOST=%H" in argv
    assert argv[argv.index("--env=HOST=%H") + 2 :] == [
        "run", "--server.http.listen-addr=0.0.0.0:9080", "--storage.path=/var/lib/alloy/data",
        "--disable-reporting", "/etc/alloy/config.alloy",
    ]  # fmt: skip
    assert "RequiresMountsFor" not in unit


def _retire_step(script: str, config: str) -> str:
    """The activation script's retire step alone, with its config (the rest of the script
    needs a real host)."""
    lines = script.splitlines()
    start = lines.index('step "retire containers this host no longer runs"')
    end = next(n for n in range(start, len(lines)) if "clipper-retire-units" in lines[n])
    body = "\n".join(lines[start : end + 1])
    return f'set -euo pipefail\n{config}\nstep() {{ echo "$*"; }}\n{body}\n'


# Both activation scripts retire through the one clipper-retire-units beside them, which their
# bundles install: each role's step is run with that role's config and installed copy.
@pytest.mark.parametrize(
    ("role", "path", "config_path"),
    [
        ("app", units.AGENTS_ACTIVATE_SCRIPT, units.AGENTS_ACTIVATE_CONFIG),
        ("monitoring", units.ACTIVATE_SCRIPT, units.ACTIVATE_CONFIG),
    ],
)
def test_activation_retires_a_container_unit_the_renderer_no_longer_declares(
    role: str, path: str, config_path: str, tmp_path: Path
) -> None:
    """A host that ran another log shipper from a unit of ours: its unit is stopped and
    removed; the host's own units (Alloy's on an app host) and units from elsewhere (no header:
    backups) stay. Stand-ins, as no test here has systemd: `systemctl` on PATH records its
    arguments, and the retire script's /etc/systemd/system is a temp dir."""
    files = role_files("staging", role)
    config = files[config_path].content
    own = sourced(config, "UNITS")[-1]
    units_dir, bin_dir = tmp_path / "units", tmp_path / "bin"
    units_dir.mkdir()
    old = write(units_dir / "clipper-oldshipper.service", units.UNIT_HEADER + "\n[Unit]\n")
    kept = write(units_dir / own, units.UNIT_HEADER + "\n[Unit]\n")
    backup = write(units_dir / "clipper-backup.service", "[Unit]\nDescription=backup\n")
    log = tmp_path / "systemctl.log"
    write(bin_dir / "systemctl", f'#!/bin/sh\necho "$*" >> {log}\n').chmod(0o755)
    retire = files[units.RETIRE_UNITS_SCRIPT]
    assert retire.mode == "0755"
    installed = retire.content.replace("/etc/systemd/system", str(units_dir))
    write(tmp_path / "clipper-retire-units", installed).chmod(0o755)
    step = write(tmp_path / "retire.sh", _retire_step(files[path].content, config))
    result = subprocess.run(
        ["bash", str(step)], capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not old.exists() and kept.exists() and backup.exists()
    assert log.read_text() == "disable --now clipper-oldshipper.service\n"
    assert "retired clipper-oldshipper.service" in result.stdout


def test_retire_units_without_a_header_is_a_usage_error() -> None:
    script = role_files("staging", "app")[units.RETIRE_UNITS_SCRIPT].content
    result = subprocess.run(
        ["bash", "-c", script, "clipper-retire-units"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 64 and "usage: clipper-retire-units" in result.stderr


@pytest.mark.parametrize("stack", STACKS)
def test_no_promtail_anywhere_in_the_plan_or_the_rendered_files(stack: str) -> None:
    for role in ("app", "monitoring"):
        for path, file in role_files(stack, role).items():
            assert "promtail" not in (path + file.content).lower(), path
    plan = run_tool([sys.executable, "-m", "components", "plan", "--stack", stack])
    assert plan.returncode == 0, plan.stderr
    assert "alloy" in plan.stdout and "promtail" not in plan.stdout.lower()


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize(("role", "listen"), [("app", "0.0.0.0"), ("monitoring", "127.0.0.1")])  # noqa: S104
def test_node_exporter_is_the_pinned_container_reading_the_host_scripts_textfiles(
    stack: str, role: str, listen: str
) -> None:
    argv = _exec_start(_unit(stack, "node-exporter", role))
    assert f"--volume={NODE_EXPORTER_TEXTFILE_DIR}:/textfile:ro" in argv
    assert "--collector.textfile.directory=/textfile" in argv
    assert "--volume=/:/host:ro,rslave" in argv and "--path.rootfs=/host" in argv
    assert f"--web.listen-address={listen}:{NODE_EXPORTER_PORT}" in argv
    # The backup script's metrics file is in that directory.
    assert BACKUP_METRICS_FILE.startswith(NODE_EXPORTER_TEXTFILE_DIR + "/")
    user_data = role_files(stack, role)[USER_DATA_PATH].content
    assert "prometheus-node-exporter" not in user_data  # the distribution's package is gone
    config = role_files(stack, role)[HOST_SETUP_CONFIG].content
    # Created at boot, before any host script runs.
    assert NODE_EXPORTER_TEXTFILE_DIR in sourced(config, "HOST_DIRS")
