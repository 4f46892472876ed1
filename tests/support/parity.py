"""Production parity: Debian 13 (trixie) images, and the managed services run from them.

Production runs Ubuntu 24.04 droplets against DigitalOcean's PostgreSQL 17 (with pgvector),
Valkey 8 (TLS only, one password) and its PgBouncer pools. This machine is Debian 12, whose
packages are two majors behind; trixie's are the closest match (PostgreSQL 17, pgvector 0.8,
valkey-server 8.1, pgbouncer 1.24, cloud-init 25, systemd 257). Its root is made by debootstrap
and cached in the test engine under a tag keyed by its suite and package list
(`trixie_image`); images derived from it are keyed by their Dockerfile and files
(`derived_image`). Both builds hold a file lock, so racing test processes build once.

The services are containers on a Docker network the test makes, each under the private host
name the program's mocks gave its cluster (a network alias), on DigitalOcean's ports, TLS on:
`ParityPostgres`, `ParityValkey`, `ParityPgBouncer`. The other host tests run the same image's
PostgreSQL and Valkey on this machine's loopback instead (data_stores.py).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .docker import DockerEngine, build_base_image, cache_dir, file_lock
from .procs import ManagedService, ServiceError, wait_until
from .tls import TlsFiles

__all__ = [
    "SERVICES_PACKAGES",
    "TRIXIE_HOST_PACKAGES",
    "ParityPgBouncer",
    "ParityPostgres",
    "ParityValkey",
    "derived_image",
    "services_image",
    "trixie_image",
]

TRIXIE = "trixie"
# What a cloud image boots with that debootstrap's minbase lacks; cloud-init then installs the
# user-data's own packages from the mirror. python3-cffi-backend: debootstrap's resolver does
# not follow the virtual package python3-cryptography needs.
TRIXIE_HOST_PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "cloud-init",
    "openssh-server",
    "iproute2",
    "ca-certificates",
    "python3",
    "python3-cffi-backend",
    "sudo",
    "ufw",
    "nftables",
    "dbus",  # Ubuntu's cloud image has it: `systemctl` as a user needs the system bus
)
# DigitalOcean's managed PostgreSQL 17 + pgvector, Valkey 8 and PgBouncer, as Debian ships them.
SERVICES_PACKAGES: tuple[str, ...] = (
    "postgresql-17",
    "postgresql-17-pgvector",
    "valkey-server",
    "valkey-tools",
    "pgbouncer",
    "openssl",
)
PG_PORT = 25060  # DigitalOcean's PostgreSQL port
POOL_PORT = 25061  # its PgBouncer pools' port
VALKEY_PORT = 25061  # its Valkey port


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def trixie_image(engine: DockerEngine, packages: Sequence[str] = TRIXIE_HOST_PACKAGES) -> str:
    """A debootstrapped trixie minbase with `packages`, tagged by suite and package list."""
    tag = f"local/clipper-trixie:{_key(TRIXIE, *packages)}"
    return build_base_image(engine, tag, packages=packages, suite=TRIXIE)


def derived_image(
    engine: DockerEngine, name: str, dockerfile: str, files: Mapping[str, str] | None = None
) -> str:
    """`docker build` of `dockerfile` with `files` (relative path -> text) as its context,
    tagged `local/NAME:<hash of both>`; built once per engine (the build may use the mirror)."""
    files = dict(files or {})
    tag = f"local/{name}:{_key(dockerfile, *(f'{p}={t}' for p, t in sorted(files.items())))}"
    if engine.image_exists(tag):
        return tag
    with file_lock(cache_dir() / f"{name}-image.lock"):
        if engine.image_exists(tag):
            return tag
        context = Path(tempfile.mkdtemp(prefix=f"clipper-{name}-"))
        try:
            (context / "Dockerfile").write_text(dockerfile)
            for rel, text in files.items():
                (context / rel).parent.mkdir(parents=True, exist_ok=True)
                (context / rel).write_text(text)
            engine.run(["build", "-q", "--network", "host", "-t", tag, str(context)], timeout=900)
        finally:
            shutil.rmtree(context, ignore_errors=True)
    return tag


_SERVICES_DOCKERFILE = """\
FROM {base}
RUN apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {packages} \\
 && rm -rf /var/lib/apt/lists/*
"""


def services_image(engine: DockerEngine) -> str:
    """trixie with PostgreSQL 17 + pgvector, Valkey 8 and PgBouncer (their daemons not started:
    each service container runs one of them in the foreground)."""
    base = trixie_image(engine, ("ca-certificates",))
    dockerfile = _SERVICES_DOCKERFILE.format(base=base, packages=" ".join(SERVICES_PACKAGES))
    return derived_image(engine, "clipper-parity-services", dockerfile)


@dataclass(frozen=True)
class Placement:
    """Where a service container runs: its engine, image, network and host name there."""

    engine: DockerEngine
    image: str
    network: str
    host: str  # the network alias clients resolve (the cluster's private host name)
    tls: TlsFiles  # server certificate for `host`, signed by the test CA


class _ParityContainer(ManagedService):
    """One service container: `docker run` a foreground command, remove it on stop."""

    service = "parity"
    port = 0

    def __init__(self, placement: Placement, name: str) -> None:
        self.placement = placement
        self.name = name
        self.tls_dir = Path(tempfile.mkdtemp(prefix=f"{name}-tls-"))

    @property
    def host(self) -> str:
        return self.placement.host

    def _script(self) -> str:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        p = self.placement
        self.tls_dir.chmod(0o755)  # the daemons' users read their config from it
        for src in (p.tls.ca_cert, p.tls.cert, p.tls.key):
            shutil.copy(src, self.tls_dir / src.name)
            (self.tls_dir / src.name).chmod(0o644)
        p.engine.run(["rm", "-f", self.name], check=False)
        p.engine.run(
            [
                "run", "-d", "--name", self.name, "--network", p.network,
                "--network-alias", p.host, "-v", f"{self.tls_dir}:/tls-in:ro",
                p.image, "sh", "-ec", self._script(),
            ]
        )  # fmt: skip
        if not wait_until(self._ready, timeout=60, interval=0.5):
            logs = p.engine.run(["logs", "--tail", "30", self.name], check=False)
            raise ServiceError(self.service, "start", logs.stdout + logs.stderr)

    def stop(self) -> None:
        self.placement.engine.run(["rm", "-f", self.name], check=False)
        shutil.rmtree(self.tls_dir, ignore_errors=True)

    def exec(self, *argv: str, user: str = "root", input: str | None = None) -> str:
        """Run `argv` in the service's container; its stdout (a failure raises)."""
        return self.placement.engine.run(
            ["exec", "-i", "-u", user, self.name, *argv], input=input
        ).stdout

    def version(self) -> str:
        raise NotImplementedError


# Key and certificate copied for the daemon's user (PostgreSQL refuses a key others can read).
_TLS_COPY = (
    "install -d -m 0755 /tls && install -m 0644 /tls-in/ca.crt /tls-in/server.crt /tls/ && "
    "install -m 0600 -o {user} /tls-in/server.key /tls/"
)


class ParityPostgres(_ParityContainer):
    """PostgreSQL 17 with pgvector, TLS on, scram logins only over the network (as a managed
    cluster); `psql` runs as the local superuser through the container's socket."""

    service = "postgres-17"
    port = PG_PORT

    def _script(self) -> str:
        return " && ".join(
            [
                _TLS_COPY.format(user="postgres"),
                "install -d -o postgres -m 0700 /srv/pg",
                "install -d -o postgres -m 0775 /run/postgresql",
                "runuser -u postgres -- /usr/lib/postgresql/17/bin/initdb -D /srv/pg "
                "--auth-local=trust --auth-host=scram-sha-256 >/dev/null",
                "printf 'local all all trust\\nhostssl all all 0.0.0.0/0 scram-sha-256\\n"
                "hostssl all all ::/0 scram-sha-256\\n' > /srv/pg/pg_hba.conf",
                f"exec runuser -u postgres -- /usr/lib/postgresql/17/bin/postgres -D /srv/pg "
                f"-c listen_addresses=* -c port={PG_PORT} -c ssl=on "
                "-c ssl_cert_file=/tls/server.crt -c ssl_key_file=/tls/server.key "
                "-c ssl_min_protocol_version=TLSv1.2",
            ]
        )

    def _ready(self) -> bool:
        proc = self.placement.engine.run(
            ["exec", "-u", "postgres", self.name, "pg_isready", "-q", "-p", str(PG_PORT)],
            check=False,
        )
        return proc.returncode == 0

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run `sql` as the superuser (unaligned, tuples only, stop at the first error)."""
        return self.exec(
            "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-p", str(PG_PORT),
            "-d", dbname, "-f", "-", user="postgres", input=sql,
        )  # fmt: skip

    def version(self) -> str:
        return self.psql("SHOW server_version;").strip()


class ParityValkey(_ParityContainer):
    """Valkey 8, TLS only (no plain port), `requirepass`: DigitalOcean's managed Valkey."""

    service = "valkey-8"
    port = VALKEY_PORT

    def __init__(self, placement: Placement, name: str, password: str) -> None:
        super().__init__(placement, name)
        self.password = password

    def _script(self) -> str:
        (self.tls_dir / "valkey.conf").write_text(
            f"port 0\ntls-port {VALKEY_PORT}\nbind * -::*\nprotected-mode no\n"
            "tls-cert-file /tls/server.crt\ntls-key-file /tls/server.key\n"
            "tls-ca-cert-file /tls/ca.crt\ntls-auth-clients no\n"
            f'requirepass "{self.password}"\nsave ""\nappendonly no\n'
        )
        (self.tls_dir / "valkey.conf").chmod(0o644)
        return " && ".join(
            [_TLS_COPY.format(user="root"), "exec valkey-server /tls-in/valkey.conf"]
        )

    def cli(self, *args: str) -> str:
        """`valkey-cli` over TLS (verifying the CA) with the password, inside the container."""
        return self.exec(
            "valkey-cli", "--tls", "--cacert", "/tls/ca.crt", "--sni", self.host,
            "-h", self.host, "-p", str(VALKEY_PORT), "--no-auth-warning",
            "-a", self.password, *args,
        ).strip()  # fmt: skip

    def _ready(self) -> bool:
        try:
            return self.cli("PING") == "PONG"
        except ServiceError:
            return False

    def version(self) -> str:
        info = self.cli("INFO", "server")
        return next(
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.startswith("valkey_version:")
        )


@dataclass(frozen=True)
class PoolSpec:
    """A session-mode pool: its name, the database it serves, the login it takes."""

    name: str
    database: str
    user: str
    password: str


class ParityPgBouncer(_ParityContainer):
    """PgBouncer 1.24 in session mode, TLS to clients and to PostgreSQL, the pool's one login
    used for both sides (as DigitalOcean's pools do)."""

    service = "pgbouncer"
    port = POOL_PORT

    def __init__(self, placement: Placement, name: str, pool: PoolSpec, server_host: str) -> None:
        super().__init__(placement, name)
        self.pool = pool
        self.server_host = server_host

    def _script(self) -> str:
        pool = self.pool
        (self.tls_dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"{pool.name} = host={self.server_host} port={PG_PORT} dbname={pool.database}\n"
            "[pgbouncer]\n"
            f"listen_addr = *\nlisten_port = {POOL_PORT}\nunix_socket_dir =\n"
            "auth_type = scram-sha-256\nauth_file = /tls-in/userlist.txt\n"
            "pool_mode = session\nmax_client_conn = 100\ndefault_pool_size = 10\n"
            "client_tls_sslmode = require\nclient_tls_cert_file = /tls/server.crt\n"
            "client_tls_key_file = /tls/server.key\nserver_tls_sslmode = require\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
        )
        (self.tls_dir / "userlist.txt").write_text(f'"{pool.user}" "{pool.password}"\n')
        for name in ("pgbouncer.ini", "userlist.txt"):
            (self.tls_dir / name).chmod(0o644)
        return " && ".join(
            [
                _TLS_COPY.format(user="postgres"),
                "exec runuser -u postgres -- pgbouncer /tls-in/pgbouncer.ini",
            ]
        )

    def _ready(self) -> bool:
        proc = self.placement.engine.run(
            ["exec", self.name, "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{POOL_PORT}"],
            check=False,
        )
        return proc.returncode == 0

    def version(self) -> str:
        return self.exec("pgbouncer", "--version").splitlines()[0].strip()
