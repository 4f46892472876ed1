"""The TLS files of a host that ends TLS itself: systemd units checked by `systemd-analyze
verify`, the static scripts' config, and the placeholder and deploy-hook scripts run for real
(the issuance script runs against live nginx in tests/host/test_tls_issuance.py)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from components.host.files import HostFile
from components.host.layout import under_root
from components.renderers.host_scripts import script_text
from components.renderers.tls import (
    CERTBOT,
    ISSUE_UNIT,
    NGINX_DROP_IN,
    PLACEHOLDER_MARKER,
    PLACEHOLDER_SCRIPT,
    RENEW_UNIT,
    TLS_CONFIG,
    certificate_paths,
    tls_host_files,
)
from components.settings import Settings
from tests.support.edge import install_host_files, stack_settings
from tests.support.host_scripts import sourced


@pytest.fixture(scope="module")
def settings() -> Settings:
    return stack_settings("staging")


def _scripts(files: list[HostFile]) -> list[HostFile]:
    return [f for f in files if f.content.startswith("#!/bin/bash")]


# ---------------------------------------------------------------- systemd units


def _verify(root: Path, *units: str) -> list[str]:
    """`systemd-analyze verify --root` and its complaints (exit status and every output line).

    The root sees the machine's own systemd units through a symlink (for timers.target,
    network-online.target, nginx.service); resolving their internal symlinks through it prints
    "Failed to resolve symlink" noise, which is dropped. Anything else is a finding: verify
    only warns (exit 0) about unknown keys and unparsable values.
    """
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", *units],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.strip() and not line.startswith("Failed to resolve symlink")
    ]
    if proc.returncode != 0:
        lines.append(f"exit status {proc.returncode}")
    return lines


@pytest.fixture
def unit_root(settings: Settings, tmp_path: Path) -> Path:
    """The TLS files installed at their host paths under a root, with stand-in executables for
    the programs the units start (verify checks that each one exists)."""
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/systemd").symlink_to("/usr/lib/systemd")
    install_host_files(tls_host_files(settings), tmp_path)
    for program in (CERTBOT, "/usr/sbin/nginx"):
        stub = Path(under_root(program, str(tmp_path)))
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    return tmp_path


@pytest.mark.parametrize(
    "unit",
    [
        f"{ISSUE_UNIT}.service",
        f"{ISSUE_UNIT}.timer",
        f"{RENEW_UNIT}.service",
        f"{RENEW_UNIT}.timer",
    ],
)
def test_systemd_accepts_each_unit(unit_root: Path, unit: str) -> None:
    assert _verify(unit_root, str(unit_root / "etc/systemd/system" / unit)) == []


def test_systemd_runs_the_placeholder_before_nginx_tests_its_config(unit_root: Path) -> None:
    assert Path(under_root(NGINX_DROP_IN, str(unit_root))).exists()
    assert _verify(unit_root, "nginx.service") == []
    shown = subprocess.run(
        ["systemd-analyze", "cat-config", f"--root={unit_root}", "systemd/system/nginx.service"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # The drop-in empties the list, then orders: placeholder, then the package's config test.
    drop_in = shown.split(NGINX_DROP_IN)[1]
    pre = [line for line in drop_in.splitlines() if line.startswith("ExecStartPre=")]
    assert pre == [
        "ExecStartPre=",
        f"ExecStartPre={PLACEHOLDER_SCRIPT}",
        "ExecStartPre=/usr/sbin/nginx -t -q -g 'daemon on; master_process on;'",
    ]


def test_a_verify_finding_is_reported(unit_root: Path) -> None:
    # The check above would be worthless if verify's warnings went unnoticed.
    timer = unit_root / "etc/systemd/system" / f"{RENEW_UNIT}.timer"
    timer.write_text(timer.read_text().replace("OnCalendar=*-*-* 00,12:00:00", "OnCalendar=often"))
    assert _verify(unit_root, str(timer)) != []


def test_the_renewal_timer_fires_twice_a_day(settings: Settings) -> None:
    timer = next(f for f in tls_host_files(settings) if f.path.endswith(f"{RENEW_UNIT}.timer"))
    spec = next(line for line in timer.content.splitlines() if line.startswith("OnCalendar="))
    proc = subprocess.run(
        ["systemd-analyze", "calendar", "--iterations=3", spec.split("=", 1)[1]],
        capture_output=True,
        text=True,
        check=True,
    )
    elapses = re.findall(r"(?:Next elapse|Iter\. #\d+): \S+ \S+ (\S+) UTC", proc.stdout)
    assert elapses and len(elapses) == 3, proc.stdout
    assert set(elapses) == {"00:00:00", "12:00:00"}


def test_renewal_and_issuance_are_skipped_in_the_right_state(settings: Settings) -> None:
    files = {Path(f.path).name: f.content for f in tls_host_files(settings)}
    renewal_conf = certificate_paths(settings.domain).renewal_conf
    assert f"ConditionPathExists={renewal_conf}" in files[f"{RENEW_UNIT}.service"]
    assert f"ConditionPathExists=!{renewal_conf}" in files[f"{ISSUE_UNIT}.service"]
    assert (
        "--deploy-hook /usr/local/sbin/clipper-tls-reload-nginx" in files[f"{RENEW_UNIT}.service"]
    )
    assert "SuccessExitStatus=75" in files[f"{ISSUE_UNIT}.service"]


# ---------------------------------------------------------------- shell scripts


def test_the_scripts_are_the_shipped_files_and_their_config_follows_the_stack(
    settings: Settings, tmp_path: Path
) -> None:
    # The scripts are static (components/renderers/scripts/, shellchecked by scripts/test.sh and
    # tests/rendered/test_host_scripts.py); the stack's domain and certbot's paths are in
    # TLS_CONFIG beside them, relocated with the files.
    files = tls_host_files(settings, root=str(tmp_path), http_port=8080)
    scripts = _scripts(files)
    assert [Path(f.path).name for f in scripts] == [
        "clipper-tls-placeholder", "clipper-tls-issue", "clipper-tls-reload-nginx",
    ]  # fmt: skip
    for script in scripts:
        assert script.content == script_text(Path(script.path).name)
    (config,) = [f for f in files if f.path == TLS_CONFIG]
    assert Path(TLS_CONFIG).parent == Path(PLACEHOLDER_SCRIPT).parent
    cert = certificate_paths(settings.domain, str(tmp_path))
    assert sourced(config.content, "DOMAIN") == [settings.domain]
    assert sourced(config.content, "LIVE_DIR") == [cert.live_dir]
    assert sourced(config.content, "HTTP_PORT") == ["8080"]
    assert sourced(config.content, "EX_TEMPFAIL") == ["75"]


# ---------------------------------------------------------------- the placeholder, for real


def _placeholder(settings: Settings, root: Path) -> subprocess.CompletedProcess[str]:
    install_host_files(tls_host_files(settings, root=str(root)), root)
    return subprocess.run(
        ["bash", under_root(PLACEHOLDER_SCRIPT, str(root))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _x509(path: str, *args: str) -> str:
    return subprocess.run(
        ["openssl", "x509", "-in", path, "-noout", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_placeholder_is_a_certificate_for_the_domain_and_www(
    settings: Settings, tmp_path: Path
) -> None:
    assert _placeholder(settings, tmp_path).returncode == 0
    cert = certificate_paths(settings.domain, str(tmp_path))
    names = _x509(cert.fullchain, "-ext", "subjectAltName")
    assert f"DNS:{settings.domain}" in names
    assert f"DNS:www.{settings.domain}" in names
    _x509(cert.fullchain, "-checkend", str(60 * 86400))  # valid for weeks: exits 1 otherwise
    assert os.stat(cert.privkey).st_mode & 0o777 == 0o600
    assert Path(cert.chain).read_text() == Path(cert.fullchain).read_text()
    assert (Path(cert.live_dir) / PLACEHOLDER_MARKER).exists()
    assert (tmp_path / "var/www/acme/.well-known/acme-challenge").is_dir()


def test_the_placeholder_leaves_an_existing_certificate_alone(
    settings: Settings, tmp_path: Path
) -> None:
    assert _placeholder(settings, tmp_path).returncode == 0
    cert = certificate_paths(settings.domain, str(tmp_path))
    before = Path(cert.fullchain).read_bytes()
    assert _placeholder(settings, tmp_path).returncode == 0
    assert Path(cert.fullchain).read_bytes() == before


def test_the_placeholder_replaces_debris_but_never_an_incomplete_certbot_lineage(
    settings: Settings, tmp_path: Path
) -> None:
    cert = certificate_paths(settings.domain, str(tmp_path))
    Path(cert.live_dir).mkdir(parents=True)
    Path(cert.fullchain).write_text("half written")
    assert _placeholder(settings, tmp_path).returncode == 0
    assert "BEGIN CERTIFICATE" in Path(cert.fullchain).read_text()

    Path(cert.privkey).unlink()
    Path(cert.renewal_conf).parent.mkdir(parents=True)
    Path(cert.renewal_conf).write_text("# certbot's\n")
    proc = _placeholder(settings, tmp_path)
    assert proc.returncode == 1
    assert "incomplete" in proc.stderr
    assert not Path(cert.privkey).exists()


# ---------------------------------------------------------------- the deploy hook, for real


def _run_hook(settings: Settings, tmp_path: Path, nginx_ok: bool) -> tuple[int, list[str]]:
    """Run the hook with `nginx` and `systemctl` stubs that record how they were called."""
    hook = next(f for f in tls_host_files(settings) if f.path.endswith("clipper-tls-reload-nginx"))
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for name, status in (("nginx", 0 if nginx_ok else 1), ("systemctl", 0)):
        stub = bin_dir / name
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\nexit {status}\n')
        stub.chmod(0o755)
    proc = subprocess.run(
        ["bash", "-c", hook.content],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RENEWED_LINEAGE": "/x"},
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, calls.read_text().splitlines() if calls.exists() else []


def test_the_deploy_hook_reloads_nginx_after_a_good_config_test(
    settings: Settings, tmp_path: Path
) -> None:
    assert _run_hook(settings, tmp_path, nginx_ok=True) == (
        0,
        ["nginx -t -q", "systemctl reload nginx.service"],
    )


def test_the_deploy_hook_does_not_reload_a_config_that_fails_its_test(
    settings: Settings, tmp_path: Path
) -> None:
    assert _run_hook(settings, tmp_path, nginx_ok=False) == (1, ["nginx -t -q"])
