"""PgBouncer on loopback, standing in for DigitalOcean's connection pool in host tests.

DigitalOcean's pool is PgBouncer: the client connects to the pool's own port with the pool's
name as database name, over TLS, as the app's user, and PgBouncer holds server connections to
the cluster's database. :class:`PgBouncerPool` does the same in session mode (the mode the
platform uses), with TLS for clients when given a certificate.

Unlike DigitalOcean's, this pool can log in to PostgreSQL as a role of its own (`server_user`):
a test makes that role read-only, so a backend's reads pass while any migration sent through
the pool fails at once, which shows that migrations go to the cluster directly.

PgBouncer refuses to run as root, so as root it runs as the ``postgres`` OS user (``-u``).
The package comes from ``scripts/install-test-deps.sh``.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .procs import (
    ManagedService,
    ServiceError,
    free_port,
    pid_alive,
    read_pid,
    require_binary,
    safe_rmtree,
    stop_pid,
    wait_for_port,
)
from .tls import TlsFiles

__all__ = ["PgBouncerPool", "PoolLogin"]

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class PoolLogin:
    """A PostgreSQL login: user and password."""

    user: str
    password: str


def _quoted(value: str) -> str:
    # PgBouncer's auth_file quotes with "..." and doubles an inner quote.
    return '"' + value.replace('"', '""') + '"'


class PgBouncerPool(ManagedService):
    """One pool `name` -> `database` on PostgreSQL at `server_host:server_port`, in session mode.

    Clients log in as `client` (checked with SCRAM against the auth file); the pool logs in to
    PostgreSQL as `server` (the same login when it is the same role, as on DigitalOcean).
    """

    service = "pgbouncer"

    def __init__(
        self,
        *,
        name: str,
        database: str,
        server_host: str,
        server_port: int,
        client: PoolLogin,
        server: PoolLogin | None = None,
        tls: TlsFiles | None = None,
        os_user: str = "postgres",
    ) -> None:
        self.name = name
        self.database = database
        self.server_host = server_host
        self.server_port = server_port
        self.client = client
        self.server = server or client
        self.tls = tls
        self.host = LOOPBACK
        self.port = 0
        self._os_user = os_user if os.geteuid() == 0 else None
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        assert self.dir is not None
        return self.dir / "pgbouncer.log"

    def _config(self) -> str:
        assert self.dir is not None
        entry = (
            f"host={self.server_host} port={self.server_port} dbname={self.database}"
            f" user={self.server.user} password={self.server.password}"
        )
        lines = [
            "[databases]",
            f"{self.name} = {entry}",
            "[pgbouncer]",
            f"listen_addr = {LOOPBACK}",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "pool_mode = session",
            "auth_type = scram-sha-256",
            f"auth_file = {self.dir / 'users.txt'}",
            f"logfile = {self.log_file}",
            f"pidfile = {self.dir / 'pgbouncer.pid'}",
            "server_tls_sslmode = prefer",
            "ignore_startup_parameters = extra_float_digits",
        ]
        if self.tls is not None:
            lines += [
                "client_tls_sslmode = require",
                f"client_tls_cert_file = {self.dir / 'tls.crt'}",
                f"client_tls_key_file = {self.dir / 'tls.key'}",
            ]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        binary = require_binary(self.service, "pgbouncer")
        self.dir = Path(tempfile.mkdtemp(prefix="clipper-pgbouncer-"))
        self.port = free_port()
        (self.dir / "users.txt").write_text(
            f"{_quoted(self.client.user)} {_quoted(self.client.password)}\n"
        )
        if self.tls is not None:  # copies: the pool's user must own what it reads
            (self.dir / "tls.crt").write_bytes(self.tls.cert.read_bytes())
            (self.dir / "tls.key").write_bytes(self.tls.key.read_bytes())
        (self.dir / "pgbouncer.ini").write_text(self._config())
        for path in [self.dir, *self.dir.iterdir()]:
            path.chmod(0o700 if path.is_dir() else 0o600)
            if self._os_user is not None:
                entry = pwd.getpwnam(self._os_user)
                os.chown(path, entry.pw_uid, entry.pw_gid)
        user_args = ["-u", self._os_user] if self._os_user is not None else []
        self._proc = subprocess.Popen(
            [binary, *user_args, str(self.dir / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_for_port(self.host, self.port, 10):
            raise ServiceError(self.service, "start", "not listening", self.log_file)

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGINT)  # PgBouncer's immediate shutdown
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=10)
            self._proc = None
        if self.dir is not None:
            pid = read_pid(self.dir / "pgbouncer.pid")
            if pid is not None and pid_alive(pid):
                stop_pid(pid)
            safe_rmtree(self.dir)
            self.dir = None
