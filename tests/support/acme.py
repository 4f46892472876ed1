"""A Let's Encrypt stand-in on loopback: Pebble (Let's Encrypt's ACME test server) with
pebble-challtestsrv as its DNS, which answers 127.0.0.1 for every name.

Pebble really validates HTTP-01: it fetches http://<name>:<http_port>/.well-known/acme-challenge/
<token> from 127.0.0.1, so a certificate is issued only when nginx serves certbot's webroot for
that name. `certbot_env` points a real certbot at it (its directory URL via cli.ini, its private
CA via REQUESTS_CA_BUNDLE). Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from .procs import (
    ManagedService,
    ServiceError,
    free_port,
    require_binary,
    safe_rmtree,
    stop_pid,
    wait_for_port,
)
from .tls import make_tls_files


class AcmeServer(ManagedService):
    """Pebble + its mock DNS, validating HTTP-01 against `http_port` on 127.0.0.1."""

    service = "pebble"

    def __init__(self, http_port: int) -> None:
        self.http_port = http_port
        self.dir = Path(tempfile.mkdtemp(prefix="clipper-acme-"))
        self.port = 0
        self.management_port = 0
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    @property
    def ca_cert(self) -> Path:
        """The CA of Pebble's own HTTPS listener (not of the certificates it issues)."""
        return self.dir / "tls" / "ca.crt"

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",  # validate at once, not after a random pause
            "PEBBLE_WFE_NONCEREJECT": "0",  # no random badNonce rejections
        }
        with (self.dir / log).open("ab") as out:
            proc = subprocess.Popen(
                args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env,
                start_new_session=True,
            )  # fmt: skip
        self._procs.append(proc)
        return proc

    def start(self) -> None:
        tls = make_tls_files(self.dir / "tls")
        dns_port, dns_management = free_port(), free_port()
        self._spawn(
            [
                require_binary(self.service, "pebble-challtestsrv"),
                "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                "-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", "",
                "-tlsalpn01", "", "-management", f"127.0.0.1:{dns_management}",
            ],
            "challtestsrv.log",
        )  # fmt: skip
        # Its DNS serves TCP as well as UDP: once both are up, Pebble can resolve names.
        for port in (dns_management, dns_port):
            if not wait_for_port("127.0.0.1", port, 15):
                raise ServiceError(
                    self.service, "start DNS", "not listening", self.dir / "challtestsrv.log"
                )
        self.port, self.management_port = free_port(), free_port()
        config = {
            "pebble": {
                "listenAddress": f"127.0.0.1:{self.port}",
                "managementListenAddress": f"127.0.0.1:{self.management_port}",
                "certificate": str(tls.cert),
                "privateKey": str(tls.key),
                "httpPort": self.http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": False,
            }
        }
        (self.dir / "pebble.json").write_text(json.dumps(config))
        self._spawn(
            [
                require_binary(self.service, "pebble"),
                "-config", str(self.dir / "pebble.json"),
                "-dnsserver", f"127.0.0.1:{dns_port}",
            ],
            "pebble.log",
        )  # fmt: skip
        if not wait_for_port("127.0.0.1", self.port, 15):
            raise ServiceError(self.service, "start", "not listening", self.dir / "pebble.log")

    def issuing_root(self) -> str:
        """The PEM root that Pebble's issued certificates chain to (new for each Pebble run)."""
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return str(response.read().decode())

    def certbot_env(self, config_home: Path) -> dict[str, str]:
        """Environment for a real certbot to use this server (put it on top of os.environ)."""
        ini = config_home / "letsencrypt" / "cli.ini"
        ini.parent.mkdir(parents=True, exist_ok=True)
        ini.write_text(f"server = {self.directory_url}\n")
        return {"XDG_CONFIG_HOME": str(config_home), "REQUESTS_CA_BUNDLE": str(self.ca_cert)}

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                stop_pid(proc.pid, timeout=5)
            proc.wait(timeout=5)
        self._procs.clear()
        safe_rmtree(self.dir)
