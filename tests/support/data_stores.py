"""PostgreSQL 17 with pgvector and Valkey 8 on 127.0.0.1, and PostgreSQL 17's client tools.

Production talks to DigitalOcean's managed PostgreSQL 17 (with pgvector) and Valkey 8. This
machine's Debian 12 packages are two majors behind (PostgreSQL 15 without pgvector, Redis 7), so
each server here runs from the trixie services image (`parity.services_image`) as a container
on the test Docker engine with `--network host`: the daemon listens on a free port of this
machine's loopback, where the host tests, the release script and the test's own host-network
containers reach it as they would a local daemon. Admin SQL runs as `psql` inside the server's
container, through its Unix socket. `stop` removes the container and its temp dir; a failed
start raises ServiceError quoting the container's log; a port someone took meanwhile is retried
with another one.
"""

from __future__ import annotations

import secrets
import shlex
import socket
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from .docker import DockerEngine
from .parity import services_image
from .procs import ManagedService, ServiceError, free_port, require_binary, safe_rmtree, wait_until
from .tls import TlsFiles, make_tls_files

__all__ = ["PostgresClients", "PostgresServer", "ValkeyServer"]

LOOPBACK = "127.0.0.1"
PG_BIN = "/usr/lib/postgresql/17/bin"
_PORT_RETRIES = 3
_SOCKET_DIR = "/run/postgresql"  # inside the PostgreSQL container
SERVICE_LABEL = "clipper-test-service"  # on each server's container: "<service>:<port>"


def _new_password() -> str:
    # URL- and shell-safe, so it can go into DSNs and URLs without quoting.
    return secrets.token_hex(16)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _dsn_value(value: str) -> str:
    if value and all(c.isalnum() or c in "._-/:" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _LoopbackContainer(ManagedService):
    """One daemon in a host-network container from the services image, with a temp dir of its
    own mounted at the same path (its config and TLS files are written there)."""

    service = "container"

    def __init__(
        self,
        engine: DockerEngine,
        *,
        port: int | None,
        image: str | None,
        base_dir: Path | None,
    ) -> None:
        self.engine = engine
        self.host = LOOPBACK
        self._fixed_port = port
        self.port = port or 0
        self._image = image
        self._base_dir = base_dir
        self.dir: Path | None = None
        self.container: str | None = None

    @property
    def _dir(self) -> Path:
        if self.dir is None:
            raise ServiceError(self.service, "use", "server is not started")
        return self.dir

    def _prepare(self) -> None:
        """Write what the daemon reads into the temp dir (once, before the first attempt)."""

    def _script(self) -> str:
        """The container's command (sh -ec): set up, then exec the daemon on `self.port`."""
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _exited(self) -> str | None:
        proc = self.engine.run(
            ["inspect", "-f", "{{.State.Running}}", str(self.container)], check=False
        )
        return None if proc.stdout.strip() == "true" else "exited"

    def logs(self) -> str:
        """The last lines the daemon printed (its log goes to the container's stdout)."""
        if self.container is None:
            return "(not started)"
        proc = self.engine.run(["logs", "--tail", "30", self.container], check=False)
        return (proc.stdout + proc.stderr).strip() or "(no output)"

    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"clipper-{self.service}-", dir=self._base_dir))
        self.dir.chmod(0o700)
        self._prepare()
        image = self._image or services_image(self.engine)
        for attempt in range(_PORT_RETRIES):
            self.port = self._fixed_port or free_port()
            self.container = f"clipper-{self.service}-{self.dir.name.rsplit('-', 1)[-1]}"
            self.engine.run(
                [
                    "run", "-d", "--name", self.container, "--network", "host",
                    "--label", f"{SERVICE_LABEL}={self.service}:{self.port}",
                    "--shm-size", "256m", "-v", f"{self.dir}:{self.dir}",
                    image, "sh", "-ec", self._script(),
                ]
            )  # fmt: skip
            if wait_until(self._ready, timeout=60, interval=0.2, abort=self._exited):
                return
            logs = self.logs()
            self._remove()
            if "already in use" not in logs or self._fixed_port or attempt == _PORT_RETRIES - 1:
                raise ServiceError(self.service, "start", f"not ready on port {self.port}:\n{logs}")

    def _remove(self) -> None:
        if self.container is not None:
            self.engine.run(["rm", "-f", self.container], check=False)
            self.container = None

    def stop(self) -> None:
        """Remove the container (the daemon and its data with it), then the temp dir."""
        self._remove()
        if self.dir is not None:
            safe_rmtree(self.dir)
            self.dir = None

    def exec(self, *argv: str, user: str = "root", input: str | None = None) -> str:
        """Run `argv` in the server's container; its stdout (a failure raises ServiceError)."""
        if self.container is None:
            raise ServiceError(self.service, "exec", "server is not started")
        proc = self.engine.run(
            ["exec", "-i", "-u", user, self.container, *argv], input=input, check=False
        )
        if proc.returncode != 0:
            raise ServiceError(self.service, argv[0], f"exited {proc.returncode}\n{proc.stderr}")
        return proc.stdout


# --------------------------------------------------------------------------------------------
# PostgreSQL


class PostgresServer(_LoopbackContainer):
    """PostgreSQL 17 with pgvector on 127.0.0.1, SCRAM password logins over TCP.

    The superuser is `admin_user`/`admin_password`. With `tls` the server takes TLS only
    (`hostssl`, as a managed cluster), with a certificate for 127.0.0.1/localhost signed by
    `ca_cert`. Durability is off (`fsync=off`): a cluster lives for one test session.
    """

    service = "postgres"

    def __init__(
        self,
        engine: DockerEngine,
        *,
        admin_user: str = "postgres",
        admin_password: str | None = None,
        tls: bool = False,
        port: int | None = None,
        image: str | None = None,
        base_dir: Path | None = None,
    ) -> None:
        super().__init__(engine, port=port, image=image, base_dir=base_dir)
        self.admin_user = admin_user
        self.admin_password = admin_password or _new_password()
        self.tls = tls
        self.tls_files: TlsFiles | None = None

    @property
    def ca_cert(self) -> Path | None:
        """CA that signed the server certificate (TLS mode only)."""
        return self.tls_files.ca_cert if self.tls_files else None

    def _prepare(self) -> None:
        (self._dir / "pwfile").write_text(self.admin_password + "\n")
        (self._dir / "pwfile").chmod(0o600)
        host_rule = "hostssl" if self.tls else "host"
        (self._dir / "pg_hba.conf").write_text(
            f"local all all trust\n{host_rule} all all {LOOPBACK}/32 scram-sha-256\n"
        )
        if self.tls:
            self.tls_files = make_tls_files(self._dir / "tls")

    def _script(self) -> str:
        d = self._dir
        options = [
            f"-p {self.port}",
            f"-c listen_addresses={LOOPBACK}",
            f"-c unix_socket_directories={_SOCKET_DIR}",
            "-c hba_file=/srv/pg_hba.conf",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            "-c max_connections=200",
        ]
        steps = [
            "install -d -o postgres -m 0700 /srv/pg",
            f"install -d -o postgres -m 0775 {_SOCKET_DIR}",
            f"install -o postgres -m 0600 {d}/pwfile {d}/pg_hba.conf /srv/",
            f"runuser -u postgres -- {PG_BIN}/initdb -D /srv/pg -U {shlex.quote(self.admin_user)}"
            " --pwfile=/srv/pwfile --encoding=UTF8 --no-locale --no-sync >/dev/null",
            "rm /srv/pwfile",
        ]
        if self.tls:
            # PostgreSQL refuses a key file that others can read, or that it does not own.
            steps.append(f"install -o postgres -m 0600 {d}/tls/server.crt {d}/tls/server.key /srv/")
            options += [
                "-c ssl=on",
                "-c ssl_cert_file=/srv/server.crt",
                "-c ssl_key_file=/srv/server.key",
            ]
        steps.append(
            f"exec runuser -u postgres -- {PG_BIN}/postgres -D /srv/pg {' '.join(options)}"
        )
        return " && ".join(steps)

    def _ready(self) -> bool:
        # Through the container's own socket: on loopback another server may hold the port.
        proc = self.engine.run(
            ["exec", "-u", "postgres", str(self.container), f"{PG_BIN}/pg_isready", "-q",
             "-h", _SOCKET_DIR, "-p", str(self.port)],
            check=False,
        )  # fmt: skip
        return proc.returncode == 0

    def dsn(
        self,
        dbname: str = "postgres",
        user: str | None = None,
        password: str | None = None,
        **options: str,
    ) -> str:
        """libpq key/value DSN for TCP on 127.0.0.1 (admin credentials unless given)."""
        if user is None:
            user, password = self.admin_user, password or self.admin_password
        parts = {
            "host": self.host,
            "port": str(self.port),
            "dbname": dbname,
            "user": user,
            **options,
        }
        if password is not None:
            parts["password"] = password
        return " ".join(f"{k}={_dsn_value(v)}" for k, v in parts.items())

    def url(
        self, dbname: str = "postgres", user: str | None = None, password: str | None = None
    ) -> str:
        """``postgresql://`` URL form of :meth:`dsn` (for apps configured by DATABASE_URL)."""
        if user is None:
            user, password = self.admin_user, password or self.admin_password
        auth = quote(user, safe="") + (
            f":{quote(password, safe='')}" if password is not None else ""
        )
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL as the admin (each statement autocommits); return unaligned output."""
        return self.exec(
            f"{PG_BIN}/psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", _SOCKET_DIR,
            "-p", str(self.port), "-U", self.admin_user, "-d", dbname, "-f", "-",
            user="postgres", input=sql,
        )  # fmt: skip

    def version(self) -> str:
        """`SHOW server_version` (17.x)."""
        return self.psql("SHOW server_version;").strip()

    def create_role(
        self, name: str, password: str | None = None, *, login: bool = True, superuser: bool = False
    ) -> None:
        """Create a role (idempotent: an existing role just gets the new password/flags)."""
        flags = " ".join(
            ["LOGIN" if login else "NOLOGIN", "SUPERUSER" if superuser else "NOSUPERUSER"]
        )
        pw = f" PASSWORD {_quote_literal(password)}" if password is not None else ""
        exists = self.psql(
            f"SELECT 1 FROM pg_roles WHERE rolname = {_quote_literal(name)};"  # noqa: S608 - quoted
        ).strip()
        verb = "ALTER" if exists else "CREATE"
        self.psql(f"{verb} ROLE {_quote_ident(name)} WITH {flags}{pw};")

    def create_database(
        self, name: str, owner: str | None = None, password: str | None = None
    ) -> None:
        """Create database ``name`` owned by ``owner`` (made or updated as a login role)."""
        if owner is not None:
            self.create_role(owner, password)
        owner_sql = f" OWNER {_quote_ident(owner)}" if owner is not None else ""
        self.psql(f"CREATE DATABASE {_quote_ident(name)}{owner_sql};")


# --------------------------------------------------------------------------------------------
# Valkey


def _resp(*parts: str) -> bytes:
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class ValkeyServer(_LoopbackContainer):
    """valkey-server 8 on 127.0.0.1 with ``requirepass``; optionally TLS-only (as DigitalOcean's).

    In TLS mode the plain port is 0 (disabled) and ``port`` is the ``tls-port``; a private CA
    and a server certificate for 127.0.0.1/localhost are generated into the temp dir
    (``ca_cert``), so a TLS client or tunnel (stunnel, redis-py ``ssl=True``) can verify it.
    Client certificates are not required unless ``tls_auth_clients`` (then use
    ``tls_files.client_cert``/``client_key``). Persistence is off.
    """

    service = "valkey"

    def __init__(
        self,
        engine: DockerEngine,
        *,
        password: str | None = None,
        tls: bool = False,
        tls_auth_clients: bool = False,
        port: int | None = None,
        image: str | None = None,
        base_dir: Path | None = None,
        extra_config: Sequence[str] = (),
    ) -> None:
        super().__init__(engine, port=port, image=image, base_dir=base_dir)
        self.password = password or _new_password()
        self.tls = tls
        self.tls_auth_clients = tls_auth_clients
        self.extra_config = list(extra_config)
        self.tls_files: TlsFiles | None = None

    @property
    def ca_cert(self) -> Path | None:
        """CA that signed the server certificate (TLS mode only)."""
        return self.tls_files.ca_cert if self.tls_files else None

    def url(self, db: int = 0) -> str:
        """``redis://`` or ``rediss://`` URL including the password."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://:{self.password}@{self.host}:{self.port}/{db}"

    def _prepare(self) -> None:
        if self.tls:
            self.tls_files = make_tls_files(self._dir / "tls")

    def _config(self) -> str:
        lines = [
            f"bind {LOOPBACK}",
            "protected-mode yes",
            "dir /tmp",
            "daemonize no",
            'logfile ""',
            f'requirepass "{self.password}"',
            'save ""',
            "appendonly no",
        ]
        if self.tls and self.tls_files is not None:
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {self.tls_files.cert}",
                f"tls-key-file {self.tls_files.key}",
                f"tls-ca-cert-file {self.tls_files.ca_cert}",
                f"tls-auth-clients {'yes' if self.tls_auth_clients else 'no'}",
            ]
        else:
            lines.append(f"port {self.port}")
        return "\n".join(lines + self.extra_config) + "\n"

    def _script(self) -> str:
        conf = self._dir / "valkey.conf"  # mode 0600: it holds the password
        conf.write_text(self._config())
        conf.chmod(0o600)
        return f"exec valkey-server {conf}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only this server's CA (with the client cert when required)."""
        if self.tls_files is None:
            raise ServiceError(self.service, "ssl context", "server is not in TLS mode")
        ctx = ssl.create_default_context(cafile=str(self.tls_files.ca_cert))
        if self.tls_auth_clients:
            ctx.load_cert_chain(str(self.tls_files.client_cert), str(self.tls_files.client_key))
        return ctx

    def command(self, *args: str, timeout: float = 5.0) -> bytes:
        """Send AUTH + one command over a raw socket; return the command's raw RESP reply.

        A dependency-free probe used for readiness; tests should use a real client.
        """
        with socket.create_connection((self.host, self.port), timeout=timeout) as raw:
            conn: socket.socket = (
                self.ssl_context().wrap_socket(raw, server_hostname=self.host) if self.tls else raw
            )
            conn.sendall(_resp("AUTH", self.password) + _resp(*args))
            data = b""
            while data.count(b"\r\n") < 2:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"+OK\r\n"):
                raise ServiceError(self.service, "AUTH", data.decode(errors="replace"))
            return data[len(b"+OK\r\n") :]

    def _ready(self) -> bool:
        try:
            return self.command("PING", timeout=1.0).startswith(b"+PONG")
        except (OSError, ServiceError):
            return False

    def version(self) -> str:
        """`valkey_version` from INFO server (8.x)."""
        info = self.command("INFO", "server").decode()
        return next(
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.startswith("valkey_version:")
        )


# --------------------------------------------------------------------------------------------
# PostgreSQL 17's client tools

# TEST SHIM for PostgreSQL 17's psql, pg_dump and pg_restore (what the program's backup setup
# installs on a droplet: postgresql-client-17). This Debian 12 machine has only the 15 client,
# whose pg_dump cannot dump a 17 server, so each shim runs the real 17 tool from the trixie
# services image in a host-network container (the server is on loopback), with the libpq login
# passed by variable name from the caller's environment (never on a command line) and the
# caller's files under `root` at their own paths.
_PG_TOOL_SHIM = """#!/bin/sh
# TEST SHIM: the real {tool} 17 from the trixie services image (Debian 12 has only 15).
export DOCKER_HOST={docker_host}
exec {docker} exec -i {env_args} {container} {pg_bin}/{tool} "$@"
"""
_LIBPQ_VARS = (
    "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGCONNECT_TIMEOUT",
    "PGAPPNAME", "PGOPTIONS", "LANG", "TZ",
)  # fmt: skip


class PostgresClients(ManagedService):
    """psql, pg_dump and pg_restore 17 as executables in `bin_dir`, for scripts that run them.

    One idle container from the services image (host network, `root` mounted at its path)
    serves every call through `docker exec`: much cheaper per call than a container each.
    """

    service = "postgres-clients"

    def __init__(self, engine: DockerEngine, root: Path) -> None:
        self.engine = engine
        self.root = root
        self.bin_dir = root / "pg17-bin"
        self.container: str | None = None

    def start(self) -> None:
        self.container = f"clipper-pg-clients-{secrets.token_hex(4)}"
        self.engine.run(
            ["run", "-d", "--name", self.container, "--network", "host",
             "-v", f"{self.root}:{self.root}", services_image(self.engine), "sleep", "infinity"]
        )  # fmt: skip
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        env_args = " ".join(f"-e {name}" for name in _LIBPQ_VARS)
        docker = require_binary(self.service, "docker")
        for tool in ("psql", "pg_dump", "pg_restore"):
            shim = self.bin_dir / tool
            shim.write_text(
                _PG_TOOL_SHIM.format(
                    tool=tool, docker_host=shlex.quote(self.engine.docker_host),
                    docker=docker, env_args=env_args, container=self.container, pg_bin=PG_BIN,
                )
            )  # fmt: skip
            shim.chmod(0o755)

    def stop(self) -> None:
        if self.container is not None:
            self.engine.run(["rm", "-f", self.container], check=False)
            self.container = None
