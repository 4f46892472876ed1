"""A real Docker engine for host tests, and a base image built without any registry.

No registry is reachable here, so images are built from a Debian root made by ``debootstrap``
(from the apt mirror, which is reachable) and ``docker import``-ed once. The engine's data root
lives in a cache dir (``/var/cache/clipper-tests/docker``, or ``$CLIPPER_TEST_CACHE/docker``) so
that image survives between test runs on one machine.

Several test processes may share one engine: each holds a shared ``flock`` on ``users.lock``
while it uses it, and whoever finds itself the last user on exit stops dockerd, its containerd
and any leftover shims, by PID.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .procs import (
    ManagedService,
    ServiceError,
    children_of,
    log_tail,
    pid_alive,
    read_pid,
    require_binary,
    run_step,
    safe_rmtree,
    stop_pid,
    unmount_under,
    wait_until,
)

__all__ = [
    "BASE_IMAGE",
    "BASE_PACKAGES",
    "DockerEngine",
    "build_base_image",
    "cache_dir",
    "debian_mirror",
    "file_lock",
]

CACHE_ENV = "CLIPPER_TEST_CACHE"
DEFAULT_CACHE = Path("/var/cache/clipper-tests")
BASE_IMAGE = "local/clipper-base:1"
BASE_PACKAGES = (
    "busybox",
    "python3-minimal",
    "python3-psycopg2",
    "postgresql-client",
    "ca-certificates",
    "curl",
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes; containerd adds ".ttrpc" to its socket name


def cache_dir() -> Path:
    """The machine-wide test cache (``$CLIPPER_TEST_CACHE`` or /var/cache/clipper-tests)."""
    path = Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an ``flock`` on ``path`` (blocking) for the body: serialises racing test processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class DockerEngine(ManagedService):
    """Debian's dockerd with its own data/exec root and socket under the cache dir.

    ``env`` is a full copy of ``os.environ`` with ``DOCKER_HOST`` pointing at this engine, for
    ``subprocess.run(..., env=engine.env)``; ``docker_host`` is just that URL. The docker
    client on PATH is used (the preinstalled 28.x client talks to dockerd 20.10 fine).
    On a fresh start, containers left over from an earlier crashed run are removed.
    """

    service = "dockerd"

    def __init__(self, root: Path | None = None, *, start_timeout: float = 60.0) -> None:
        self.root = (root or cache_dir() / "docker").resolve()
        self.data_root = self.root / "data"
        self.exec_root = self.root / "exec"
        self.socket = self.root / "docker.sock"
        if len(str(self.exec_root / "containerd" / "containerd.sock.ttrpc")) > _SOCKET_PATH_MAX:
            # Unix socket paths are short; keep the runtime state in /tmp for long cache paths.
            short = (
                Path("/tmp")
                / f"clipper-docker-{hashlib.sha256(str(self.root).encode()).hexdigest()[:10]}"
            )
            self.exec_root = short / "exec"
            self.socket = short / "docker.sock"
        self.pid_file = self.root / "dockerd.pid"
        self.log_file = self.root / "dockerd.log"
        self.docker_host = f"unix://{self.socket}"
        self.env: dict[str, str] = {**os.environ, "DOCKER_HOST": self.docker_host}
        self.start_timeout = start_timeout
        self.reused = False
        self._users_fd: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- life cycle ---------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when the daemon answers ``GET /_ping`` on its socket."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2.0)
                sock.connect(str(self.socket))
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                reply = b""
                while chunk := sock.recv(4096):
                    reply += chunk
        except OSError:
            return False
        return (
            reply.startswith(b"HTTP/1.")
            and b" 200 " in reply.split(b"\r\n", 1)[0]
            and reply.endswith(b"OK")
        )

    def start(self) -> None:
        """Reuse a dockerd already answering on the socket, else start one and wait for /_ping."""
        if self._users_fd is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / "start.lock"):
            self._users_fd = os.open(self.root / "users.lock", os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._users_fd, fcntl.LOCK_SH)
            if self.ping():
                self.reused = True
                return
            self._start_daemon()

    def _start_daemon(self) -> None:
        dockerd = require_binary(self.service, "dockerd")
        require_binary(self.service, "containerd")
        stale = read_pid(self.pid_file)
        if stale is not None and pid_alive(stale) and "dockerd" in _cmdline(stale):
            # A hung daemon from a crashed run holds the pid file: it would refuse to start.
            stop_pid(stale, timeout=10)
        self._stop_containerd()
        # dockerd treats a pid file naming any existing process (even a zombie) as "still
        # running" and then fails or waits; after the stops above, both files are stale.
        self.pid_file.unlink(missing_ok=True)
        (self.exec_root / "containerd" / "containerd.pid").unlink(missing_ok=True)
        for path in (self.data_root, self.exec_root):
            path.mkdir(parents=True, exist_ok=True)
        if self.log_file.exists():
            self.log_file.replace(self.log_file.with_suffix(".log.1"))
        with self.log_file.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    dockerd,
                    "--data-root",
                    str(self.data_root),
                    "--exec-root",
                    str(self.exec_root),
                    "--pidfile",
                    str(self.pid_file),
                    "-H",
                    self.docker_host,
                    "--shutdown-timeout",
                    "5",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        proc = self._proc

        def died() -> str | None:
            return None if proc.poll() is None else "exited"

        if not wait_until(self.ping, timeout=self.start_timeout, abort=died):
            raise ServiceError(
                self.service,
                "start dockerd",
                f"no answer on {self.socket} (exit code {proc.poll()})",
                self.log_file,
            )
        leftovers = self.run(["ps", "-aq"]).stdout.split()
        if leftovers:
            self.run(["rm", "-f", *leftovers], timeout=120)

    def stop(self) -> None:
        """Drop our use of the engine; if we were its last user, stop dockerd and containerd."""
        if self._users_fd is None:
            return
        try:
            with file_lock(self.root / "start.lock"):
                fcntl.flock(self._users_fd, fcntl.LOCK_UN)
                try:
                    fcntl.flock(self._users_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return  # another test process still uses this engine; it stops it later
                self._shutdown()
        finally:
            os.close(self._users_fd)
            self._users_fd = None

    def _shutdown(self) -> None:
        if self.ping():
            # Containers left running would each cost dockerd's shutdown timeout.
            ids = self.run(["ps", "-q"], check=False).stdout.split()
            if ids:
                self.run(["rm", "-f", *ids], check=False, timeout=120)
        pid = self._proc.pid if self._proc is not None else read_pid(self.pid_file)
        if pid is not None and pid_alive(pid):
            stop_pid(pid, timeout=30)
        if self._proc is not None:
            self._proc.wait(timeout=10)
            self._proc = None
        self._stop_containerd()
        # dockerd leaves its netns mount and a bind mount of the data root behind.
        unmount_under(self.exec_root)
        unmount_under(self.data_root)

    def _stop_containerd(self) -> None:
        """Stop this engine's containerd and its shims (matched by our socket path), by PID.

        A shim that outlived its containerd (dockerd crashed) still runs its container: kill the
        container's init (the shim's child; that ends its PID namespace) before the shim.
        """
        pid = read_pid(self.exec_root / "containerd" / "containerd.pid")
        if pid is not None and pid_alive(pid) and "containerd" in _cmdline(pid):
            stop_pid(pid, timeout=10)
        address = str(self.exec_root / "containerd" / "containerd.sock")
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                cmd = _cmdline(int(entry.name))
                if "containerd-shim" in cmd and address in cmd:
                    for child in children_of(int(entry.name)):
                        stop_pid(child, sig=signal.SIGKILL, timeout=5)
                    stop_pid(int(entry.name), sig=signal.SIGKILL, timeout=5)

    # -- use ----------------------------------------------------------------------------------

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        input: str | None = None,
        timeout: float = 300.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``docker ARGS`` against this engine; with ``check`` a failure raises ServiceError."""
        docker = require_binary(self.service, "docker")
        return run_step(
            self.service,
            "docker " + " ".join(args[:2]),
            [docker, *args],
            log=self.log_file,
            env=self.env,
            input=input,
            timeout=timeout,
            check=check,
        )

    def image_exists(self, ref: str) -> bool:
        """True when the engine has image ``ref`` locally."""
        return (
            self.run(["image", "inspect", "--format", "{{.Id}}", ref], check=False).returncode == 0
        )


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def debian_mirror(suite: str = "bookworm") -> str:
    """The Debian mirror apt uses for ``suite`` (.sources or .list files), else deb.debian.org."""
    sources = Path("/etc/apt/sources.list.d")
    found = _deb822_mirror(sources, suite)
    if found is None:
        found = _one_line_mirror(sources, suite)
    return DEFAULT_MIRROR if found is None else found


def _deb822_mirror(sources: Path, suite: str) -> str | None:
    """The first URI of a `Types: deb` stanza for ``suite`` in the ``*.sources`` files."""
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
            if (
                "deb" in fields.get("types", "").split()
                and suite in fields.get("suites", "").split()
            ):
                uris = fields.get("uris", "").split()
                if uris:
                    return uris[0].rstrip("/")
    return None


def _one_line_mirror(sources: Path, suite: str) -> str | None:
    """The URI of a `deb URI suite ...` line in sources.list or the ``*.list`` files."""
    lists = (
        [Path("/etc/apt/sources.list"), *sorted(sources.glob("*.list"))]
        if sources.is_dir()
        else [Path("/etc/apt/sources.list")]
    )
    for path in lists:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1].rstrip("/")
    return None


def _apt_proxy_env() -> dict[str, str]:
    """apt's configured HTTP proxy as ``http_proxy`` for debootstrap (which uses wget, not apt)."""
    try:
        dump = subprocess.run(
            ["apt-config", "dump"], capture_output=True, text=True, check=False
        ).stdout
    except OSError:
        return {}
    match = re.search(r'^Acquire::http::Proxy "([^"]+)";', dump, re.MULTILINE)
    return (
        {"http_proxy": match.group(1)}
        if match and match.group(1) not in ("DIRECT", "false")
        else {}
    )


def _prune_rootfs(root: Path) -> None:
    """Drop docs, man pages, locales and apt lists: ~110 MB the tests never use."""
    for rel in (
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
        "usr/share/info",
        "var/lib/apt/lists",
    ):
        target = root / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
            target.mkdir()
    for cached in (root / "var/cache/apt").glob("*.bin"):
        cached.unlink()


def build_base_image(
    engine: DockerEngine,
    tag: str = BASE_IMAGE,
    *,
    packages: Sequence[str] = BASE_PACKAGES,
    suite: str = "bookworm",
    mirror: str | None = None,
) -> str:
    """Build (once per engine data root) a Debian ``minbase`` image with ``packages``.

    ``debootstrap`` a root into the cache dir, then ``tar -C ROOT -c . | docker import``. Skipped
    when the engine already has ``tag``; a file lock makes racing test processes build it once.
    The image has PATH, LANG=C.UTF-8 and CMD bash set, since ``docker import`` sets none.
    """
    if engine.image_exists(tag):
        return tag
    cache = cache_dir()
    with file_lock(cache / "base-image.lock"):
        if engine.image_exists(tag):
            return tag
        debootstrap = require_binary("debootstrap", "debootstrap")
        for stale in cache.glob("base-rootfs-*"):
            safe_rmtree(stale)  # left by a crashed build; we hold the lock, so nobody uses it
        root = cache / f"base-rootfs-{os.getpid()}"
        log = cache / "debootstrap.log"
        debs = cache / "debootstrap-debs"
        debs.mkdir(exist_ok=True)
        try:
            proc = run_step(
                "debootstrap",
                "debootstrap",
                [
                    debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(packages)}",
                    f"--cache-dir={debs}",
                    suite,
                    str(root),
                    mirror or debian_mirror(suite),
                ],
                env={**os.environ, **_apt_proxy_env()},
                timeout=900,
                check=False,
            )
            log.write_text(proc.stdout + proc.stderr)
            if proc.returncode != 0:
                inner = root / "debootstrap" / "debootstrap.log"
                detail = f"exit {proc.returncode}; {inner}:\n{log_tail(inner, 30)}"
                raise ServiceError("debootstrap", "debootstrap", detail, log)
            _prune_rootfs(root)
            _import_rootfs(engine, root, tag, packages)
        finally:
            safe_rmtree(root)
    return tag


def _import_rootfs(engine: DockerEngine, root: Path, tag: str, packages: Sequence[str]) -> None:
    docker = require_binary("docker", "docker")
    changes = [
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV LANG=C.UTF-8",
        'CMD ["/bin/bash"]',
        f"LABEL org.clipper.base.packages={','.join(packages)}",
    ]
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", str(root), "-c", "."],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    args = [docker, "import"]
    for change in changes:
        args += ["--change", change]
    assert tar.stdout is not None
    try:
        imported = subprocess.run(
            [*args, "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            text=True,
            env=engine.env,
            timeout=600,
            check=False,
        )
    finally:
        tar.stdout.close()
        tar_err = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
        tar.wait()
    if tar.returncode != 0 or imported.returncode != 0:
        detail = (
            f"tar exit {tar.returncode}: {tar_err}\n"
            f"docker import exit {imported.returncode}: {imported.stderr}"
        )
        raise ServiceError("docker", "import base image", detail, engine.log_file)
