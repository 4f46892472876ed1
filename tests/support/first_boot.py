"""The world a first-boot test boots a droplet into: a TLS registry standing in for ghcr.io,
the parity data stores under the program's own private host names, and the program's remote
commands in the order `pulumi up` runs them.

SUBSTITUTIONS made here, each for what only DigitalOcean or the internet provides:
- `TlsRegistry`: the CNCF distribution registry (Debian's docker-registry binary, run in a
  container from the bookworm base image) as `registry.clipper.test:5000`, TLS with a test CA,
  in place of ghcr.io; the droplet trusts that CA through /etc/docker/certs.d (ghcr.io's
  certificate is publicly trusted, so a droplet needs no such file).
- the data stores: `tests.support.parity` containers on the droplet's VPC network, under the
  private host names and ports the mocks gave the clusters (DNS aliases), logins and database
  created as DigitalOcean creates them, with the passwords the program sends.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.offline.mocks import Registration
from components.offline.runner import ProgramRun

from .docker import DockerEngine
from .procs import ManagedService, ServiceError, free_port, wait_until
from .program import plain
from .release_host import ReleaseImages
from .tls import make_tls_files

__all__ = ["REGISTRY_HOST", "TlsRegistry", "env_values", "remote_commands"]

REGISTRY_HOST = "registry.clipper.test:5000"
COMMAND = "command:remote:Command"


@dataclass
class TlsRegistry(ManagedService):
    """A TLS registry on `network` (alias registry.clipper.test); this machine pushes to it on
    127.0.0.1:`push_port` (loopback registries need no trusted certificate)."""

    engine: DockerEngine
    image: str  # the bookworm base image: the registry binary is this machine's Debian one
    network: str
    name: str = "clipper-fb-registry"
    push_port: int = 0
    root: Path | None = None

    @property
    def ca_cert(self) -> Path:
        assert self.root is not None
        return self.root / "tls" / "ca.crt"

    def start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="clipper-fb-registry-"))
        self.root.chmod(0o755)
        make_tls_files(self.root / "tls", common_name="registry.clipper.test",
                       dns_names=("registry.clipper.test",), ip_addresses=())  # fmt: skip
        for path in (self.root / "tls").iterdir():
            path.chmod(0o644)
        (self.root / "config.yml").write_text(
            "version: 0.1\nlog: {level: warn}\n"
            "storage: {filesystem: {rootdirectory: /var/lib/registry}}\n"
            "http: {addr: ':5000', tls: {certificate: /etc/registry/tls/server.crt,"
            " key: /etc/registry/tls/server.key}}\n"
        )
        self.push_port = free_port()
        self.engine.run(["rm", "-f", self.name], check=False)
        self.engine.run(
            [
                "run", "-d", "--name", self.name, "--network", self.network,
                "--network-alias", REGISTRY_HOST.split(":", maxsplit=1)[0],
                "-p", f"127.0.0.1:{self.push_port}:5000",
                "-v", "/usr/bin/docker-registry:/usr/bin/docker-registry:ro",
                "-v", f"{self.root}:/etc/registry:ro",
                self.image, "/usr/bin/docker-registry", "serve", "/etc/registry/config.yml",
            ]
        )  # fmt: skip
        # docker-proxy accepts the published port before the registry listens: ask the API.
        if not wait_until(self._answers, timeout=30, interval=0.5):
            logs = self.engine.run(["logs", self.name], check=False)
            raise ServiceError("registry", "start", logs.stdout + logs.stderr)

    def _answers(self) -> bool:
        probe = subprocess.run(
            ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
             f"https://127.0.0.1:{self.push_port}/v2/"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return probe.stdout == "200"

    def stop(self) -> None:
        self.engine.run(["rm", "-f", self.name], check=False)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def publish(self, images: ReleaseImages, version: str = "v1") -> dict[str, str]:
        """Push one release of the stand-ins; return the stack settings that name them, each
        pinned by the digest the registry gave it."""
        refs = {
            "imageBackend": (f"clipper/backend:{version}", images.backend[version]),
            "imageFrontend": (f"clipper/frontend:{version}", images.frontend[version]),
            "imageMigrations": (f"clipper/migrations:{version}", images.migrations[version]),
            "imageMigrate": ("clipper/migrate:v4.17.0", images.migrate),
        }
        settings = {}
        for key, (path, source) in refs.items():
            pushed = f"127.0.0.1:{self.push_port}/{path}"
            self.engine.run(["tag", source, pushed])
            self.engine.run(["push", "-q", pushed], timeout=300)
            # Every image by the digest this registry gave it: the program ships a digest in
            # settings as it is (components/images/digest.py), as it would a resolved tag.
            digest = self.engine.run(
                ["image", "inspect", "--format", "{{index .RepoDigests 0}}", pushed]
            ).stdout.strip()
            settings[key] = f"{REGISTRY_HOST}/{path}@" + digest.split("@")[1]
            self.engine.run(["image", "rm", pushed], check=False)
        return settings


def remote_commands(run: ProgramRun, keep: Callable[[Registration], bool]) -> list[Registration]:
    """The remote commands `keep` selects, ordered by what each declares it depends on (the
    order `pulumi up` runs them in)."""
    mine = [r for r in run.of_type(COMMAND) if keep(r)]
    ordered: list[Registration] = []
    while mine:
        ready = [r for r in mine if not set(r.depends_on) & {m.urn for m in mine}]
        assert ready, "the remote commands depend on each other in a cycle"
        ordered += ready
        mine = [r for r in mine if r not in ready]
    return ordered


def env_values(stdin: str, path: str) -> dict[str, str]:
    """KEY=VALUE pairs of file `path` in a RemoteFiles bundle (the installer's stdin)."""
    files: Mapping[str, str] = {f["path"]: f["content"] for f in json.loads(stdin)["files"]}
    values = {}
    for line in files[path].splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def command_text(reg: Any) -> tuple[str, str | None]:
    """A remote command's command line and stdin, as pulumi-command sends them."""
    return plain(reg.inputs["create"]), plain(reg.inputs.get("stdin"))
