"""First boot for real: each droplet's exact user-data under cloud-init 25 in a systemd container.

The program runs under mocks (as `pulumi preview` would) and we take the `userData` it declares
for the droplet, unchanged except for what DigitalOcean itself provides: the deploy key's public
line (the mocks' is not a usable key; here the test's own) and the cache cluster's CA
certificate (the CA that signed the parity Valkey's certificate). That user-data is seeded to
real cloud-init (NoCloud) in a container from the Debian 13 rootfs (tests/support/booted_host.py
names every container substitution: sysctl, swapon, writable cgroups, dockerd's IPv6 sysctl) and
booted. Debian's packages stand in for Ubuntu's under the same names (the user-data names none
that Debian lacks); the package mirror is Debian's.

Then, on the booted host, with the real tools: cloud-init's verdict and the ready marker, sshd,
ufw (inside the container's own network namespace only), fail2ban, unattended-upgrades, chrony,
journald, swap, Docker's log rotation, the Valkey TLS tunnel to a Valkey 8 container, nginx's
edge site, node_exporter's reach. Then the program's own remote commands for the host, in
`pulumi up`'s order, over SSH, against PostgreSQL 17 + pgvector, PgBouncer and Valkey 8
(tests/support/parity.py, tests/support/first_boot.py); then a reboot.

One boot per host and module: staging's app host (TLS by certbot on the host), production's app
host (PROXY protocol behind the load balancer) and staging's monitoring host.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from components.host import layout as host_layout
from components.offline.mocks import FAKE_CA_PEM
from components.offline.runner import ProgramRun
from components.renderers import cloud_init, valkey_tunnel
from components.settings import Settings
from tests.support import DockerEngine, cache_dir, file_lock, make_tls_files, wait_until
from tests.support.booted_host import BootedHost, HostNetworks, boot_image, substitute_user_data
from tests.support.first_boot import (
    REGISTRY_HOST,
    TlsRegistry,
    command_text,
    env_values,
    remote_commands,
)
from tests.support.parity import (
    ParityPgBouncer,
    ParityPostgres,
    ParityValkey,
    Placement,
    PoolSpec,
    services_image,
)
from tests.support.program import custom_run, plain, settings_for
from tests.support.release_host import ReleaseImages

pytestmark = [pytest.mark.host, pytest.mark.slow]

DROPLET = "digitalocean:index/droplet:Droplet"
CLUSTER = "digitalocean:index/databaseCluster:DatabaseCluster"


@dataclass
class World:
    """One booted droplet, what the program declared for it, and the services it talks to."""

    stack: str
    run: ProgramRun
    settings: Settings
    host: BootedHost
    boot_status: str
    boot_seconds: float
    services: dict[str, Any] = field(default_factory=dict)
    networks: HostNetworks | None = None
    app_env: dict[str, str] = field(default_factory=dict)
    admin_env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def first_boot_lock() -> Iterator[None]:
    """One first-boot module at a time per machine: the networks use the stacks' own ranges."""
    with file_lock(cache_dir() / "first-boot.lock"):
        yield


@pytest.fixture(scope="module")
def droplet_image(first_boot_lock: None, docker_engine: DockerEngine) -> str:
    return boot_image(docker_engine)


@dataclass(frozen=True)
class BootKit:
    """What every booted droplet of this module needs: the engine, the images, the deploy key."""

    engine: DockerEngine
    droplet_image: str
    base_image: str  # the registry's container runs from it
    release: ReleaseImages
    key: Path


@pytest.fixture(scope="module")
def kit(
    docker_engine: DockerEngine,
    droplet_image: str,
    base_image: str,
    release_images: ReleaseImages,
    deploy_key: Path,
) -> BootKit:
    return BootKit(docker_engine, droplet_image, base_image, release_images, deploy_key)


@pytest.fixture(scope="module")
def deploy_key() -> Iterator[Path]:
    """The deploy key pulumi's tls.PrivateKey would make (the mocks' is not a real key)."""
    folder = Path(tempfile.mkdtemp(prefix="clipper-fb-key-"))
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "deploy", "-f", str(folder / "id")],
        check=True,
    )
    yield folder / "id"
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def _droplet(run: ProgramRun, name: str) -> Any:
    """The droplet `name` declares (`app-1`, `monitoring-droplet`), by its resource name."""
    return run.named(f"{run.stack}-{name}")


def _droplet_user_data(run: ProgramRun, name: str) -> str:
    return str(plain(_droplet(run, name).inputs["userData"]))


def _mock_deploy_key(run: ProgramRun, user_data: str) -> str:
    keys = [
        str(plain(r.outputs["publicKeyOpenssh"])).strip()
        for r in run.of_type("tls:index/privateKey:PrivateKey")
    ]
    found = [k for k in keys if k in user_data]
    assert len(found) == 1, "the deploy key's public line is not in the user-data"
    return found[0]


def _cluster(run: ProgramRun, engine: str) -> tuple[str, int]:
    reg = next(r for r in run.of_type(CLUSTER) if r.inputs.get("engine") == engine)
    return str(plain(reg.outputs["privateHost"])), int(plain(reg.outputs["port"]))


def _install_on(host: BootedHost, path: str, text: str) -> None:
    host.engine.run(
        ["exec", "-i", host.name, "sh", "-c", f'install -d "$(dirname {path})" && cat > {path}'],
        input=text,
    )


def _data_stores(
    exits: ExitStack, world: World, *, engine: DockerEngine, prefix: str, tls_root: Path,
    network: str,
) -> None:  # fmt: skip
    """PostgreSQL 17 + pgvector, its PgBouncer pool and Valkey 8, under the private names and
    ports the program's env files name, with the logins and database DigitalOcean would make."""
    app, admin = world.app_env, world.admin_env
    image = services_image(engine)
    valkey_host, valkey_port = _cluster(world.run, "valkey")
    assert (int(admin["PGPORT"]), int(app["DB_PORT"]), valkey_port) == (
        ParityPostgres.port, ParityPgBouncer.port, ParityValkey.port,
    )  # fmt: skip

    def placement(host: str) -> Placement:
        tls = make_tls_files(
            tls_root / host, common_name="parity", dns_names=(host,), ip_addresses=()
        )
        return Placement(engine, image, network, host, tls)

    pg = exits.enter_context(ParityPostgres(placement(admin["PGHOST"]), f"{prefix}-postgres"))
    # STAND-IN: DigitalOcean's doadmin is no superuser but may create allow-listed extensions
    # (vector among them); a superuser here does the same for CREATE EXTENSION.
    pg.psql(
        f"CREATE ROLE \"{admin['PGUSER']}\" LOGIN SUPERUSER PASSWORD '{admin['PGPASSWORD']}';\n"
        f"CREATE ROLE \"{app['DB_USER']}\" LOGIN PASSWORD '{app['DB_PASSWORD']}';\n"
        f'CREATE DATABASE "{admin["PGDATABASE"]}" OWNER "{admin["PGUSER"]}";\n'
    )
    pool = ParityPgBouncer(
        placement(app["DB_HOST"]), f"{prefix}-pool",
        PoolSpec(app["DB_NAME"], admin["PGDATABASE"], app["DB_USER"], app["DB_PASSWORD"]),
        server_host=admin["PGHOST"],
    )  # fmt: skip
    world.services["postgres"] = pg
    world.services["pool"] = exits.enter_context(pool)
    valkey = ParityValkey(placement(valkey_host), f"{prefix}-valkey", app["REDIS_PASSWORD"])
    world.services["valkey"] = exits.enter_context(valkey)


def _app_world(stack: str, kit: BootKit, *, tmp: Path, slot: int) -> Iterator[World]:
    """Boot `stack`'s app-1 from its user-data into its own networks, registry and stores."""
    engine, image, key = kit.engine, kit.droplet_image, kit.key
    committed = settings_for(stack)
    prefix = f"clipper-fb-{os.getpid()}-{stack}"
    with ExitStack() as exits:
        networks = exits.enter_context(
            HostNetworks(
                engine, committed.admin_cidrs[0], committed.vpc_ip_range, prefix=prefix, slot=slot
            )
        )
        registry = exits.enter_context(
            TlsRegistry(
                engine, kit.base_image, networks.names["internet"], name=f"{prefix}-registry"
            )
        )
        overrides = {**registry.publish(kit.release), "releaseDrainSeconds": "2"}
        run = custom_run(stack, overrides=overrides)
        env_stdin = plain(run.named(f"{stack}-release-app-1-env-install").inputs["stdin"])
        world = World(stack, run, settings_for(stack, **overrides), None, "", 0.0)  # type: ignore[arg-type]
        world.app_env = env_values(env_stdin, host_layout.BACKEND_ENV_FILE)
        world.admin_env = env_values(env_stdin, host_layout.DB_ADMIN_ENV_FILE)
        _data_stores(
            exits, world, engine=engine, prefix=prefix, tls_root=tmp, network=networks.names["vpc"]
        )

        original = _droplet_user_data(run, "app-1")
        valkey_ca = world.services["valkey"].placement.tls.ca_cert.read_text()
        user_data = substitute_user_data(
            original,
            # SUBSTITUTION: what tls.PrivateKey and getDatabaseCa would return (see docstring).
            replace_keys={_mock_deploy_key(run, original): key.with_suffix(".pub").read_text()},
            replace_files={host_layout.VALKEY_CA_FILE: valkey_ca},
        )
        assert FAKE_CA_PEM.strip() not in user_data
        host = BootedHost(engine, image, networks, f"{prefix}-app-1", user_data, key)
        exits.enter_context(host)
        started = time.monotonic()
        world.boot_status = host.wait_for_cloud_init()
        world.boot_seconds = round(time.monotonic() - started, 1)
        world.host = host
        world.networks = networks
        # SUBSTITUTION for ghcr.io's publicly trusted certificate: the test registry's CA.
        _install_on(
            host, f"/etc/docker/certs.d/{REGISTRY_HOST}/ca.crt", registry.ca_cert.read_text()
        )
        yield world


@pytest.fixture(scope="module")
def staging(kit: BootKit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Staging's app-1, booted (certbot on the host, one droplet behind a reserved IP)."""
    yield from _app_world("staging", kit, tmp=tmp_path_factory.mktemp("staging-tls"), slot=0)


@pytest.fixture(scope="module")
def production(kit: BootKit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Production's app-1, booted (behind the load balancer: PROXY protocol on :80 from the VPC)."""
    tmp = tmp_path_factory.mktemp("production-tls")
    yield from _app_world("production", kit, tmp=tmp, slot=1)


@pytest.fixture(scope="module")
def monitoring(staging: World, kit: BootKit) -> Iterator[World]:
    """Staging's monitoring droplet, booted in staging's networks next to app-1."""
    run = staging.run
    original = _droplet_user_data(run, "monitoring-droplet")
    user_data = substitute_user_data(
        original,
        replace_keys={_mock_deploy_key(run, original): kit.key.with_suffix(".pub").read_text()},
        replace_files={},
    )
    assert staging.networks is not None
    name = staging.host.name.replace("app-1", "monitoring")
    host = BootedHost(kit.engine, kit.droplet_image, staging.networks, name, user_data, kit.key,
                      index=11)  # fmt: skip
    with host:
        started = time.monotonic()
        status = host.wait_for_cloud_init()
        yield World(
            "staging", run, staging.settings, host, status, round(time.monotonic() - started, 1)
        )


# ------------------------------------------------------------------------------ helpers


def _https(world: World, path: str, *, role: str = "admin") -> tuple[int, str]:
    """GET https://<domain><path> on the droplet's address (the placeholder cert: -k)."""
    domain, address = world.settings.domain, world.host.address(role)
    proc = subprocess.run(
        ["curl", "-sk", "--max-time", "10", "--resolve", f"{domain}:443:{address}",
         "-w", "\n%{http_code}", f"https://{domain}{path}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    body, _, code = proc.stdout.rpartition("\n")
    return int(code or 0), body


def _connects(address: str, port: int, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def _resp(*parts: str) -> bytes:
    return b"".join(
        [f"*{len(parts)}\r\n".encode()] + [f"${len(p.encode())}\r\n{p}\r\n".encode() for p in parts]
    )


# ------------------------------------------------------------------------------ the boot


def test_cloud_init_finishes_without_errors_and_the_ready_marker_comes_last(
    staging: World,
) -> None:
    status = json.loads(staging.host.exec("cloud-init", "status", "--format", "json", check=False))
    assert status["status"] == "done", staging.boot_status
    assert status["errors"] == [], staging.boot_status
    assert status["recoverable_errors"] == {}, status["recoverable_errors"]
    output = staging.host.exec("cat", "/var/log/cloud-init-output.log")
    steps = re.findall(r"^==> clipper-host-setup: (.*)$", output, re.MULTILINE)
    assert steps[0] == "kernel settings and journal limits" and steps[-1] == "ready", steps
    assert "nginx" in steps and "valkey tls tunnel" in steps
    stamp = staging.host.exec("cat", host_layout.HOST_READY_FILE).strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp)
    # The marker is younger than everything the setup script started before it.
    nginx_up = staging.host.exec(
        "systemctl", "show", "-p", "ActiveEnterTimestampMonotonic", "--value", "nginx.service"
    )
    marker_age = staging.host.exec(
        "sh", "-c", f"echo $(( $(date +%s) - $(stat -c %Y {host_layout.HOST_READY_FILE}) ))"
    )
    uptime = float(staging.host.exec("cut", "-d", " ", "-f1", "/proc/uptime"))
    assert float(nginx_up) / 1e6 <= uptime - int(marker_age) + 1


def test_sshd_admits_the_deploy_user_by_key_and_refuses_root_and_passwords(
    staging: World,
) -> None:
    host = staging.host
    me = host.ssh("id -un; id -Gn")
    assert me.returncode == 0, me.stderr
    assert me.stdout.split()[0] == host_layout.DEPLOY_USER and "docker" in me.stdout.split()
    root = host.ssh("true", user="root")
    assert root.returncode == 255 and "Permission denied" in root.stderr
    password = subprocess.run(
        [*host.ssh_args(), "-o", "PubkeyAuthentication=no",
         "-o", "PreferredAuthentications=password,keyboard-interactive", "true"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    # The server offers no method but publickey.
    assert password.returncode == 255 and "Permission denied (publickey)" in password.stderr
    effective = host.exec("sshd", "-T")
    for line in ("passwordauthentication no", "permitrootlogin no",
                 "kbdinteractiveauthentication no", f"allowusers {host_layout.DEPLOY_USER}",
                 "authenticationmethods publickey"):  # fmt: skip
        assert line in effective.splitlines(), line


def _assert_exporter_port_open_to_the_vpc_only(host: BootedHost) -> None:
    """STAND-IN for node_exporter: it is a pinned container, started by the monitoring
    component's activation after boot (its image cannot be pulled here; its unit and the
    activation are checked in tests/rendered). A plain listener on its port is enough for what
    this checks: ufw opens that port to the VPC only."""
    port = host_layout.NODE_EXPORTER_PORT
    listen = f"python3 -m http.server {port} --bind 0.0.0.0"
    host.sh(f"nohup {listen} >/dev/null 2>&1 & echo $! >/run/exporter-stand-in.pid")
    try:
        assert wait_until(lambda: _connects(host.address("vpc"), port), timeout=10)
        assert not _connects(host.address("internet"), port)
        assert not _connects(host.address("admin"), port)
    finally:
        host.sh("kill $(cat /run/exporter-stand-in.pid)", check=False)


def test_ufw_admits_ssh_only_from_admin_networks_and_the_exporter_port_only_from_the_vpc(
    staging: World,
) -> None:
    host = staging.host
    assert "Status: active" in host.exec("ufw", "status")
    # From this machine, each address is reached from that network's gateway address:
    # 203.0.113.1 is in the admin CIDR, 10.x.0.1 in the VPC, 198.18.77.1 in neither.
    assert _connects(host.address("admin"), 22)
    assert not _connects(host.address("internet"), 22)
    assert not _connects(host.address("vpc"), 22)
    _assert_exporter_port_open_to_the_vpc_only(host)
    # The web is open to everyone on a host that ends TLS itself.
    assert _connects(host.address("internet"), 443)
    # ufw ran in the droplet's network namespace only: this machine has no ufw rules.
    mine = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False)
    assert "ufw" not in mine.stdout


def test_fail2ban_runs_the_sshd_jail_on_the_journal(staging: World) -> None:
    jail = staging.host.exec("fail2ban-client", "status", "sshd")
    assert "Currently banned" in jail
    assert "Journal matches" in jail and "_SYSTEMD_UNIT=ssh.service" in jail, jail


def test_upgrades_time_journal_swap_kernel_and_docker_logs_are_set_up(staging: World) -> None:
    host, s = staging.host, staging.settings
    apt = host.exec("apt-config", "dump")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in apt
    assert '"${distro_id}:${distro_codename}-security";' in apt
    assert host.exec("systemctl", "is-enabled", "unattended-upgrades.service").strip() == "enabled"
    dry = host.exec("unattended-upgrade", "--dry-run", "--debug", timeout=180)
    assert re.search(r"Allowed origins are: .*o=Debian,a=trixie-security", dry), dry[-2000:]

    assert host.exec("systemctl", "is-enabled", "chrony.service").strip() == "enabled"
    assert host.exec("chronyd", "-p").count("pool ") or "server " in host.exec("chronyd", "-p")

    journald = host.exec("systemd-analyze", "cat-config", "systemd/journald.conf")
    assert "SystemMaxUse=1G" in journald
    journal_log = host.exec("journalctl", "-b", "-u", "systemd-journald", "--no-pager")
    assert re.search(r"System Journal .* max 1(\.0)?G,", journal_log), journal_log[-1500:]

    size = s.app_swap_mb * 1024 * 1024
    assert host.exec("stat", "-c", "%s %a", cloud_init.SWAP_FILE).split() == [str(size), "600"]
    assert re.search(
        rf"^{cloud_init.SWAP_FILE}\s+none\s+swap", host.exec("cat", "/etc/fstab"), re.M
    )
    assert f"would enable {cloud_init.SWAP_FILE} ({size} bytes" in host.exec(
        "cat", "/var/log/clipper-test-swapon.log"
    )
    sysctl_log = host.exec("cat", "/var/log/clipper-test-sysctl.log")
    for key in ("vm.swappiness=10", "net.core.somaxconn=4096"):
        assert f"would set {key} ({cloud_init.SYSCTL_FILE})" in sysctl_log

    assert host.exec(
        "docker", "info", "--format", "{{.LoggingDriver}} {{.LiveRestoreEnabled}}"
    ).split() == ["json-file", "true"]


def _through_tunnel(world: World, payload: bytes) -> str:
    """Send `payload` to the tunnel's local port from the droplet; what came back in 5 s."""
    port = world.settings.cache_tunnel_port
    script = (
        "import socket,sys\n"
        f"s=socket.create_connection(('127.0.0.1',{port}),5)\n"
        "s.sendall(sys.stdin.buffer.read()); s.settimeout(5); out=b''\n"
        "try:\n"
        "    while out.count(b'\\r\\n')<3:\n"
        "        chunk=s.recv(4096)\n"
        "        if not chunk: break\n"
        "        out+=chunk\n"
        "except OSError: pass\n"
        "print(out.decode())\n"
    )
    return str(
        world.host.engine.run(
            ["exec", "-i", world.host.name, "python3", "-c", script], input=payload.decode()
        ).stdout
    )


def test_the_tunnel_refuses_a_valkey_whose_certificate_another_ca_signed(
    staging: World, tmp_path: Path
) -> None:
    real = staging.services["valkey"]
    engine, placement = real.placement.engine, real.placement
    # An impostor under the cluster's own name, with a certificate from a CA the host does not
    # trust: the tunnel must not carry the password to it.
    other = make_tls_files(
        tmp_path, common_name="impostor", dns_names=(real.host,), ip_addresses=()
    )
    engine.run(["stop", real.name])
    try:
        impostor = ParityValkey(
            Placement(engine, placement.image, placement.network, real.host, other),
            f"{real.name}-impostor", real.password,
        )  # fmt: skip
        with impostor:
            reply = _through_tunnel(staging, _resp("AUTH", real.password) + _resp("PING"))
            assert "+OK" not in reply and "PONG" not in reply, reply
            journal = staging.host.exec(
                "journalctl", "-u", valkey_tunnel.TUNNEL_SERVICE, "--no-pager", "-n", "30"
            )
            assert "certificate verify failed" in journal.lower() or "rejected" in journal, journal
    finally:
        engine.run(["start", real.name])
        assert wait_until(real._ready, timeout=30, interval=0.5)


def test_the_valkey_tunnel_carries_auth_set_get_to_valkey_over_verified_tls(
    staging: World,
) -> None:
    host, valkey = staging.host, staging.services["valkey"]
    assert host.exec("systemctl", "is-active", valkey_tunnel.TUNNEL_SERVICE).strip() == "active"
    payload = (
        _resp("AUTH", valkey.password) + _resp("SET", "first-boot", "through-the-tunnel")
        + _resp("GET", "first-boot")
    )  # fmt: skip
    reply = _through_tunnel(staging, payload)
    assert reply.split()[:4] == ["+OK", "+OK", "$18", "through-the-tunnel"], reply
    assert valkey.cli("GET", "first-boot") == "through-the-tunnel"
    journal = host.exec("journalctl", "-u", valkey_tunnel.TUNNEL_SERVICE, "--no-pager")
    assert "Certificate accepted" in journal or "verify ok" in journal.lower(), journal[-1500:]


def test_nginx_serves_the_edge_site_with_the_placeholder_certificate(staging: World) -> None:
    domain, address = staging.settings.domain, staging.host.address("internet")
    redirect = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--max-time", "5",
         "-H", f"Host: {domain}", f"http://{address}/some/page"],
        capture_output=True, text=True, check=False,
    ).stdout.split()  # fmt: skip
    assert redirect == ["301", f"https://{domain}/some/page"], redirect
    handshake = subprocess.run(
        ["openssl", "s_client", "-connect", f"{address}:443", "-servername", domain],
        input="", capture_output=True, text=True, timeout=15, check=False,
    ).stdout  # fmt: skip
    cert = subprocess.run(
        ["openssl", "x509", "-noout", "-subject", "-issuer"],
        input=handshake, capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    subject, issuer = (line.split("=", 1)[1].strip() for line in cert.splitlines()[:2])
    assert domain in subject and subject == issuer, cert  # self-signed for the domain


# ------------------------------------------------------------------------------ pulumi up


def _app_host_commands(world: World) -> list[Any]:
    """Every remote command the program runs on app-1, in dependency order: the release's, and
    the backups' (they run on app-1). The monitoring stack's promtail commands are left out:
    they need the monitoring host's Loki and Grafana's image, which cannot be pulled here."""
    address = plain(_droplet(world.run, "app-1").outputs["ipv4Address"])
    return remote_commands(
        world.run,
        lambda r: plain(r.inputs["connection"])["host"] == address and "-monitoring-" not in r.name,
    )


def _run_remote_commands(world: World, commands: list[Any]) -> list[str]:
    """Run `commands` over SSH as pulumi-command does (the declared command line and stdin, as
    the deploy user); return their names without the stack prefix."""
    steps = []
    for reg in commands:
        assert plain(reg.inputs["connection"])["user"] == host_layout.DEPLOY_USER
        command, stdin = command_text(reg)
        result = world.host.ssh(command, stdin)
        assert result.returncode == 0, f"{reg.name} failed:\n{result.stdout}\n{result.stderr}"
        steps.append(reg.name.removeprefix(f"{world.stack}-"))
    return steps


def test_the_programs_remote_commands_deploy_onto_the_booted_host(staging: World) -> None:
    host = staging.host
    steps = _run_remote_commands(staging, _app_host_commands(staging))
    # First the host key is learned (trust on first use, components/host/keys.py), then the
    # release waits for the host to be ready.
    assert steps[:2] == ["host-keys-app-1-host-key", "release-app-1-ready"], steps
    assert "release-app-1-deploy" in steps, steps
    assert "backups-enable" in steps, steps

    assert wait_until(lambda: _https(staging, "/health/ready")[0] == 200, timeout=30, interval=1)
    assert json.loads(_https(staging, "/api/v1/version")[1])["version"] == "v1"
    assert _https(staging, "/health.html") == (200, "healthy\n")
    pg = staging.services["postgres"]
    db = staging.admin_env["PGDATABASE"]
    assert pg.psql("SELECT extversion FROM pg_extension WHERE extname = 'vector';", db).startswith(
        "0.8"
    )
    assert pg.psql("SELECT '[1,2,3]'::vector <-> '[1,2,4]'::vector;", db).strip() == "1"
    assert pg.psql("SELECT version FROM schema_migrations;", db).strip() == "1"
    # Docker's daemon.json: a container started without its own log options gets the rotation.
    probe = host.exec(
        "docker", "create", "--name", "log-probe", staging.settings.image_migrate, "true"
    )
    log_config = json.loads(
        host.exec("docker", "inspect", "--format", "{{json .HostConfig.LogConfig}}", probe.strip())
    )
    host.exec("docker", "rm", "log-probe")
    assert log_config == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "20m"}}


def test_a_reboot_brings_the_site_tunnel_nginx_and_firewall_back(staging: World) -> None:
    host = staging.host
    if _https(staging, "/health/ready")[0] != 200:
        test_the_programs_remote_commands_deploy_onto_the_booted_host(staging)
    host.reboot()
    assert wait_until(lambda: _https(staging, "/health/ready")[0] == 200, timeout=90, interval=1), (
        host.exec("journalctl", "-b", "--no-pager", "-n", "80", check=False)
    )
    assert json.loads(_https(staging, "/api/v1/version")[1])["version"] == "v1"
    for unit in ("nginx.service", valkey_tunnel.TUNNEL_SERVICE, "docker.service", "ssh.service",
                 "fail2ban.service"):  # fmt: skip
        assert host.exec("systemctl", "is-active", unit, check=False).strip() == "active", unit
    assert "Status: active" in host.exec("ufw", "status")
    assert not _connects(host.address("internet"), 22)


_SUDO_CHECK = """\
while IFS= read -r command; do
  program=${command%% *}
  command -v "$program" >/dev/null || { echo "absent $command"; continue; }
  # shellcheck disable=SC2086
  if sudo -n -l $command >/dev/null 2>&1; then verdict=allowed; else verdict=refused; fi
  echo "$verdict $command"
done
"""


def _sudo_verdicts(host: BootedHost, commands: list[str]) -> dict[str, list[str]]:
    """`sudo -n -l` (checks, runs nothing) as the deploy user for each command, in one session."""
    result = host.ssh(f"bash -c {shlex.quote(_SUDO_CHECK)}", "\n".join(commands) + "\n")
    verdicts: dict[str, list[str]] = {"allowed": [], "refused": [], "absent": []}
    for line in result.stdout.splitlines():
        verdict, _, command = line.partition(" ")
        verdicts[verdict].append(command)
    return verdicts


def test_sudo_allows_the_programs_and_the_readmes_commands_and_refuses_anything_else(
    staging: World,
) -> None:
    host = staging.host
    from tests.rendered.test_deploy_sudo import sudo_commands

    listed = [*sudo_commands("staging"), *sudo_commands("production"),
              "clipper-release status", "clipper-release rollback", "clipper-backup list",
              "systemctl stop nginx", "systemctl start clipper-backup",
              "systemctl reboot"]  # fmt: skip
    verdicts = _sudo_verdicts(host, listed)
    # A program that lives on another role's host (the monitoring activation) is checked there.
    assert len(verdicts["allowed"]) > 10 and verdicts["refused"] == [], verdicts
    status = host.ssh("sudo -n clipper-release status")
    assert status.returncode == 0 and "blue" in status.stdout + status.stderr, status
    unlisted = ["/bin/bash -c id", "cat /etc/shadow", "systemctl stop ssh",
                "python3 -c print(1)", "/usr/local/sbin/clipper-install-files --root /",
                "env apt-get install -y netcat-openbsd", "systemctl restart docker"]  # fmt: skip
    verdicts = _sudo_verdicts(host, unlisted)
    assert verdicts["allowed"] == [] and len(verdicts["refused"]) == len(unlisted), verdicts
    shell = host.ssh("sudo -n /bin/bash -c id")
    assert shell.returncode == 1 and "a password is required" in shell.stderr, shell
    evil = host.ssh(
        "sudo -n /usr/local/sbin/clipper-install-files",
        json.dumps({"files": [{"path": "/etc/sudoers.d/evil", "mode": "0440",
                               "content": "deploy ALL=(ALL) NOPASSWD:ALL\n"}]}),
    )  # fmt: skip
    assert evil.returncode != 0 and "outside the allowlist" in evil.stderr, evil
    assert (
        host.exec("sh", "-c", "test -e /etc/sudoers.d/evil && echo present || echo absent").strip()
        == "absent"
    )


# ------------------------------------------------------------------------------ production


def _proxied(world: World, path: str, *, proxy_protocol: bool = True) -> tuple[int, str]:
    """GET http://<domain><path> on the droplet's VPC address, as the load balancer sends it."""
    extra = ["--haproxy-protocol"] if proxy_protocol else []
    proc = subprocess.run(
        ["curl", "-s", "--max-time", "10", *extra, "-H", f"Host: {world.settings.domain}",
         "-H", "X-Forwarded-Proto: https", "-w", "\n%{http_code}",
         f"http://{world.host.address('vpc')}{path}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    body, _, code = proc.stdout.rpartition("\n")
    return int(code or 0), body


def test_production_boots_clean_and_opens_http_to_the_vpc_only(production: World) -> None:
    status = json.loads(
        production.host.exec("cloud-init", "status", "--format", "json", check=False)
    )
    assert (status["status"], status["errors"]) == ("done", []), production.boot_status
    assert production.host.exec("test", "-f", host_layout.HOST_READY_FILE) == ""
    host = production.host
    assert _connects(host.address("vpc"), 80)
    assert not _connects(host.address("internet"), 80)
    assert not _connects(host.address("internet"), 443) and not _connects(host.address("vpc"), 443)
    assert _connects(host.address("admin"), 22) and not _connects(host.address("internet"), 22)
    # No certbot where the load balancer ends TLS.
    assert host.exec("sh", "-c", "command -v certbot || echo none").strip() == "none"


def test_production_deploys_and_serves_through_the_proxy_protocol_edge(production: World) -> None:
    steps = _run_remote_commands(production, [
        r for r in _app_host_commands(production) if "-backups-" not in r.name
    ])  # fmt: skip
    assert steps[-1] == "release-app-1-deploy", steps
    assert wait_until(
        lambda: _proxied(production, "/health/ready")[0] == 200, timeout=30, interval=1
    )
    assert json.loads(_proxied(production, "/api/v1/version")[1])["version"] == "v1"
    # Without the PROXY header nginx drops the request: only the load balancer speaks to it.
    assert _proxied(production, "/health/ready", proxy_protocol=False)[0] in (0, 400)


# ------------------------------------------------------------------------------ monitoring


def test_the_monitoring_host_boots_with_its_firewall_and_takes_its_files(
    monitoring: World,
) -> None:
    host = monitoring.host
    status = json.loads(host.exec("cloud-init", "status", "--format", "json", check=False))
    assert (status["status"], status["errors"]) == ("done", []), monitoring.boot_status
    assert host.exec("test", "-f", host_layout.HOST_READY_FILE) == ""
    assert _connects(host.address("admin"), 22) and not _connects(host.address("internet"), 22)
    _assert_exporter_port_open_to_the_vpc_only(host)
    assert "3100/tcp" in host.exec("ufw", "status") and "Status: active" in host.exec(
        "ufw", "status"
    )
    # Its remote commands up to the containers: ready, then the config and the secret files.
    files = remote_commands(
        monitoring.run,
        lambda r: (
            r.name
            in {f"staging-monitoring-{s}" for s in ("ready", "config-install", "secrets-install")}
        ),
    )
    steps = _run_remote_commands(monitoring, files)
    assert steps[0] == "monitoring-ready", steps
    assert set(steps[1:]) == {"monitoring-config-install", "monitoring-secrets-install"}, steps
    mode = host.exec(
        "stat", "-c", "%a %U", "/etc/clipper-monitoring/secrets/grafana-admin-password"
    )
    assert mode.split() == ["600", "root"]
    # Its activation (which needs the DigitalOcean volume and the pinned images) is allowed.
    activate = _sudo_verdicts(host, ["/usr/local/sbin/clipper-monitoring-activate"])
    assert activate["allowed"] == ["/usr/local/sbin/clipper-monitoring-activate"], activate
