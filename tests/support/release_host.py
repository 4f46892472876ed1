"""One Clipper app host on this machine, for the release tests and the deploy benchmark.

`build_release_images` builds the stand-in images (tests/images) once per engine: backend v1,
v2, a never-ready and a crashing one; frontend v1, v2; migrations v1, v2 and a failing set; and
a golang-migrate stand-in. `AppHost` lays out one host in a temp dir against real services:
a PostgreSQL 17 database with its app login and the admin login for extensions (all of them,
pgvector's `vector` included), Valkey 8 with a password, the env files (rendered by the Pulumi
side's own renderer), a deploy.json (rendered by `components.renderers.deploy_config` for free
ports, a temp state dir and a temp-prefix nginx), and a running nginx whose small site sends
`/api/` and `/health*` to `clipper_backend` and the rest to `clipper_frontend`, through the
active-colour include.
Then `host.release("deploy")` runs the real `hostscripts/clipper-release` with python3.

Each host gets its own container-name prefix, ports and image tags (retagged from the shared
builds), so several hosts, test processes or a benchmark can share one Docker engine, and a
release prune can only ever remove this host's tags.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.host.layout import Color
from components.renderers.deploy_config import HostTarget, deploy_config
from components.renderers.env_file import (
    BackendSecretValues,
    PostgresLoginValues,
    backend_env,
    db_admin_env,
    render_env_file,
)

from .data_stores import PostgresServer, ValkeyServer
from .docker import DockerEngine, cache_dir, file_lock
from .load import LoadGenerator
from .procs import ManagedService, ServiceError, free_port, wait_until
from .program import settings_for
from .services import NginxServer, nginx_main_conf

__all__ = [
    "RELEASE_SCRIPT",
    "AppHost",
    "ReleaseImages",
    "ScriptRun",
    "build_release_images",
    "hold_host_lock",
    "settings_for",
]

PROJECT_DIR = Path(__file__).resolve().parents[2]
# CLIPPER_TEST_RELEASE_SCRIPT runs the tests against another build of the script (to see a test
# fail against the code from before its fix); unset, the repository's launcher.
RELEASE_SCRIPT = Path(
    os.environ.get("CLIPPER_TEST_RELEASE_SCRIPT") or PROJECT_DIR / "hostscripts" / "clipper-release"
)
IMAGES_DIR = PROJECT_DIR / "tests" / "images"


# ---------------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ReleaseImages:
    """Local tags of the stand-in images (no registry: the release script must not pull)."""

    backend: Mapping[str, str]  # v1, v2, never-ready, crash, ready-once
    frontend: Mapping[str, str]  # v1, v2
    migrations: Mapping[str, str]  # v1, v2, bad, alter
    migrate: str


_BUILDS: dict[str, tuple[str, dict[str, str]]] = {
    "local/clipper-backend:v1": ("backend/Dockerfile", {"VERSION": "v1"}),
    "local/clipper-backend:v2": ("backend/Dockerfile", {"VERSION": "v2"}),
    "local/clipper-backend:never-ready": (
        "backend/Dockerfile",
        {"VERSION": "v2-never-ready", "MODE": "never-ready"},
    ),
    "local/clipper-backend:crash": ("backend/Dockerfile", {"VERSION": "v2-crash", "MODE": "crash"}),
    "local/clipper-backend:ready-once": (
        "backend/Dockerfile",
        {"VERSION": "v2-ready-once", "MODE": "ready-once"},
    ),
    "local/clipper-frontend:v1": ("frontend/Dockerfile", {"VERSION": "v1"}),
    "local/clipper-frontend:v2": ("frontend/Dockerfile", {"VERSION": "v2"}),
    "local/clipper-migrations:v1": ("migrations/Dockerfile", {"INCLUDE": "v1", "RELEASE": "v1"}),
    "local/clipper-migrations:v2": ("migrations/Dockerfile", {"INCLUDE": "v2", "RELEASE": "v2"}),
    "local/clipper-migrations:bad": ("migrations/Dockerfile", {"INCLUDE": "v2", "RELEASE": "bad"}),
    "local/clipper-migrations:alter": (
        "migrations/Dockerfile",
        {"INCLUDE": "v2", "RELEASE": "alter"},
    ),
    "local/clipper-migrate:standin": ("migrate/Dockerfile", {}),
}


def images_digest() -> str:
    """A short hash of everything under tests/images: the tags built from it carry it, so
    worktrees with other stand-ins that share the Docker engine never use each other's builds."""
    digest = hashlib.sha256()
    for path in sorted(p for p in IMAGES_DIR.rglob("*") if p.is_file()):
        digest.update(path.relative_to(IMAGES_DIR).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:10]


def build_release_images(engine: DockerEngine, base_image: str) -> ReleaseImages:
    """Build every stand-in image (Docker's layer cache makes a rebuild take ~2 s)."""
    assert base_image == "local/clipper-base:1", "tests/images/*/Dockerfile build FROM it"
    env = {**engine.env, "DOCKER_BUILDKIT": "0"}
    suffix = images_digest()
    with file_lock(cache_dir() / "release-images.lock"):
        for tag, (dockerfile, args) in _BUILDS.items():
            argv = ["docker", "build", "-q", "-t", f"{tag}-{suffix}"]
            argv += ["-f", str(IMAGES_DIR / dockerfile)]
            for key, value in args.items():
                argv += ["--build-arg", f"{key}={value}"]
            proc = subprocess.run(
                [*argv, str(IMAGES_DIR)],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            if proc.returncode != 0:
                raise ServiceError("docker", f"build {tag}", proc.stdout + proc.stderr)
    groups: dict[str, dict[str, str]] = {}
    for tag in _BUILDS:
        name, key = tag.rsplit(":", 1)
        groups.setdefault(name.rsplit("-", 1)[-1], {})[key] = f"{tag}-{suffix}"
    return ReleaseImages(
        backend=groups["backend"],
        frontend=groups["frontend"],
        migrations=groups["migrations"],
        migrate=groups["migrate"]["standin"],
    )


# ---------------------------------------------------------------------------------- the script


@contextmanager
def hold_host_lock(state_dir: Path, holder: Mapping[str, Any]) -> Iterator[None]:
    """Hold the host lock as another run would (deploy, backup, ...), naming it in the holder
    file, so a test sees what a second run says."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with (state_dir / "host.lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (state_dir / "host.lock.holder").write_text(json.dumps(dict(holder)))
        yield


class ScriptRun:
    """A clipper-release process started in the background; its output is collected live."""

    def __init__(self, argv: list[str], env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 60.0) -> str:
        """Block until a line matches `pattern` (regex); raise if the process ends first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(
                        f"clipper-release ended before {pattern!r}:\n{self.output}"
                    )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"no line matching {pattern!r} in {timeout}s:\n{self.output}"
                    )
                self._changed.wait(timeout=min(left, 0.5))

    def kill(self) -> None:
        """SIGKILL: no handler runs, no cleanup happens (the kernel drops the flock)."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)

    def wait(self, timeout: float = 180.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


# ---------------------------------------------------------------------------------- the host


_SITE = """\
server {{
    listen 127.0.0.1:{port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $remote_addr;
    # As the real site (components/renderers/nginx.py): the watch-party sockets upgrade.
    location ~ ^/api/v1/watch-parties/[^/]+/ws$ {{
        proxy_pass http://clipper_backend;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        proxy_read_timeout 600s;
    }}
    location /api/ {{ proxy_pass http://clipper_backend; }}
    location /health {{ proxy_pass http://clipper_backend; }}
    location / {{ proxy_pass http://clipper_frontend; }}
}}
"""


def _jwt_key_pair() -> tuple[str, str]:
    """A real PEM key pair (multi-line values: the case docker's --env-file cannot carry)."""
    with tempfile.TemporaryDirectory() as tmp:
        key = Path(tmp) / "jwt.pem"
        subprocess.run(
            ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
            check=True,
            capture_output=True,
        )
        public = subprocess.run(
            ["openssl", "pkey", "-in", str(key), "-pubout"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return key.read_text(), public


@dataclass
class AppHost(ManagedService):
    """A Clipper app host in a temp dir, on real PostgreSQL 17, Valkey 8, nginx and Docker."""

    engine: DockerEngine
    postgres: PostgresServer
    redis: ValkeyServer  # the app's cache, by its env's name (REDIS_*)
    images: ReleaseImages
    base_dir: Path | None = None
    # False: the database belongs to the admin, as on a new DigitalOcean cluster (PostgreSQL
    # 15+ then lets the app user create nothing in schema public until the deploy grants it).
    app_owns_database: bool = True
    token: str = field(default_factory=lambda: secrets.token_hex(3))
    root: Path = field(init=False)
    nginx: NginxServer = field(init=False)
    port: int = field(init=False)
    config: dict[str, Any] = field(init=False)
    env: dict[str, str] = field(init=False)
    baseline: dict[str, str] = field(init=False)
    tags: dict[str, str] = field(init=False)
    db_name: str = field(init=False)
    _jwt: tuple[str, str] = field(init=False)

    # -- life cycle

    def start(self) -> None:
        self.root = Path(
            tempfile.mkdtemp(prefix=f"clipper-apphost-{self.token}-", dir=self.base_dir)
        )
        self.root.chmod(0o755)  # nginx workers and dockerd's bind mounts read inside it
        (self.root / "etc").mkdir()
        self.tags = {}
        self._tag_images()
        self.db_name = f"clipper_{self.token}"
        app_user, app_password = f"clipper_app_{self.token}", secrets.token_hex(16)
        if self.app_owns_database:
            self.postgres.create_database(self.db_name, owner=app_user, password=app_password)
        else:
            self.postgres.create_role(app_user, app_password)
            self.postgres.create_database(self.db_name)  # the admin's
            self.psql("REVOKE CREATE ON SCHEMA public FROM PUBLIC;")  # PostgreSQL 15's default
        self._db_login = PostgresLoginValues(
            self.postgres.host, self.postgres.port, app_user, app_password, self.db_name
        )
        self._jwt = _jwt_key_pair()
        self.baseline = self.baseline_env()
        self.write_backend_env(self.baseline)
        admin = db_admin_env(
            PostgresLoginValues(
                self.postgres.host,
                self.postgres.port,
                self.postgres.admin_user,
                self.postgres.admin_password,
                self.db_name,
            )
        )
        admin["PGSSLMODE"] = "disable"  # the test server has no TLS; production uses require
        self._write_secret(
            self.root / "etc" / "db-admin.env", render_env_file(admin, "test db admin")
        )
        self._start_nginx()
        self.config = self.baseline_config()
        self.write_config()

    def stop(self) -> None:
        """Remove this host's containers and image tags, stop nginx, delete the temp dir."""
        prefix = f"clipper-t{self.token}"
        ids = self._docker("ps", "-aq", "--filter", f"name=^{prefix}-", check=False).stdout.split()
        if ids:
            self._docker("rm", "-f", *ids, check=False)
        for tag in getattr(self, "tags", {}).values():
            self._docker("image", "rm", tag, check=False)
        if hasattr(self, "nginx"):
            self.nginx.stop()
        if hasattr(self, "root"):
            shutil.rmtree(self.root, ignore_errors=True)

    # -- setup pieces

    def _docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.engine.run(list(args), check=check)

    def _tag_images(self) -> None:
        """Per-host tags: a prune on this host removes only tags no one else uses."""
        groups: dict[str, Mapping[str, str]] = {
            "backend": self.images.backend,
            "frontend": self.images.frontend,
            "migrations": self.images.migrations,
        }
        for group, refs in groups.items():
            for key, ref in refs.items():
                tag = f"{ref.rsplit(':', 1)[0]}:{key}-{self.token}"
                self._docker("tag", ref, tag)
                self.tags[f"{group}:{key}"] = tag
        migrate = f"{self.images.migrate.rsplit(':', 1)[0]}:standin-{self.token}"
        self._docker("tag", self.images.migrate, migrate)
        self.tags["migrate"] = migrate

    def retag(self) -> None:
        """Put back this host's tags (a release prune may have removed some, as it should)."""
        self._tag_images()

    def image(self, group: str, key: str) -> str:
        """This host's tag of a stand-in image, e.g. image("backend", "v2")."""
        return self.tags[f"{group}:{key}"]

    def _start_nginx(self) -> None:
        self.port = free_port()
        self.verify_port = free_port()
        prefix = self.root / "nginx"
        prefix.mkdir()
        self.include = prefix / "active-upstreams.conf"
        self.nginx = NginxServer(prefix)
        self.backend_ports: dict[Color, int] = {"blue": free_port(), "green": free_port()}
        self.frontend_ports: dict[Color, int] = {"blue": free_port(), "green": free_port()}
        target = self._target()
        # The host's first include (cloud-init's job on a droplet): blue, nothing running yet.
        self.include.write_text(
            deploy_config(settings_for("staging"), target)["colors"]["blue"]["upstreams"]
        )
        self.nginx.conf.write_text(
            nginx_main_conf(prefix, _SITE.format(port=self.port), includes=[self.include])
        )
        self.nginx.start(wait_ports=[self.port])

    def _target(self) -> HostTarget:
        prefix = self.root / "nginx"
        nginx = (
            "nginx",
            "-p",
            f"{prefix}/",
            "-e",
            str(prefix / "error.log"),
            "-c",
            str(prefix / "nginx.conf"),
        )
        return HostTarget(
            backend_ports=self.backend_ports,
            frontend_ports=self.frontend_ports,
            backend_env_file=str(self.root / "etc" / "backend.env"),
            db_admin_env_file=str(self.root / "etc" / "db-admin.env"),
            state_dir=str(self.root / "state"),
            exports_dir=str(self.root / "exports"),  # dockerd creates it for the bind mount
            nginx_include=str(self.include),
            nginx_test_command=(*nginx, "-t", "-q"),
            nginx_reload_command=(*nginx, "-s", "reload"),
            container_prefix=f"clipper-t{self.token}",
            nginx_verify_port=self.verify_port,
        )

    def baseline_config(self) -> dict[str, Any]:
        """deploy.json as rendered for this host, on release v1, with test timings."""
        config = deploy_config(settings_for("staging"), self._target())
        config["images"] = {
            "backend": self.image("backend", "v1"),
            "frontend": self.image("frontend", "v1"),
            "migrations": self.image("migrations", "v1"),
            "migrate": self.tags["migrate"],
        }
        config["ready_timeout_seconds"] = 30
        config["drain_seconds"] = 1
        config["release_keep"] = 2
        # `verify` is the rendered one: answers in a row through this host's nginx, each naming
        # the new colour's backend (the include's loopback server), before the old one stops.
        config["paths"]["release_metrics_file"] = str(self.metrics_file)
        return config

    @property
    def metrics_file(self) -> Path:
        """node_exporter's textfile of this host's release metrics."""
        return self.root / "node-exporter" / "clipper_release.prom"

    # -- what tests change

    def baseline_env(self, **changes: str) -> dict[str, str]:
        """What the Pulumi side writes (its own `backend_env`), pointed at the test services."""
        mfa = base64.b64encode(secrets.token_bytes(32)).decode()
        values = backend_env(
            settings_for("staging"),
            self._db_login,
            BackendSecretValues(
                redis_password=self.redis.password,
                jwt_private_key=self._jwt[0],
                jwt_public_key=self._jwt[1],
                mfa_encryption_key=mfa,
                # Every character the env format must escape, to prove the round trip.
                twitch_client_secret="tw \"secret\" $HOME \\ with # and 'quotes' ",
            ),
        )
        values.update(
            DB_SSLMODE="disable", REDIS_HOST=self.redis.host, REDIS_PORT=str(self.redis.port)
        )
        values.update(changes)
        return values

    def write_backend_env(self, values: Mapping[str, str]) -> None:
        self.env = dict(values)
        self._write_secret(
            self.root / "etc" / "backend.env", render_env_file(values, "test backend")
        )

    @staticmethod
    def _write_secret(path: Path, text: str) -> None:
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(path.with_suffix(".tmp"), path)

    @property
    def config_path(self) -> Path:
        return self.root / "etc" / "deploy.json"

    def write_config(self, **changes: Any) -> None:
        """Rewrite deploy.json with top-level `changes` (images=..., drain_seconds=...)."""
        self.config.update(changes)
        self.config_path.write_text(json.dumps(self.config, indent=2) + "\n")

    def use_images(self, backend: str, frontend: str, migrations: str) -> None:
        """Point deploy.json at these stand-ins (keys of ReleaseImages, e.g. "v2")."""
        images = {
            "backend": self.image("backend", backend),
            "frontend": self.image("frontend", frontend),
            "migrations": self.image("migrations", migrations),
            "migrate": self.tags["migrate"],
        }
        self.write_config(images=images)

    # -- running the script

    def script_env(self) -> dict[str, str]:
        return {**self.engine.env, "CLIPPER_DEPLOY_CONFIG": str(self.config_path)}

    def script_argv(self, *args: str) -> list[str]:
        python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        return [python, str(RELEASE_SCRIPT), *args]

    def _check_images_are_local(self) -> None:
        # No registry is reachable, and a test must never make dockerd try one: every image
        # the script may need is tagged here first, or the test stops.
        for ref in self.config["images"].values():
            if not self.engine.image_exists(ref):
                raise AssertionError(f"{ref} is not tagged locally; call retag() first")

    def release(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """Run clipper-release to the end; stdout and stderr are kept apart."""
        self._check_images_are_local()
        return subprocess.run(
            self.script_argv(*args),
            env=self.script_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def spawn(self, *args: str) -> ScriptRun:
        """Start clipper-release in the background (stdout and stderr merged, read live)."""
        self._check_images_are_local()
        return ScriptRun(self.script_argv(*args), self.script_env())

    def load(
        self, threads: int = 4, max_seconds: float = 180.0, *, keep_alive: bool = False
    ) -> LoadGenerator:
        """Steady load through nginx on both colours' paths: the API, readiness (PostgreSQL
        and Valkey), a slow request that is in flight during switches, and the SPA."""
        paths = ["/api/v1/version", "/health/ready", "/api/v1/sleep?ms=150", "/"]
        return LoadGenerator(
            [self.url(p) for p in paths],
            threads=threads,
            max_seconds=max_seconds,
            keep_alive=keep_alive,
        )

    def status(self) -> dict[str, Any]:
        proc = self.release("status", "--json")
        try:
            return dict(json.loads(proc.stdout))
        except ValueError:
            raise AssertionError(
                f"status --json printed no JSON:\n{proc.stdout}\n{proc.stderr}"
            ) from None

    # -- looking at it from outside

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            conn.close()

    def served_version(self) -> dict[str, Any]:
        status, _, body = self.get("/api/v1/version")
        assert status == 200, body
        return dict(json.loads(body))

    def containers(self) -> dict[str, str]:
        """name -> state of this host's containers."""
        proc = self._docker(
            "ps",
            "-a",
            "--filter",
            f"name=^clipper-t{self.token}-",
            "--format",
            "{{.Names}} {{.State}}",
        )
        return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.strip())

    def psql(self, sql: str) -> str:
        return self.postgres.psql(sql, dbname=self.db_name)

    def wait_serving(self, version: str, timeout: float = 10.0) -> bool:
        """Wait until the site's backend answers with `version` (nginx reloads asynchronously)."""

        def serving() -> bool:
            status, _, body = self.get("/api/v1/version")
            return status == 200 and json.loads(body).get("version") == version

        return wait_until(serving, timeout=timeout)

    def wait_stable(self, version: str, timeout: float = 15.0, streak: int = 20) -> bool:
        """Wait until `streak` requests in a row get `version`: nginx's workers from before
        the last reload are gone (right after a first deploy they still proxy to nothing)."""
        deadline = time.monotonic() + timeout
        good = 0
        while time.monotonic() < deadline:
            status, headers, _ = self.get("/api/v1/version")
            good = good + 1 if status == 200 and headers.get("X-Clipper-Version") == version else 0
            if good >= streak:
                return True
            time.sleep(0.02)
        return False

    def nginx_errors(self) -> str:
        """nginx's [error]/[crit] lines (why a request failed), for assertion messages."""
        text = (self.root / "nginx" / "error.log").read_text(errors="replace")
        wanted = ("[error]", "[crit]")
        return "\n".join(line for line in text.splitlines() if any(w in line for w in wanted))
