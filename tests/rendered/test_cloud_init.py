"""The app droplets' cloud-init user-data, as the program declares it for each stack: valid for
`cloud-init schema`, and each hardening step checked on its own, by the real tool that reads the
file where there is one (sshd -T, fail2ban-client, apt-config, logrotate, systemd-analyze,
shellcheck); the setup script's steps as it runs them (tests/support/host_scripts.py)."""

from __future__ import annotations

import ast
import functools
import json
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.host.files import HostFile
from components.host.layout import (
    ALLOY_HTTP_PORT,
    DEPLOY_USER,
    HOST_READY_FILE,
    NODE_EXPORTER_PORT,
)
from components.offline.mocks import FAKE_CA_PEM
from components.offline.render import files_from_user_data
from components.renderers import cloud_init
from components.renderers.host_scripts import script_text
from components.renderers.valkey_tunnel import TUNNEL_CONFIG_FILE, TUNNEL_SERVICE, TUNNEL_UNIT_FILE
from tests.support.host_scripts import SetupRun, dry_run_setup, sourced
from tests.support.program import custom_run, of_role, plain, settings_for, stack_run

STACKS = ["staging", "production"]
ADMIN = {"staging": ["203.0.113.0/24"], "production": ["203.0.113.0/24", "198.51.100.16/28"]}
VPC = {"staging": "10.120.0.0/20", "production": "10.130.0.0/20"}


@functools.cache
def _text(stack: str) -> str:
    droplet = of_role(stack_run(stack), "digitalocean:index/droplet:Droplet")[0]
    return str(plain(droplet.inputs["userData"]))


def _doc(stack: str) -> dict[str, Any]:
    return dict(yaml.safe_load(_text(stack)))


def _file(stack: str, path: str) -> dict[str, Any]:
    matches = [f for f in _doc(stack)["write_files"] if f["path"] == path]
    assert len(matches) == 1, f"{path} is written {len(matches)} times"
    return dict(matches[0])


def _script(stack: str) -> str:
    return str(_file(stack, cloud_init.HOST_SETUP_SCRIPT)["content"])


def _config(stack: str) -> str:
    return str(_file(stack, cloud_init.HOST_SETUP_CONFIG)["content"])


def _setup_run(stack: str, tmp_root: Path) -> SetupRun:
    files = {f.path: f for f in files_from_user_data(_text(stack))}
    run = dry_run_setup(files, tmp_root / stack)
    assert run.returncode == 0, run.stderr
    return run


@pytest.fixture(scope="module")
def setup_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SetupRun]:
    """Each stack's app host setup script, run once with every command stubbed."""
    root = tmp_path_factory.mktemp("setup")
    return {stack: _setup_run(stack, root) for stack in STACKS}


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, **kwargs)


# ---------------------------------------------------------------- the document


@pytest.mark.parametrize("stack", STACKS)
def test_user_data_passes_cloud_init_schema(stack: str, tmp_path: Path) -> None:
    path = tmp_path / "user-data.yaml"
    path.write_text(_text(stack))
    result = _run(["cloud-init", "schema", "--config-file", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Valid cloud-config" in result.stdout


@pytest.mark.parametrize("stack", STACKS)
def test_every_droplet_of_every_role_passes_cloud_init_schema(stack: str, tmp_path: Path) -> None:
    droplets = stack_run(stack).of_type("digitalocean:index/droplet:Droplet")
    texts = {str(plain(d.inputs["userData"])) for d in droplets}
    for n, text in enumerate(sorted(texts)):
        path = tmp_path / f"user-data-{n}.yaml"
        path.write_text(text)
        result = _run(["cloud-init", "schema", "--config-file", str(path)])
        assert result.returncode == 0, result.stdout + result.stderr


def test_cloud_init_schema_catches_a_broken_document(tmp_path: Path) -> None:
    # The check above is worth something only if the tool rejects a wrong type.
    path = tmp_path / "user-data.yaml"
    path.write_text(_text("staging").replace("ssh_pwauth: false", "ssh_pwauth: [maybe]"))
    assert _run(["cloud-init", "schema", "--config-file", str(path)]).returncode != 0


@pytest.mark.parametrize("stack", STACKS)
def test_only_keys_cloud_init_knows_are_used(stack: str) -> None:
    # `cloud-init schema` accepts unknown top-level keys; a typo would be silently ignored.
    known = {
        "timezone", "disable_root", "ssh_pwauth", "groups", "users", "package_update",
        "package_upgrade", "packages", "ntp", "write_files", "runcmd", "final_message", "swap",
    }  # fmt: skip
    assert set(_doc(stack)) <= known


# ---------------------------------------------------------------- access


@pytest.mark.parametrize("stack", STACKS)
def test_a_deploy_user_with_keys_docker_no_password_and_no_blanket_sudo(stack: str) -> None:
    doc = _doc(stack)
    (user,) = doc["users"]  # no distribution default user
    assert user["name"] == DEPLOY_USER
    assert user["lock_passwd"] is True and "passwd" not in user
    assert user["groups"] == ["docker"]
    assert "docker" in doc["groups"]  # exists before the docker.io package creates it
    # Its sudo rules are the narrowed sudoers file (tests/rendered/test_deploy_sudo.py).
    assert "sudo" not in user
    assert all(k.startswith("ssh-ed25519 ") for k in user["ssh_authorized_keys"])


@pytest.mark.parametrize("stack", STACKS)
def test_root_login_and_password_login_are_off(stack: str) -> None:
    doc = _doc(stack)
    assert doc["disable_root"] is True
    assert doc["ssh_pwauth"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_sshd_takes_keys_only_no_root_and_only_the_deploy_user(stack: str, tmp_path: Path) -> None:
    # Ubuntu's sshd_config includes sshd_config.d/*.conf first; a later drop-in (cloud-init's
    # 50-cloud-init.conf, say) that loosens a setting must lose against ours.
    dropins = tmp_path / "sshd_config.d"
    dropins.mkdir()
    (dropins / "00-clipper-hardening.conf").write_text(
        _file(stack, cloud_init.SSHD_HARDENING_FILE)["content"]
    )
    (dropins / "50-cloud-init.conf").write_text("PasswordAuthentication yes\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "hk")],
                   check=True)  # fmt: skip
    main = tmp_path / "sshd_config"
    main.write_text(
        f"Include {dropins}/*.conf\nHostKey {tmp_path / 'hk'}\nPermitRootLogin prohibit-password\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    result = _run(["/usr/sbin/sshd", "-T", "-f", str(main)])
    assert result.returncode == 0, result.stderr
    effective = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert effective["passwordauthentication"] == "no"
    assert effective["kbdinteractiveauthentication"] == "no"
    assert effective["permitrootlogin"] == "no"
    assert effective["allowusers"] == DEPLOY_USER
    assert effective["authenticationmethods"] == "publickey"


@pytest.mark.parametrize("stack", STACKS)
def test_fail2ban_bans_repeated_ssh_failures_from_the_journal(stack: str, tmp_path: Path) -> None:
    config = tmp_path / "fail2ban"
    subprocess.run(["cp", "-r", "/etc/fail2ban", str(config)], check=True)
    (config / "jail.d" / "clipper-sshd.local").write_text(
        _file(stack, cloud_init.FAIL2BAN_JAIL_FILE)["content"]
    )
    assert _run(["fail2ban-client", "-c", str(config), "-t"]).returncode == 0
    dump = _run(["fail2ban-client", "-c", str(config), "-d"]).stdout
    commands = [ast.literal_eval(line) for line in dump.splitlines() if line.startswith("[")]
    assert ["add", "sshd", "systemd"] in commands
    assert ["set", "sshd", "maxretry", 5] in commands
    assert ["set", "sshd", "bantime", "1h"] in commands
    assert ["set", "sshd", "findtime", "10m"] in commands
    assert "fail2ban" in _doc(stack)["packages"] and "python3-systemd" in _doc(stack)["packages"]


# ---------------------------------------------------------------- updates and time


@pytest.mark.parametrize("stack", STACKS)
def test_unattended_upgrades_install_security_updates_daily(stack: str, tmp_path: Path) -> None:
    def dump(path: str) -> str:
        target = tmp_path / Path(path).name
        target.write_text(_file(stack, path)["content"])
        result = _run(["apt-config", "-c", str(target), "dump"])
        assert result.returncode == 0, result.stderr
        return result.stdout

    periodic = dump(cloud_init.AUTO_UPGRADES_FILE)
    assert 'APT::Periodic::Update-Package-Lists "1";' in periodic
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic
    origins = dump(cloud_init.UNATTENDED_UPGRADES_FILE)
    assert 'Allowed-Origins:: "${distro_id}:${distro_codename}-security";' in origins
    assert "unattended-upgrades" in _doc(stack)["packages"]
    assert _doc(stack)["package_upgrade"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_time_is_kept_by_chrony(stack: str, setup_runs: dict[str, SetupRun]) -> None:
    assert _doc(stack)["ntp"] == {"enabled": True, "ntp_client": "chrony"}
    enabled = setup_runs[stack].lines("systemctl", "enable", "--now")
    assert "chrony.service" in enabled[0].split()


# ---------------------------------------------------------------- host firewall


def _ufw_allows(run: SetupRun) -> list[str]:
    return run.lines("ufw", "allow")


@pytest.mark.parametrize("stack", STACKS)
def test_ufw_denies_inbound_by_default_and_is_enabled(
    stack: str, setup_runs: dict[str, SetupRun]
) -> None:
    ufw = setup_runs[stack].lines("ufw")
    assert ufw[:2] == ["ufw default deny incoming", "ufw default allow outgoing"]
    assert ufw[-1] == "ufw --force enable"
    assert ufw[2:-1] == _ufw_allows(setup_runs[stack]) != []
    assert "ufw" in _doc(stack)["packages"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_script_opens_exactly_the_renderers_rules(
    stack: str, setup_runs: dict[str, SetupRun]
) -> None:
    # The script rebuilds each `ufw allow` from the config's data: the same command as the
    # rule's own (UfwRule.command).
    rules = cloud_init.ufw_rules(settings_for(stack))
    assert _ufw_allows(setup_runs[stack]) == [rule.command() for rule in rules]


@pytest.mark.parametrize("stack", STACKS)
def test_ufw_opens_ssh_only_to_the_admin_networks(
    stack: str, setup_runs: dict[str, SetupRun]
) -> None:
    ssh = [rule for rule in _ufw_allows(setup_runs[stack]) if "port 22 " in rule]
    assert [re.search(r"from (\S+)", rule)[1] for rule in ssh] == ADMIN[stack]  # type: ignore[index]


def test_ufw_opens_the_web_to_everyone_on_the_reserved_ip_host(
    setup_runs: dict[str, SetupRun],
) -> None:
    web = [r for r in _ufw_allows(setup_runs["staging"]) if re.search(r"port (80|443) ", r)]
    assert len(web) == 2 and not any(" from " in rule for rule in web)


def test_ufw_accepts_http_only_from_the_vpc_behind_the_load_balancer(
    setup_runs: dict[str, SetupRun],
) -> None:
    web = [r for r in _ufw_allows(setup_runs["production"]) if re.search(r"port (80|443) ", r)]
    assert web == [
        f"ufw allow proto tcp from {VPC['production']} to any port 80"
        " comment 'http from the load balancer (VPC)'"
    ]


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("port", [NODE_EXPORTER_PORT, ALLOY_HTTP_PORT])
def test_ufw_opens_the_exporters_only_to_the_vpc(
    stack: str, port: int, setup_runs: dict[str, SetupRun]
) -> None:
    rules = [rule for rule in _ufw_allows(setup_runs[stack]) if f"port {port} " in rule]
    assert len(rules) == 1 and f"from {VPC[stack]} " in rules[0]
    # node_exporter is a digest-pinned container (monitoring_units), not Ubuntu's package.
    assert "prometheus-node-exporter" not in _doc(stack)["packages"]


@pytest.mark.parametrize("stack", STACKS)
def test_ufw_opens_nothing_else(stack: str, setup_runs: dict[str, SetupRun]) -> None:
    allows = _ufw_allows(setup_runs[stack])
    ports = {int(re.search(r"port (\d+)", r)[1]) for r in allows}  # type: ignore[index]
    assert ports <= {22, 80, 443, NODE_EXPORTER_PORT, ALLOY_HTTP_PORT}


# ---------------------------------------------------------------- software and resources


@pytest.mark.parametrize("stack", STACKS)
def test_docker_and_nginx_come_from_ubuntu_packages(stack: str) -> None:
    packages = _doc(stack)["packages"]
    assert "docker.io" in packages and "nginx" in packages
    assert not any("docker-ce" in p for p in packages)
    assert _doc(stack)["package_update"] is True


def test_certbot_only_where_the_host_ends_tls() -> None:
    assert "certbot" in _doc("staging")["packages"]
    assert "certbot" not in _doc("production")["packages"]


@pytest.mark.parametrize("stack", STACKS)
def test_a_swap_file_of_the_settings_size(stack: str) -> None:
    swap = _doc(stack)["swap"]
    assert swap == {"filename": "/swapfile", "size": 2048 * 1024 * 1024, "maxsize": 2048 * 1024**2}


def test_no_swap_when_the_setting_is_zero() -> None:
    run = custom_run("staging", overrides={"appSwapMb": "0"})
    droplet = of_role(run, "digitalocean:index/droplet:Droplet")[0]
    assert "swap" not in yaml.safe_load(plain(droplet.inputs["userData"]))


@pytest.mark.parametrize("stack", STACKS)
def test_docker_rotates_container_logs_and_keeps_containers_across_restarts(stack: str) -> None:
    daemon = json.loads(_file(stack, cloud_init.DOCKER_DAEMON_FILE)["content"])
    assert daemon["log-driver"] == "json-file"
    assert daemon["log-opts"]["max-size"] and int(daemon["log-opts"]["max-file"]) >= 2
    assert daemon["live-restore"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_the_journal_is_bounded(stack: str) -> None:
    journald = _file(stack, cloud_init.JOURNALD_FILE)["content"]
    assert journald.startswith("#") and "[Journal]\n" in journald
    assert re.search(r"^SystemMaxUse=\d+[MG]$", journald, re.M)
    assert "systemctl restart systemd-journald.service" in _script(stack)  # every host's step


@pytest.mark.parametrize("stack", STACKS)
def test_the_nginx_json_access_log_is_rotated(stack: str, tmp_path: Path) -> None:
    config = tmp_path / "clipper-nginx-json"
    config.write_text(_file(stack, cloud_init.NGINX_JSON_LOGROTATE_FILE)["content"])
    result = _run(["logrotate", "-d", "-s", str(tmp_path / "state"), str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rotating pattern: /var/log/nginx/*.json  after 1 days (14 rotations)" in (
        result.stdout + result.stderr
    )


# ---------------------------------------------------------------- the valkey tunnel


@pytest.mark.parametrize("stack", STACKS)
def test_the_valkey_tunnel_is_installed_configured_and_supervised(
    stack: str, setup_runs: dict[str, SetupRun]
) -> None:
    assert "stunnel4" in _doc(stack)["packages"]
    assert _file(stack, TUNNEL_CONFIG_FILE)["permissions"] == "0644"
    unit = _file(stack, TUNNEL_UNIT_FILE)["content"]
    assert "Restart=always" in unit
    systemctl = setup_runs[stack].lines("systemctl")
    assert systemctl.index("systemctl daemon-reload") < systemctl.index(
        f"systemctl enable {TUNNEL_SERVICE}"
    )


@pytest.mark.parametrize("stack", STACKS)
def test_the_tunnel_unit_passes_systemd_analyze_verify(stack: str, tmp_path: Path) -> None:
    unit = tmp_path / TUNNEL_SERVICE
    unit.write_text(_file(stack, TUNNEL_UNIT_FILE)["content"])
    result = _run(["systemd-analyze", "verify", "--man=no", str(unit)])
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


# ---------------------------------------------------------------- the setup script


@pytest.mark.parametrize("stack", STACKS)
def test_runcmd_runs_only_the_setup_script(stack: str) -> None:
    assert _doc(stack)["runcmd"] == [[cloud_init.HOST_SETUP_SCRIPT]]
    assert _file(stack, cloud_init.HOST_SETUP_SCRIPT)["permissions"] == "0755"


@pytest.mark.parametrize("role", ["app", "monitoring"])
@pytest.mark.parametrize("stack", STACKS)
def test_every_roles_setup_script_is_the_shipped_file_and_its_config_is_valid_shell(
    stack: str, role: str, tmp_path: Path
) -> None:
    # The monitoring host's once had `: text (path)`, a bash syntax error: its first real boot
    # (tests/host/test_first_boot.py) stopped there, before the firewall's and ready's steps.
    # The script is now one static file (shellchecked by scripts/test.sh); what differs per
    # role is its config, which must parse.
    doc = yaml.safe_load(
        plain(
            of_role(stack_run(stack), "digitalocean:index/droplet:Droplet", role)[0].inputs[
                "userData"
            ]
        )
    )
    files = {f["path"]: f for f in doc["write_files"]}
    assert files[cloud_init.HOST_SETUP_SCRIPT]["content"] == script_text("clipper-host-setup")
    config = tmp_path / "clipper-host-setup.env"
    config.write_text(files[cloud_init.HOST_SETUP_CONFIG]["content"])
    parsed = _run(["bash", "-n", str(config)])
    assert parsed.returncode == 0, parsed.stderr
    assert files[cloud_init.HOST_SETUP_CONFIG]["permissions"] == "0644"
    # cloud-init writes the config before the script that reads it.
    paths = list(files)
    assert paths.index(cloud_init.HOST_SETUP_CONFIG) < paths.index(cloud_init.HOST_SETUP_SCRIPT)


@pytest.mark.parametrize("stack", STACKS)
def test_the_setup_script_stops_at_the_first_failure_and_marks_ready_last(stack: str) -> None:
    lines = [line for line in _script(stack).splitlines() if line and not line.startswith("#")]
    assert lines[0] == "set -euo pipefail"
    assert lines[-1] == 'mv "${READY_FILE}.tmp" "${READY_FILE}"'
    assert sourced(_config(stack), "READY_FILE") == [HOST_READY_FILE]


@pytest.mark.parametrize("stack", STACKS)
def test_the_setup_script_checks_sshd_before_reloading_it(
    stack: str, setup_runs: dict[str, SetupRun]
) -> None:
    calls = [shlex.join(c) for c in setup_runs[stack].calls]
    assert calls.index("sshd -t") < calls.index("systemctl try-reload-or-restart ssh.service")


@pytest.mark.parametrize("stack", STACKS)
def test_nginx_starts_without_the_stock_default_site(
    stack: str, setup_runs: dict[str, SetupRun]
) -> None:
    calls = [shlex.join(c) for c in setup_runs[stack].calls]
    assert "rm -f /etc/nginx/sites-enabled/default" in calls
    assert calls.index("nginx -t -q") < calls.index("systemctl reload-or-restart nginx.service")


@pytest.mark.parametrize("stack", STACKS)
def test_the_role_commands_run_in_order_after_every_hosts_steps(
    stack: str, setup_runs: dict[str, SetupRun]
) -> None:
    calls = [shlex.join(c) for c in setup_runs[stack].calls]
    role = [line for line in sourced(_config(stack), "ROLE_COMMANDS") if line.split()[0] != "step"]
    # As the stand-in saw them: bare names for absolute paths, no redirections.
    seen = [re.sub(r"^/\S*/", "", line).split(" 2>")[0] for line in role]
    start = calls.index("systemctl restart fail2ban.service docker.service") + 1
    assert calls[start : start + len(seen)] == seen
    assert calls[start + len(seen) :] == [
        "install -d -m 0755 /var/lib/clipper /etc/clipper /var/lib/prometheus/node-exporter"
    ]


def test_a_failing_step_leaves_no_ready_marker(tmp_path: Path) -> None:
    # The real script with every external command stubbed to succeed, then with `sshd -t`
    # failing (tests/support/host_scripts.py).
    files = {f.path: f for f in files_from_user_data(_text("staging"))}
    ok = dry_run_setup(files, tmp_path / "ok")
    assert ok.returncode == 0, ok.stderr
    assert "stub: ufw --force enable" in ok.stderr
    assert ok.ready.exists()

    failed = dry_run_setup(files, tmp_path / "failed", failing="sshd")
    assert failed.returncode != 0
    assert "bad config" in failed.stderr
    assert not failed.ready.exists()
    assert "stub: nginx" not in failed.stderr  # nothing after the failed step ran


def test_user_data_refuses_secret_material() -> None:
    settings = settings_for("staging")
    with pytest.raises(ValueError, match="secret material"):
        cloud_init.render_app_user_data(
            settings,
            deploy_public_key="ssh-ed25519 AAAA deploy",
            valkey_host="private-cache.db.ondigitalocean.com",
            valkey_port=25061,
            valkey_ca_certificate=FAKE_CA_PEM,
            extra_files=[HostFile("/etc/clipper/oops.env", "DB_PASSWORD=hunter2\n", "0600")],
        )
