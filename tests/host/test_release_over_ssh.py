"""End to end without Pulumi's engine: the program's own remote commands, run over real SSH.

The program runs under mocks (`custom_run("staging", ...)`) pointed at this test's world: the
stand-in images in a loopback registry (so the migrate image is pinned by a real digest and the
deploy really pulls), the cache tunnel port of a real Valkey 8, and the stack's default database
path, DigitalOcean's session pool: PgBouncer here, in front of a TLS-only PostgreSQL 17 with
pgvector whose app database belongs to the admin, as a new cluster's does (so the app user
cannot create tables in schema public until the deploy grants it). From what it declared we
take, for app-1, each remote command's exact command line and stdin in their dependency order,
replace only what pulumi-command would take from a real droplet (the address, the deploy key)
and the addresses of the pool and the cluster, and run them over SSH against a "droplet": a
container from the Debian base image with sshd, nginx, sudo, python3 and psql, the docker CLI
talking to the test engine through its socket, on the host network (so it shares loopback
with PostgreSQL, the pool, Valkey and the app containers), with a `deploy` user that has the
test key and passwordless sudo, as cloud-init makes it. Its state dir lives in the container
only: the release script copies the migrations into golang-migrate's container, so the engine
never needs its paths.

Test shims, each named where it is made: `cloud-init status --wait` answering done (no
cloud-init in a container); a minimal nginx site in place of the edge's TLS site; and a pool
that logs in to PostgreSQL as a read-only role, so that a migration sent through it would fail.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.host import layout as host_layout
from components.offline.runner import ProgramRun
from tests.support import (
    DockerEngine,
    PostgresServer,
    ServiceError,
    ValkeyServer,
    free_port,
    make_tls_files,
    wait_for_port,
)
from tests.support.first_boot import env_values
from tests.support.imitation_host import (
    CLOUD_INIT_SHIM,
    HOST_SETUP,
    SITE_SHIM,
)
from tests.support.pgbouncer import PgBouncerPool, PoolLogin
from tests.support.program import custom_run, default_secrets, plain
from tests.support.release_host import ReleaseImages

pytestmark = [pytest.mark.host, pytest.mark.slow]

COMMAND = "command:remote:Command"
HOST = "app-1"
STEPS = ("ready", "scripts-install", "env-install", "deploy")
TWITCH_SECRET = "e2e-twitch-client-secret-0123456789"
# The containers a deploy with the real deploy.json makes (prefix "clipper"); other tests'
# hosts use their own prefixes, so only these names are ours to remove.
DEPLOY_CONTAINERS = (
    *(
        f"clipper-{color}-{role}"
        for color in host_layout.COLORS
        for role in ("backend", "frontend")
    ),
    "clipper-migrate",
    "clipper-migrations-copy",
)


def _docker(engine: DockerEngine, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return engine.run(list(args), **kwargs)


# ------------------------------------------------------------------------------ the world


@dataclass
class Registry:
    """Debian's docker-registry (the CNCF distribution registry) on a loopback port."""

    port: int
    proc: subprocess.Popen[bytes]
    root: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    root = Path(tempfile.mkdtemp(prefix="clipper-registry-"))
    port = free_port()
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}, delete: {{enabled: true}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    log = (root / "registry.log").open("wb")
    proc = subprocess.Popen(
        ["docker-registry", "serve", str(config)], stdout=log, stderr=log, start_new_session=True
    )
    try:
        if not wait_for_port("127.0.0.1", port, 15):
            raise ServiceError("docker-registry", "start", "not listening", root / "registry.log")
        yield Registry(port, proc, root)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
        subprocess.run(["rm", "-rf", str(root)], check=False)


@dataclass(frozen=True)
class RegistryRelease:
    """The stand-in release as a registry holds it: references a stack file would name."""

    backend: str
    frontend: str
    migrations: str
    migrate: str  # pinned by the digest the registry gave it


@pytest.fixture(scope="module")
def registry_release(
    docker_engine: DockerEngine, registry: Registry, release_images: ReleaseImages
) -> Iterator[RegistryRelease]:
    """Push release v1 of the stand-ins, then drop the registry's names so the deploy pulls."""
    repo = f"{registry.host}/clipper"
    local = {
        f"{repo}/backend:v1": release_images.backend["v1"],
        f"{repo}/frontend:v1": release_images.frontend["v1"],
        f"{repo}/migrations:v1": release_images.migrations["v1"],
        f"{repo}/migrate:v4.17.0": release_images.migrate,
    }
    for ref, source in local.items():
        _docker(docker_engine, "tag", source, ref)
        _docker(docker_engine, "push", "-q", ref, timeout=300)
    # Pinned by the digests the registry gave them: the program ships what it is given by
    # digest as it is (the offline registry lookup would answer made-up digests for tags).
    pinned = [
        ref + "@" + _docker(
            docker_engine, "image", "inspect", "--format", "{{index .RepoDigests 0}}", ref
        ).stdout.strip().split("@")[1]
        for ref in local
    ]  # fmt: skip
    _docker(docker_engine, "image", "rm", *local, check=False)
    try:
        yield RegistryRelease(*pinned)
    finally:
        _remove_images_of(docker_engine, registry.host)


def _remove_images_of(engine: DockerEngine, registry_host: str) -> None:
    """Untag what the deploy pulled from the test registry (by name: the layers stay shared)."""
    listing = _docker(
        engine, "image", "ls", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}"
    ).stdout
    refs = []
    for line in listing.splitlines():
        repository, tag, digest = line.split()
        if repository.startswith(f"{registry_host}/"):
            refs.append(f"{repository}:{tag}" if tag != "<none>" else f"{repository}@{digest}")
    if refs:
        _docker(engine, "image", "rm", *refs, check=False)


@pytest.fixture(scope="module")
def tls_postgres(docker_engine: DockerEngine) -> Iterator[PostgresServer]:
    """PostgreSQL 17 taking TLS only (as DigitalOcean's clusters; the env says require)."""
    with PostgresServer(docker_engine, tls=True) as server:
        yield server


@dataclass
class World:
    """What the program declared, and the real services standing in for DigitalOcean's."""

    run: ProgramRun
    postgres: PostgresServer
    pool: PgBouncerPool
    redis: ValkeyServer
    overrides: dict[str, str]
    app_env: dict[str, str]
    admin_env: dict[str, str]

    def program(self, twitch_secret: str) -> ProgramRun:
        """The same stack with another Twitch client secret (`pulumi config set --secret`)."""
        secrets = {
            **default_secrets("staging", self.overrides),
            "twitchClientSecret": twitch_secret,
        }
        return custom_run("staging", overrides=self.overrides, secrets=secrets)


@pytest.fixture(scope="module")
def world(
    registry_release: RegistryRelease,
    tls_postgres: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    tunnel_port = free_port()
    overrides = {
        "imageBackend": registry_release.backend,
        "imageFrontend": registry_release.frontend,
        "imageMigrations": registry_release.migrations,
        "imageMigrate": registry_release.migrate,
        "cacheTunnelPort": str(tunnel_port),
        "releaseDrainSeconds": "2",
    }
    secrets = {**default_secrets("staging", overrides), "twitchClientSecret": TWITCH_SECRET}
    run = custom_run("staging", overrides=overrides, secrets=secrets)
    env_stdin = plain(_step(run, "env-install").inputs["stdin"])
    app = env_values(env_stdin, host_layout.BACKEND_ENV_FILE)
    admin = env_values(env_stdin, host_layout.DB_ADMIN_ENV_FILE)
    # The stack's default: the backend goes through the pool, whose name is its database name.
    assert app["DB_PORT"] != admin["PGPORT"] and app["DB_NAME"] != admin["PGDATABASE"]
    # The logins and database the program made (DigitalOcean would hold them) exist on the
    # test server: the database belongs to the admin, who created it, as on a new cluster.
    pg = tls_postgres
    pg.create_role(admin["PGUSER"], admin["PGPASSWORD"], superuser=True)
    pg.create_role(app["DB_USER"], app["DB_PASSWORD"])
    pg.psql(f'CREATE DATABASE "{admin["PGDATABASE"]}" OWNER "{admin["PGUSER"]}";')
    pg.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC;", admin["PGDATABASE"])  # PG 15's default
    # TEST SHIM: the pool logs in to PostgreSQL as a read-only role of its own (DigitalOcean's
    # uses the app's login): the backend only reads, and a migration through the pool fails.
    reader = PoolLogin("clipper_pool_reader", "pool-reader-password")
    pg.create_role(reader.user, reader.password)
    pg.psql(f"ALTER ROLE {reader.user} SET default_transaction_read_only = on;")
    pool_tls = make_tls_files(tmp_path_factory.mktemp("pool-tls"))
    with (
        PgBouncerPool(
            name=app["DB_NAME"],
            database=admin["PGDATABASE"],
            server_host=pg.host,
            server_port=pg.port,
            client=PoolLogin(app["DB_USER"], app["DB_PASSWORD"]),
            server=reader,
            tls=pool_tls,
        ) as pool,
        ValkeyServer(
            tls_postgres.engine, password=app["REDIS_PASSWORD"], port=tunnel_port
        ) as redis,
    ):
        yield World(run, pg, pool, redis, overrides, app, admin)


# ------------------------------------------------------------------------------ the droplet


def _step(run: ProgramRun, step: str) -> Any:
    return run.named(f"{run.stack}-release-{HOST}-{step}")


def commands_in_order(run: ProgramRun) -> list[Any]:
    """app-1's remote commands, ordered by what each declares it depends on."""
    mine = [r for r in run.of_type(COMMAND) if f"-release-{HOST}-" in r.name]
    ordered: list[Any] = []
    while mine:
        ready = [r for r in mine if not {d for d in r.depends_on} & {m.urn for m in mine}]
        assert ready, "the remote commands depend on each other in a cycle"
        ordered += ready
        mine = [r for r in mine if r not in ready]
    return ordered


@dataclass
class Droplet:
    """The container standing in for an app droplet, and how to reach it over SSH."""

    engine: DockerEngine
    name: str
    ssh_port: int
    http_port: int
    key: Path

    def ssh(
        self, command: str, stdin: str | None, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        """Run a command as pulumi-command does: one SSH session, the command, stdin."""
        return subprocess.run(
            [
                "ssh", "-F", "/dev/null", "-p", str(self.ssh_port), "-i", str(self.key),
                "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                f"{host_layout.DEPLOY_USER}@127.0.0.1", command,
            ],
            input=stdin or "", capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def exec(self, *argv: str) -> str:
        return _docker(self.engine, "exec", self.name, *argv).stdout


def _ports_free(*ports: int) -> list[int]:
    taken = []
    for port in ports:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                taken.append(port)
    return taken


@pytest.fixture(scope="module")
def droplet(docker_engine: DockerEngine, app_host_image: str, world: World) -> Iterator[Droplet]:
    app_ports = [*host_layout.BACKEND_PORTS.values(), *host_layout.FRONTEND_PORTS.values()]
    taken = _ports_free(*app_ports)
    assert not taken, f"the colours' loopback ports {taken} are in use on this machine"
    keys = Path(tempfile.mkdtemp(prefix="clipper-e2e-key-"))
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "id")], check=True
    )
    name = f"clipper-e2e-droplet-{os.getpid()}"
    # Left by a crashed run, they would look like a live colour to the deploy.
    _docker(docker_engine, "rm", "-f", *DEPLOY_CONTAINERS, check=False)
    ssh_port, http_port = free_port(), free_port()
    _docker(
        docker_engine, "run", "-d", "--name", name, "--network", "host",
        "-v", f"{docker_engine.socket}:/var/run/docker.sock",
        "-v", "/usr/local/bin/docker:/usr/local/bin/docker:ro",
        app_host_image, "sleep", "infinity",
    )  # fmt: skip
    droplet = Droplet(docker_engine, name, ssh_port, http_port, keys / "id")
    try:
        from components.renderers.nginx_upstreams import render_active_upstreams
        from components.renderers.sudoers import INSTALLER_PATH, render_file_installer

        setup_env = {
            "DEPLOY_PUBLIC_KEY": (keys / "id.pub").read_text().strip(),
            "CLOUD_INIT_SHIM": CLOUD_INIT_SHIM,
            # What cloud-init writes on every host (components/renderers/sudoers.py).
            "FILE_INSTALLER": render_file_installer(),
            "FILE_INSTALLER_PATH": INSTALLER_PATH,
            "INCLUDE": host_layout.NGINX_ACTIVE_UPSTREAMS_FILE,
            "INITIAL_INCLUDE": render_active_upstreams("blue"),
            "SITE": SITE_SHIM.format(
                include=host_layout.NGINX_ACTIVE_UPSTREAMS_FILE,
                port=http_port,
                access_log=host_layout.NGINX_ACCESS_LOG,
            ),
            "SSH_PORT": str(ssh_port),
            "HOST_READY": host_layout.HOST_READY_FILE,
        }
        env_args = [arg for key in setup_env for arg in ("-e", key)]
        subprocess.run(
            ["docker", "exec", "-i", *env_args, name, "sh", "-s"],
            input=HOST_SETUP, text=True, capture_output=True, check=True,
            env={**docker_engine.env, **setup_env}, timeout=60,
        )  # fmt: skip
        assert wait_for_port("127.0.0.1", ssh_port, 10), "sshd in the droplet did not listen"
        yield droplet
    finally:
        # The app containers belong to the engine, not to the droplet container: remove both.
        _docker(docker_engine, "rm", "-f", name, *DEPLOY_CONTAINERS, check=False)
        subprocess.run(["rm", "-rf", str(keys)], check=False)


# ------------------------------------------------------------------------------ the test


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback http)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def send_release(world: World, run: ProgramRun, droplet: Droplet) -> dict[str, str]:
    """Run app-1's remote commands of `run` in order over SSH; return each step's output."""
    outputs = {}
    for reg in commands_in_order(run):
        step = reg.name.rsplit(f"{HOST}-", 1)[1]
        # What pulumi-command sends: the command line and stdin as declared, as `deploy`.
        assert plain(reg.inputs["connection"])["user"] == host_layout.DEPLOY_USER
        create, stdin = plain(reg.inputs["create"]), plain(reg.inputs.get("stdin"))
        if step == "env-install":
            stdin = _with_test_database(stdin, world)
        result = droplet.ssh(create, stdin)
        assert result.returncode == 0, f"{step} failed:\n{result.stdout}\n{result.stderr}"
        outputs[step] = result.stdout + result.stderr
    return outputs


def test_the_programs_commands_install_the_scripts_write_the_env_files_and_deploy(
    world: World, droplet: Droplet
) -> None:
    started = time.monotonic()
    steps = [c.name.rsplit(f"{HOST}-", 1)[1] for c in commands_in_order(world.run)]
    # The files may go in either order (the engine runs them side by side), never the deploy.
    assert (steps[0], set(steps[1:3]), steps[3]) == ("ready", set(STEPS[1:3]), "deploy")

    outputs = send_release(world, world.run, droplet)

    assert "host ready" in outputs["ready"]
    assert f"installed {host_layout.RELEASE_SCRIPT}" in outputs["scripts-install"]
    assert droplet.exec("stat", "-c", "%a", host_layout.RELEASE_SCRIPT).strip() == "755"
    # The env files: root-owned, mode 0600, holding what the program sent.
    for path in (host_layout.BACKEND_ENV_FILE, host_layout.DB_ADMIN_ENV_FILE):
        assert droplet.exec("stat", "-c", "%a %U:%G", path).strip() == "600 root:root"
    backend_env = droplet.exec("cat", host_layout.BACKEND_ENV_FILE)
    assert f"TWITCH_CLIENT_SECRET={TWITCH_SECRET}" in backend_env
    # The deploy's record tells the operator what happened, and holds no secret.
    record = outputs["deploy"]
    assert "pulling" in record and "1/u create_clips" in record
    # Migrations went to the cluster directly (the admin env's address), as the app's user,
    # not through the backend's pool (through it they would fail: see the pool's shim).
    direct = f"{world.app_env['DB_USER']}@{world.postgres.host}:{world.postgres.port}/clipper"
    assert f"on {direct} (direct connection)" in record, record
    assert re.search(r"deployed v1-\w+ on (blue|green)", record), record
    for value in (TWITCH_SECRET, world.redis.password, _env_values_of(backend_env)["DB_PASSWORD"]):
        assert value not in record

    site = f"http://127.0.0.1:{droplet.http_port}"
    status, body = _get(f"{site}/health/ready")
    assert status == 200, body
    assert json.loads(_get(f"{site}/api/v1/version")[1])["version"] == "v1"
    assert _get(f"{site}/health.html") == (200, "healthy\n")
    assert world.postgres.psql("SELECT version FROM schema_migrations;", "clipper").strip() == "1"
    owners = world.postgres.psql(
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public';", "clipper"
    )
    assert owners.split() == [world.app_env["DB_USER"]], "the app's tables belong to the app"
    # The real pgvector, created by the deploy with the program's extension list.
    vector = world.postgres.psql("SELECT '[1,2]'::vector <-> '[1,4]'::vector;", "clipper")
    assert vector.strip() == "2"

    # The same deploy again (an operator re-running it) changes nothing.
    again = droplet.ssh(plain(_step(world.run, "deploy").inputs["create"]), None)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already deployed" in again.stdout
    assert time.monotonic() - started < 120


def test_a_rotated_secret_reaches_the_app_with_no_failed_request(
    world: World, droplet: Droplet
) -> None:
    site = f"http://127.0.0.1:{droplet.http_port}"
    if _get(f"{site}/health/ready")[0] != 200:
        send_release(world, world.run, droplet)  # this test also runs on its own
    before = json.loads(_get(f"{site}/api/v1/version")[1])
    rotated = world.program(twitch_secret="e2e-rotated-twitch-secret-9876543210")

    with LoadLoop(f"{site}/api/v1/version") as load:
        outputs = send_release(world, rotated, droplet)
    after = json.loads(_get(f"{site}/api/v1/version")[1])

    assert "installed /etc/clipper/backend.env" in outputs["env-install"]
    assert "unchanged /usr/local/bin/clipper-release" in outputs["scripts-install"]
    assert after["env_fingerprint"] != before["env_fingerprint"]
    assert after["port"] != before["port"], "the rotation did not move to the other colour"
    assert "e2e-rotated-twitch-secret" in droplet.exec("cat", host_layout.BACKEND_ENV_FILE)
    assert load.sent > 20
    assert load.failed == [], load.failed[:5]


class LoadLoop:
    """Requests in a loop on one thread until the block ends; counts the failed ones."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            try:
                status, body = _get(self.url)
                if status != 200:
                    self.failed.append(f"{status} {body[:80]}")
            except OSError as err:
                self.failed.append(repr(err))
            time.sleep(0.01)

    def __enter__(self) -> LoadLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _env_values_of(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and line[0] != "#")


def _with_test_database(stdin: str, world: World) -> str:
    """The env bundle with the pool's and the cluster's addresses swapped for the test
    servers' (the droplet would reach DigitalOcean's private hosts; the test reaches
    127.0.0.1). Nothing else moves."""
    bundle = json.loads(stdin)
    swaps = {
        "DB_HOST": world.pool.host, "DB_PORT": str(world.pool.port),
        "PGHOST": world.postgres.host, "PGPORT": str(world.postgres.port),
    }  # fmt: skip
    for entry in bundle["files"]:
        for key, value in swaps.items():
            entry["content"], count = re.subn(
                rf"^{key}=.*$", f"{key}={value}", entry["content"], flags=re.MULTILINE
            )
            assert count <= 1
    return json.dumps(bundle, sort_keys=True)
