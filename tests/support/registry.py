"""A loopback image registry with a login: Debian's docker-registry (the CNCF distribution
registry, the software behind most registries) with htpasswd auth, standing in for the stack's
DigitalOcean Container Registry.

dockerd treats 127.0.0.0/8 as an insecure registry, so it pushes and pulls over plain HTTP and
still sends the login. htpasswd users all have read and write: DigitalOcean's read-only token
cannot be imitated here, only the fact that a pull needs the credential file.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import bcrypt

from .procs import ServiceError, free_port, require_binary, safe_rmtree, stop_pid, wait_for_port


class LoopbackRegistry:
    """`docker-registry serve` on 127.0.0.1 with one user; `docker_config` writes the Docker
    config file (`{"auths": ...}`, DigitalOcean's credential format) that logs in to it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="clipper-registry-"))
        self.port = free_port()
        self.user = "clipper-test"
        self.password = secrets.token_hex(16)
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def docker_config(self, directory: Path) -> Path:
        """A Docker config dir whose config.json holds this registry's login (mode 0600)."""
        directory.mkdir(parents=True, exist_ok=True)
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        path = directory / "config.json"
        path.write_text(json.dumps({"auths": {self.host: {"auth": auth}}}))
        path.chmod(0o600)
        return directory

    def __enter__(self) -> LoopbackRegistry:
        binary = require_binary("docker-registry", "docker-registry")
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
        (self.root / "htpasswd").write_text(f"{self.user}:{hashed}\n")
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.root / 'data'}}}}}\n"
            f"http: {{addr: {self.host}}}\n"
            f"auth: {{htpasswd: {{realm: clipper-test, path: {self.root / 'htpasswd'}}}}}\n"
        )
        log = (self.root / "registry.log").open("wb")
        self._proc = subprocess.Popen(
            [binary, "serve", str(config)], stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        if not wait_for_port("127.0.0.1", self.port, 15):
            self.__exit__(None, None, None)
            raise ServiceError(
                "docker-registry", "start", "not listening", self.root / "registry.log"
            )
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            stop_pid(self._proc.pid, timeout=10)
            self._proc.wait(timeout=10)
            self._proc = None
        safe_rmtree(self.root)
