"""Real services on loopback for host tests: nginx and sshd (Docker re-exported).

PostgreSQL 17 and Valkey 8 run from the trixie services image: see data_stores.py.
Each helper is a context manager that starts the real Debian binary in its own temp dir on
127.0.0.1 with a free port, and always stops it and deletes the dir on exit (also when the body
or the start itself failed). A failing step raises :class:`ServiceError` naming the step and
quoting the service's log tail. Nothing here talks to anything but 127.0.0.1.

The packages come from ``scripts/install-test-deps.sh``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from .docker import BASE_IMAGE, DockerEngine, build_base_image, cache_dir
from .procs import (
    ManagedService,
    ServiceError,
    children_of,
    free_port,
    log_tail,
    require_binary,
    run_step,
    safe_rmtree,
    stop_pid,
    wait_for_port,
    wait_until,
)
from .tls import TlsFiles, make_tls_files

__all__ = [
    "BASE_IMAGE",
    "DockerEngine",
    "NginxFactory",
    "NginxServer",
    "ServiceError",
    "SshHost",
    "TlsFiles",
    "build_base_image",
    "cache_dir",
    "free_port",
    "make_tls_files",
    "nginx_main_conf",
]

LOOPBACK = "127.0.0.1"
_PORT_RETRIES = 3


def _make_temp_dir(prefix: str, base_dir: Path | None, mode: int = 0o700) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base_dir))
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------------------------
# shared plumbing


class _DirService(ManagedService):
    """A service that lives in a temp dir of its own while it runs."""

    service: str
    dir: Path | None

    @property
    def _dir(self) -> Path:
        if self.dir is None:
            raise ServiceError(self.service, "use", "server is not started")
        return self.dir


# --------------------------------------------------------------------------------------------
# nginx

_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
NGINX_MODULES = Path("/usr/lib/nginx/modules")


def nginx_main_conf(
    prefix: Path,
    http_body: str,
    *,
    includes: Iterable[Path | str] = (),
    stream_body: str | None = None,
    stream_includes: Iterable[Path | str] = (),
    worker_processes: int = 1,
    mime_types: bool = True,
) -> str:
    """Render a complete main nginx.conf that keeps all of nginx's state inside ``prefix``.

    A site file (``server {...}``) cannot be run alone: it needs ``events {}`` and ``http {}``
    around it, and the compiled-in pid, lock, log and ``*_temp_path`` defaults point at system
    dirs. This wrapper points all of them into ``prefix``, inlines ``http_body`` and includes
    the caller's files (absolute paths, or relative to ``prefix``) inside ``http {}``.
    ``stream_body``/``stream_includes`` add a ``stream {}`` block (loading the dynamic module).
    As root the workers run as root too (``user root``), so they can read test files in private
    temp dirs.
    """
    prefix = Path(prefix).resolve()
    stream_includes = list(stream_includes)
    lines: list[str] = []
    if stream_body is not None or stream_includes:
        lines.append(f"load_module {NGINX_MODULES / 'ngx_stream_module.so'};")
    if os.geteuid() == 0:
        lines.append("user root root;")
    lines += [
        f"worker_processes {worker_processes};",
        f"pid {prefix / 'nginx.pid'};",
        f"lock_file {prefix / 'nginx.lock'};",
        f"error_log {prefix / 'error.log'} info;",
        "",
        "events {",
        "    worker_connections 1024;",
        "}",
        "",
        "http {",
    ]
    if mime_types:
        lines += [
            "    include /etc/nginx/mime.types;",
            "    default_type application/octet-stream;",
        ]
    lines.append(f"    access_log {prefix / 'access.log'};")
    lines += [f"    {name}_temp_path {prefix / (name + '_temp')};" for name in _TEMP_PATHS]
    lines += [f"    include {prefix / inc};" for inc in includes]
    lines += ["    " + line if line.strip() else "" for line in http_body.splitlines()]
    lines.append("}")
    if stream_body is not None or stream_includes:
        lines.append("")
        lines.append("stream {")
        lines += [f"    include {prefix / inc};" for inc in stream_includes]
        lines += [
            "    " + line if line.strip() else "" for line in (stream_body or "").splitlines()
        ]
        lines.append("}")
    return "\n".join(lines) + "\n"


def _listening_inodes() -> set[str]:
    """Inodes of all listening TCP sockets (state 0A in /proc/net/tcp{,6})."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == "0A":
                inodes.add(fields[9])
    return inodes


def _holds_socket(pid: int, inodes: set[str]) -> bool:
    """True if process ``pid`` has an open fd on one of the socket ``inodes``."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


class NginxServer(_DirService):
    """nginx run as ``nginx -p DIR -e DIR/error.log -c DIR/nginx.conf`` in the foreground.

    The master runs as our child with ``-g 'daemon off;'`` (so the config must not set
    ``daemon``), which lets reload/stop signal it directly instead of trusting the pid file
    the config names (``nginx -s`` would fall back to the system's /run/nginx.pid). Pid, log and
    temp paths inside the prefix are the config's job: :func:`nginx_main_conf` renders one.
    Note that without ``user root`` in the config, workers run as ``nobody`` and cannot read
    files under a 0700 dir (pytest's ``tmp_path``): use a world-readable prefix or ``user root``.
    """

    service = "nginx"

    def __init__(self, prefix: Path, *, conf: str = "nginx.conf", binary: str = "nginx") -> None:
        self.prefix = Path(prefix).resolve()
        self.conf = self.prefix / conf
        self.error_log = self.prefix / "error.log"
        self.output_log = self.prefix / "nginx.out"
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None

    def _args(self, *extra: str) -> list[str]:
        binary = require_binary(self.service, self._binary)
        return [
            binary,
            "-p",
            f"{self.prefix}/",
            "-e",
            str(self.error_log),
            "-c",
            str(self.conf),
            *extra,
        ]

    def write_conf(
        self,
        http_body: str,
        *,
        includes: Iterable[Path | str] = (),
        stream_body: str | None = None,
        stream_includes: Iterable[Path | str] = (),
    ) -> Path:
        """Write :func:`nginx_main_conf` for this prefix to the config path; return it."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        text = nginx_main_conf(
            self.prefix,
            http_body,
            includes=includes,
            stream_body=stream_body,
            stream_includes=stream_includes,
        )
        self.conf.write_text(text)
        return self.conf

    @property
    def pid(self) -> int | None:
        """PID of the running master, or None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def workers(self) -> list[int]:
        """PIDs of the master's current children (workers, cache managers, old workers)."""
        pid = self.pid
        return children_of(pid) if pid is not None else []

    def test(self) -> str:
        """``nginx -t``: raise ServiceError with nginx's own message if the config is invalid."""
        proc = run_step(
            self.service, "nginx -t", self._args("-t", "-q"), log=self.error_log, check=False
        )
        if proc.returncode != 0:
            raise ServiceError(self.service, "nginx -t", proc.stderr or proc.stdout, self.error_log)
        return proc.stderr

    def start(self, *, wait_ports: Iterable[int] = (), timeout: float = 10.0) -> None:
        """Start the master, wait for a worker (and for ``wait_ports`` to accept connections)."""
        if self.pid is not None:
            raise ServiceError(self.service, "start", "already running", self.error_log)
        self.prefix.mkdir(parents=True, exist_ok=True)
        with self.output_log.open("ab") as out:
            self._proc = subprocess.Popen(
                self._args("-g", "daemon off;"),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

        def died() -> str | None:
            return None if self.pid is not None else "exited"

        if not wait_until(lambda: bool(self.workers()), timeout=timeout, abort=died):
            output = log_tail(self.output_log, 10)
            detail = f"no worker process (exit code {self._proc.poll()}); output: {output}"
            self.stop()
            raise ServiceError(self.service, "start", detail, self.error_log)
        for port in wait_ports:
            if not wait_for_port(LOOPBACK, port, timeout):
                self.stop()
                raise ServiceError(
                    self.service,
                    "start",
                    f"port {port} does not accept connections",
                    self.error_log,
                )

    def reload(self, *, timeout: float = 10.0) -> None:
        """Signal a reload (SIGHUP, as ``nginx -s reload``) and wait until new workers run.

        nginx keeps serving the old config when the new one is broken; then this raises
        ServiceError (step ``reload``) quoting the error log, so tests can assert both cases.
        """
        pid = self.pid
        if pid is None:
            raise ServiceError(self.service, "reload", "not running", self.error_log)
        before = set(children_of(pid))
        log_size = self.error_log.stat().st_size if self.error_log.exists() else 0
        os.kill(pid, signal.SIGHUP)

        def new_log() -> str:
            try:
                with self.error_log.open("rb") as fh:
                    fh.seek(log_size)
                    return fh.read().decode(errors="replace")
            except OSError:
                return ""

        def rejected() -> str | None:
            text = new_log()
            return "rejected" if "[emerg]" in text or "[alert]" in text else None

        def switched() -> bool:
            # New workers run, and the old ones have closed their listening sockets (they may
            # still finish in-flight requests), so every new connection sees the new config.
            if not set(children_of(pid)) - before:
                return False
            listeners = _listening_inodes()
            return not any(_holds_socket(old, listeners) for old in before)

        if not wait_until(switched, timeout=timeout, abort=rejected):
            raise ServiceError(
                self.service,
                "reload",
                "nginx did not load the new config:\n" + new_log(),
                self.error_log,
            )

    def stop(self, *, timeout: float = 15.0) -> None:
        """Graceful stop (SIGQUIT, as ``nginx -s quit``); SIGKILL the group after ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGQUIT)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        # Workers are in the master's session/process group: make sure none outlive it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        self._proc = None


# --------------------------------------------------------------------------------------------
# sshd


class SshHost(_DirService):
    """An OpenSSH server on 127.0.0.1 that logs in to *this* machine with a generated key.

    The "remote" host of deploy tests is the test machine itself, so by default the user is the
    current one (root here: ``PermitRootLogin prohibit-password``). Key auth only, no PAM.
    Remote commands get sshd's default PATH (plus the login shell's rc files) and otherwise a
    clean environment: pass variables per call (``ssh(..., env={"DOCKER_HOST": ...})``; only
    names matching ``accept_env`` are accepted) or fix them for every session with ``env``
    (written as ``SetEnv``).
    """

    service = "sshd"

    def __init__(
        self,
        *,
        user: str | None = None,
        env: Mapping[str, str] | None = None,
        accept_env: Sequence[str] = ("DOCKER_*", "CLIPPER_*", "PG*", "REDIS_*", "LANG", "LC_*"),
        port: int | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.host = LOOPBACK
        self.user = user or pwd.getpwuid(os.geteuid()).pw_name
        self.env = dict(env or {})
        self.accept_env = list(accept_env)
        self._fixed_port = port
        self.port = port or 0
        self._base_dir = base_dir
        self.dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self._dir / "sshd.log"

    @property
    def private_key_path(self) -> Path:
        return self._dir / "id_ed25519"

    @property
    def private_key(self) -> str:
        """OpenSSH-format private key text (for tools that take the key inline)."""
        return self.private_key_path.read_text()

    @property
    def public_key(self) -> str:
        return (self._dir / "id_ed25519.pub").read_text().strip()

    @property
    def host_public_key(self) -> str:
        """The server's host key (``ssh-ed25519 AAAA...``), for callers that pin it."""
        return (self._dir / "ssh_host_ed25519_key.pub").read_text().strip()

    def _config(self) -> str:
        d = self._dir
        lines = [
            f"Port {self.port}",
            f"ListenAddress {self.host}",
            f"HostKey {d / 'ssh_host_ed25519_key'}",
            f"PidFile {d / 'sshd.pid'}",
            f"AuthorizedKeysFile {d / 'authorized_keys'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PermitRootLogin prohibit-password",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 64:30:128",
            "MaxSessions 64",
            "Subsystem sftp internal-sftp",
            "LogLevel INFO",
        ]
        if self.accept_env:
            lines.append("AcceptEnv " + " ".join(self.accept_env))
        if self.env:
            lines.append("SetEnv " + " ".join(f'{k}="{v}"' for k, v in self.env.items()))
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Make keys and sshd_config, check it (``sshd -t``), run ``sshd -D``, wait for it."""
        sshd = require_binary(self.service, "/usr/sbin/sshd")
        keygen = require_binary(self.service, "ssh-keygen")
        self.dir = _make_temp_dir("clipper-sshd-", self._base_dir)
        # sshd's privilege separation needs this dir, which only the package's init script makes.
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        for key in ("ssh_host_ed25519_key", "id_ed25519"):
            run_step(
                self.service,
                f"ssh-keygen {key}",
                [
                    keygen,
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"clipper-test-{key}",
                    "-f",
                    str(self._dir / key),
                ],
            )
        (self._dir / "authorized_keys").write_text(self.public_key + "\n")
        config = self._dir / "sshd_config"
        for attempt in range(_PORT_RETRIES):
            self.port = self._fixed_port or free_port()
            config.write_text(self._config())
            run_step(self.service, "sshd -t", [sshd, "-t", "-f", str(config)])
            self.log_file.unlink(missing_ok=True)
            self._proc = subprocess.Popen(
                [sshd, "-D", "-f", str(config), "-E", str(self.log_file)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            proc = self._proc

            def listening() -> bool:
                return "Server listening" in log_tail(self.log_file, 20)

            def died(proc: subprocess.Popen[bytes] = proc) -> str | None:
                return None if proc.poll() is None else "exited"

            if wait_until(listening, timeout=10, abort=died) and wait_for_port(
                self.host, self.port, 5
            ):
                return
            in_use = "already in use" in log_tail(self.log_file, 20)
            self._kill()
            if not in_use or self._fixed_port or attempt == _PORT_RETRIES - 1:
                raise ServiceError(
                    self.service, "start sshd", f"not listening on port {self.port}", self.log_file
                )

    def client_args(self, *, env_names: Iterable[str] = ()) -> list[str]:
        """``ssh`` argv up to and including the destination (append the remote command)."""
        args = [
            "ssh",
            "-F",
            "/dev/null",
            "-p",
            str(self.port),
            "-i",
            str(self.private_key_path),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "IdentityAgent=none",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
        ]
        for name in env_names:
            args += ["-o", f"SendEnv={name}"]
        return [*args, f"{self.user}@{self.host}"]

    def ssh(
        self,
        command: str,
        stdin: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on the SSH host; ``env`` is sent with SendEnv (see ``accept_env``).

        With ``check`` a non-zero exit raises ServiceError quoting stderr and the sshd log.
        """
        env = dict(env or {})
        proc_env = {**os.environ, **env}
        try:
            proc = subprocess.run(
                [*self.client_args(env_names=env), command],
                input=stdin if stdin is not None else "",
                capture_output=True,
                text=True,
                timeout=timeout,
                env=proc_env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(
                self.service, "ssh", f"{command!r} timed out after {timeout}s", self.log_file
            ) from exc
        if check and proc.returncode != 0:
            detail = (
                f"{command!r} exited {proc.returncode}\n"
                f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
            )
            raise ServiceError(self.service, "ssh", detail, self.log_file)
        return proc

    def _kill(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                stop_pid(self._proc.pid, timeout=5)
            self._proc.wait(timeout=5)
            self._proc = None

    def stop(self) -> None:
        """Stop the listening sshd (open sessions end with it) and delete the temp dir."""
        self._kill()
        if self.dir is not None:
            safe_rmtree(self.dir)
            self.dir = None


class NginxFactory:
    """Makes :class:`NginxServer` objects for one test and stops/deletes them all afterwards.

    ``factory()`` gives a server with a fresh world-readable prefix dir under /tmp (so workers
    can read it even when the config has no ``user root``); ``factory(prefix)`` wraps a dir
    the test prepared itself. Servers are returned unstarted: write the config, then start.
    """

    def __init__(self, base_dir: Path | None = None) -> None:
        self._base_dir = base_dir
        self._servers: list[NginxServer] = []
        self._dirs: list[Path] = []

    def __call__(self, prefix: Path | None = None, *, conf: str = "nginx.conf") -> NginxServer:
        if prefix is None:
            prefix = _make_temp_dir("clipper-nginx-", self._base_dir, mode=0o755)
            self._dirs.append(prefix)
        server = NginxServer(prefix, conf=conf)
        self._servers.append(server)
        return server

    def close(self) -> None:
        """Stop every server made here (re-raising the first error) and delete temp prefixes."""
        errors: list[BaseException] = []
        for server in self._servers:
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others first
                errors.append(exc)
        for path in self._dirs:
            safe_rmtree(path)
        self._servers.clear()
        self._dirs.clear()
        if errors:
            raise errors[0]
