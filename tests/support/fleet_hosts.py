"""Two app "droplets" reachable over real SSH, for the fleet command's tests.

Each droplet is an imitation droplet (tests/support/imitation_host.py: sshd, nginx, sudo,
python3, the docker CLI on the test engine's socket, host network), set up by its HOST_SETUP
(the `deploy` user with the test key and sudo, sshd on a loopback port, nginx on the
active-colour include). Here each also gets the real host package
(`clipper-release`, and `clipper-backup` on app-1), a deploy.json rendered by
`components.renderers.deploy_config` for its own loopback ports and container prefix, and the
env files rendered by the Pulumi side's renderers. Both hosts share one PostgreSQL database
and one Valkey and run the same images with the same env, as a stack's droplets do, so they
record the same release ids.

The fleet command reaches them from an outputs file shaped like `pulumi stack output --json
--show-secrets` (hosts, the deploy key, each host's SSH host key) and an ssh_config that maps
each host's address, an alias, to 127.0.0.1 and its port: the operator's `--ssh-config` for
bastions and ports, here standing in for two droplets' public addresses on port 22.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.host import layout as host_layout
from components.host.remote_files import host_package_files
from components.renderers.deploy_config import HostTarget, deploy_config
from components.renderers.env_file import (
    BackendSecretValues,
    PostgresLoginValues,
    backend_env,
    db_admin_env,
    render_env_file,
)
from components.renderers.sudoers import INSTALLER_PATH, render_file_installer

from .data_stores import PostgresServer, ValkeyServer
from .docker import DockerEngine
from .imitation_host import SITE_SHIM
from .procs import free_port, wait_for_port
from .program import settings_for
from .release_host import ReleaseImages

PROJECT_DIR = Path(__file__).resolve().parents[2]
HOSTSCRIPTS = PROJECT_DIR / "hostscripts"


@dataclass(frozen=True)
class SharedServices:
    """One app database and one Valkey, as a stack's droplets share the managed clusters."""

    postgres: PostgresServer
    redis: ValkeyServer  # the app's cache, by its env's name (REDIS_*)
    login: PostgresLoginValues

    @classmethod
    def create(cls, postgres: PostgresServer, redis: ValkeyServer, token: str) -> SharedServices:
        user, password = f"clipper_fleet_{token}", secrets.token_hex(16)
        postgres.create_database(f"clipper_fleet_{token}", owner=user, password=password)
        login = PostgresLoginValues(
            postgres.host, postgres.port, user, password, f"clipper_fleet_{token}"
        )
        return cls(postgres, redis, login)

    def backend_env(self, **changes: str) -> dict[str, str]:
        mfa = base64.b64encode(secrets.token_bytes(32)).decode()
        values = backend_env(
            settings_for("staging"),
            self.login,
            BackendSecretValues(
                redis_password=self.redis.password,
                jwt_private_key="",
                jwt_public_key="",
                mfa_encryption_key=mfa,
                twitch_client_secret="fleet-test-twitch-secret",
            ),
        )
        values.update(
            DB_SSLMODE="disable", REDIS_HOST=self.redis.host, REDIS_PORT=str(self.redis.port)
        )
        values.update(changes)
        return values

    def admin_env(self) -> dict[str, str]:
        pg = self.postgres
        values = db_admin_env(
            PostgresLoginValues(
                pg.host, pg.port, pg.admin_user, pg.admin_password, self.login.database
            )
        )
        values["PGSSLMODE"] = "disable"  # the test server has no TLS; production uses require
        return values


@dataclass
class FleetDroplet:
    """One droplet container: its SSH port, its site's port, its deploy.json."""

    engine: DockerEngine
    name: str  # the fleet's host name, app-1
    container: str
    ssh_port: int
    http_port: int
    config: dict[str, Any] = field(default_factory=dict)

    def exec(
        self, *argv: str, stdin: str | None = None, check: bool = True, timeout: float = 240
    ) -> subprocess.CompletedProcess[str]:
        return self.engine.run(
            ["exec", *(["-i"] if stdin is not None else []), self.container, *argv],
            input=stdin,
            check=check,
            timeout=timeout,
        )

    def put(self, path: str, text: str, mode: str) -> None:
        """Write a root-owned file with `mode`, created private first (no window of 0644)."""
        script = f'umask 077; mkdir -p "$(dirname {path})"; cat > {path}; chmod {mode} {path}'
        self.exec("sh", "-c", script, stdin=text)

    def write_config(self, **changes: Any) -> None:
        self.config.update(changes)
        self.put(host_layout.DEPLOY_CONFIG_FILE, json.dumps(self.config, indent=2) + "\n", "644")

    def write_env(
        self, values: Mapping[str, str], path: str = host_layout.BACKEND_ENV_FILE
    ) -> None:
        """An env file as the program writes it: rendered by its renderer, root-only 0600."""
        self.put(path, render_env_file(values, "fleet test"), "600")

    def release(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`clipper-release ARGS` on the droplet, as root (what cloud-init's sudo gives)."""
        return self.exec(host_layout.RELEASE_SCRIPT, *args, check=False, timeout=300)

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.release("status", "--json").stdout))

    def host_key(self) -> str:
        line = self.exec("cat", "/etc/ssh/ssh_host_ed25519_key.pub").stdout.split()
        return f"{line[0]} {line[1]}"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.http_port}{path}"


def images_for(images: ReleaseImages, release: str, migrate: str) -> dict[str, str]:
    """deploy.json's images for stand-in release `release` (v1, v2)."""
    return {
        "backend": images.backend[release],
        "frontend": images.frontend[release],
        "migrations": images.migrations[release],
        "migrate": migrate,
    }


def start_droplet(
    engine: DockerEngine,
    image: str,
    *,
    name: str,
    token: str,
    public_key: str,
    host_setup: str,
    cloud_init_shim: str,
) -> FleetDroplet:
    """Boot one droplet container and run the end-to-end test's host setup in it."""
    container = f"clipper-fleet-{token}-{name}"
    engine.run(
        ["run", "-d", "--name", container, "--network", "host",
         "-v", f"{engine.socket}:/var/run/docker.sock",
         "-v", "/usr/local/bin/docker:/usr/local/bin/docker:ro", image, "sleep", "infinity"],
    )  # fmt: skip
    droplet = FleetDroplet(engine, name, container, free_port(), free_port())
    ports = {"backend": {"blue": free_port(), "green": free_port()},
             "frontend": {"blue": free_port(), "green": free_port()}}  # fmt: skip
    target = HostTarget(
        backend_ports=ports["backend"],  # type: ignore[arg-type]
        frontend_ports=ports["frontend"],  # type: ignore[arg-type]
        container_prefix=f"clipper-fleet{token}-{name}",
        # Both droplets share this machine's network: each nginx its own verify listener.
        nginx_verify_port=free_port(),
    )
    droplet.config = deploy_config(settings_for("staging"), target)
    setup_env = {
        "DEPLOY_PUBLIC_KEY": public_key,
        "CLOUD_INIT_SHIM": cloud_init_shim,
        "INCLUDE": host_layout.NGINX_ACTIVE_UPSTREAMS_FILE,
        "INITIAL_INCLUDE": droplet.config["colors"]["blue"]["upstreams"],
        "SITE": SITE_SHIM.format(
            include=host_layout.NGINX_ACTIVE_UPSTREAMS_FILE,
            port=droplet.http_port,
            access_log=host_layout.NGINX_ACCESS_LOG,
        ),
        "SSH_PORT": str(droplet.ssh_port),
        "HOST_READY": host_layout.HOST_READY_FILE,
        # The root-owned file installer cloud-init writes on a droplet (sudo allows only it).
        "FILE_INSTALLER": render_file_installer(),
        "FILE_INSTALLER_PATH": INSTALLER_PATH,
    }
    env_args = [arg for key in setup_env for arg in ("-e", key)]
    subprocess.run(
        ["docker", "exec", "-i", *env_args, container, "sh", "-s"],
        input=host_setup, text=True, capture_output=True, check=True,
        env={**engine.env, **setup_env}, timeout=60,
    )  # fmt: skip
    if not wait_for_port("127.0.0.1", droplet.ssh_port, 10):
        raise AssertionError(f"sshd in {container} did not listen on {droplet.ssh_port}")
    return droplet


def install_host_package(droplet: FleetDroplet, backups: bool) -> None:
    """The host package where the program puts it (components/host/remote_files.py's job)."""
    scripts = [host_layout.RELEASE_SCRIPT, *([host_layout.BACKUP_SCRIPT] if backups else [])]
    for path in scripts:
        droplet.put(path, (HOSTSCRIPTS / Path(path).name).read_text(), "755")
    # The `clipper` package the launchers import, as the release bundle installs it.
    for module in host_package_files():
        droplet.put(module.path, module.content, "644")


@dataclass
class Fleet:
    """The droplets, and the files the fleet command is pointed at."""

    droplets: list[FleetDroplet]
    outputs_file: Path
    ssh_config: Path
    workdir: Path
    env: dict[str, str]  # the backend env both hosts run with

    def ops(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`python -m components ops --stack staging ARGS` as an operator would run it."""
        return subprocess.run(
            [*self.ops_argv(), *args],
            capture_output=True, text=True, timeout=timeout, check=False, cwd=PROJECT_DIR,
        )  # fmt: skip

    def ops_argv(self) -> list[str]:
        return [
            sys.executable, "-m", "components", "ops", "--stack", "staging",
            "--outputs-file", str(self.outputs_file), "--ssh-config", str(self.ssh_config),
        ]  # fmt: skip


def write_access_files(
    droplets: list[FleetDroplet],
    private_key: str,
    workdir: Path,
    env: dict[str, str],
    shipped: Mapping[str, str],
) -> Fleet:
    """The outputs file (as `pulumi stack output --json --show-secrets` prints it, addresses
    being ssh_config aliases; `shipped` the releaseImages of the last `up`) and the
    ssh_config that maps each alias to its droplet."""
    outputs = {
        "releaseImages": dict(shipped),
        "siteUrl": "https://staging.clipper.example.com",
        "fleetHosts": {
            "app": [
                {"name": d.name, "droplet": f"clipper-staging-{d.name}",
                 "publicAddress": f"fleet-{d.name}", "privateAddress": "127.0.0.1",
                 "backups": n == 0, "hostKey": d.host_key()}
                for n, d in enumerate(droplets)
            ]
        },
        "deployPrivateKey": private_key,
    }  # fmt: skip
    outputs_file = workdir / "outputs.json"
    outputs_file.write_text(json.dumps(outputs, indent=2))
    outputs_file.chmod(0o600)
    ssh_config = workdir / "ssh_config"
    ssh_config.write_text(
        "".join(
            f"Host fleet-{d.name}\n  HostName 127.0.0.1\n  Port {d.ssh_port}\n" for d in droplets
        )
    )
    return Fleet(droplets, outputs_file, ssh_config, workdir, env)


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="clipper-fleet-test-"))
