"""Let's Encrypt on a single host, for real: the rendered `clipper-tls-issue` script and renewal
unit run a real certbot against Pebble (Let's Encrypt's ACME test server, tests/support/acme.py),
which validates HTTP-01 through the live nginx of the rendered site, and certbot's deploy hook
reloads that nginx.

What stands in for the host, on PATH: `curl` resolves the site's names to the test nginx (or to
a closed address: "DNS does not point here yet"), `nginx` runs the test nginx's config, and
`systemctl reload nginx.service` signals the test nginx's master.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from components.host.layout import under_root
from components.renderers.tls import (
    EX_TEMPFAIL,
    ISSUE_SCRIPT,
    PLACEHOLDER_MARKER,
    RELOAD_HOOK,
    RENEW_UNIT,
    certificate_paths,
)
from tests.support import NginxFactory, wait_until
from tests.support.acme import AcmeServer
from tests.support.edge import EdgeSite, stack_settings

PEBBLE_ISSUER = "Pebble Intermediate CA"


@pytest.fixture
def site(nginx_factory: NginxFactory) -> Iterator[EdgeSite]:
    nginx = nginx_factory()
    edge = EdgeSite(settings=stack_settings("staging"), root=nginx.prefix, nginx=nginx)
    edge.start()
    yield edge
    edge.stop()


def host_env(site: EdgeSite, bin_dir: Path, reachable: set[str]) -> dict[str, str]:
    """PATH shims for curl, nginx and systemctl (see the module docstring)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    port, domain = site.binding.http_port, site.settings.domain
    resolve = " ".join(
        # A name that does not point here resolves to an address nothing listens on.
        f"--resolve {name}:{port}:{'127.0.0.1' if name in reachable else '127.0.0.9'}"
        for name in (domain, f"www.{domain}")
    )
    nginx = site.nginx
    shims = {
        "curl": f'exec /usr/bin/curl --noproxy "*" {resolve} "$@"',
        "nginx": (
            f'exec /usr/sbin/nginx -p "{nginx.prefix}/" -e "{nginx.error_log}"'
            f' -c "{nginx.conf}" "$@"'
        ),
        "systemctl": (
            f'[ "$*" = "reload nginx.service" ] && exec kill -HUP {nginx.pid}\n'
            'echo "unexpected: systemctl $*" >&2; exit 1'
        ),
    }
    for name, body in shims.items():
        shim = bin_dir / name
        shim.write_text(f"#!/bin/sh\n{body}\n")
        shim.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env={**os.environ, **env}, capture_output=True, text=True, timeout=180, check=False
    )


def issue(site: EdgeSite, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["bash", under_root(ISSUE_SCRIPT, str(site.root))], env)


def served_certificate(site: EdgeSite) -> str:
    """`openssl x509 -text` of the certificate nginx serves for the domain right now."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", site.binding.https_port), 5) as raw,
        context.wrap_socket(raw, server_hostname=site.settings.domain) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der
    return subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-noout", "-text"],
        input=der,
        capture_output=True,
        check=True,
    ).stdout.decode()


def verified_handshake(site: EdgeSite, root_pem: str) -> str:
    """A browser's view: the served chain verifies to the CA's root for the site's name."""
    context = ssl.create_default_context(cadata=root_pem)
    with (
        socket.create_connection(("127.0.0.1", site.binding.https_port), 5) as raw,
        context.wrap_socket(raw, server_hostname=site.settings.domain) as tls,
    ):
        return str(tls.version())


def wait_for_served(site: EdgeSite, check: Callable[[str], bool], in_a_row: int = 5) -> str:
    """nginx switches certificates on reload, as its new workers take over; until the old
    workers have closed their listeners a connection may still reach one of them. So wait
    until `in_a_row` handshakes in a row serve a certificate that passes `check`, and return
    that certificate (one passing handshake then a stale one made this test flaky)."""
    seen: list[str] = []

    def settled() -> bool:
        text = served_certificate(site)
        seen[:] = [*seen, text] if check(text) and (not seen or seen[-1] == text) else []
        return len(seen) >= in_a_row

    assert wait_until(settled, timeout=10, interval=0.05), "nginx never settled on it"
    return seen[-1]


def test_the_certificate_is_issued_once_dns_points_here_and_renewed_by_the_timer(
    site: EdgeSite, tmp_path: Path
) -> None:
    domain = site.settings.domain
    cert = certificate_paths(domain, str(site.root))
    assert PEBBLE_ISSUER not in served_certificate(site)  # the self-signed placeholder
    with AcmeServer(http_port=site.binding.http_port) as acme:
        env = {
            **host_env(site, tmp_path / "bin", {domain, f"www.{domain}"}),
            **acme.certbot_env(tmp_path / "config"),
        }
        first = issue(site, env)
        assert first.returncode == 0, first.stderr

        # certbot's own lineage replaced the placeholder, and its deploy hook reloaded nginx.
        hook = under_root(RELOAD_HOOK, str(site.root))
        assert f"renew_hook = {hook}" in Path(cert.renewal_conf).read_text()  # for any renewer
        assert not (Path(cert.live_dir) / PLACEHOLDER_MARKER).exists()
        assert not (Path(cert.live_dir).parent.parent / "clipper-placeholder-parked").exists()
        issued = wait_for_served(site, lambda text: PEBBLE_ISSUER in text)
        assert f"DNS:{domain}" in issued and f"DNS:www.{domain}" in issued
        assert verified_handshake(site, acme.issuing_root()) == "TLSv1.3"

        again = issue(site, env)
        assert again.returncode == 0
        assert "exists" in again.stderr
        assert served_certificate(site) == issued

        # The renewal timer's service, forced (nothing is due for months), reloads nginx too.
        unit = (site.root / f"etc/systemd/system/{RENEW_UNIT}.service").read_text()
        command = unit.split("ExecStart=", 1)[1].split("\nPrivateTmp", 1)[0]
        args = shlex.split(command.replace("\\\n", " "))
        assert args[:2] == ["/usr/bin/certbot", "renew"]
        renewed = run([shutil.which("certbot") or "certbot", *args[1:], "--force-renewal"], env)
        assert renewed.returncode == 0, renewed.stderr
        assert wait_for_served(site, lambda text: text != issued) != issued
        assert PEBBLE_ISSUER in served_certificate(site)


def test_without_dns_pointing_here_lets_encrypt_is_not_asked(
    site: EdgeSite, tmp_path: Path
) -> None:
    env = host_env(site, tmp_path / "bin", reachable=set())
    proc = issue(site, env)
    assert proc.returncode == EX_TEMPFAIL
    assert "does not reach this host yet" in proc.stderr
    le_dir = Path(certificate_paths(site.settings.domain, str(site.root)).live_dir).parent.parent
    assert not (le_dir / "accounts").exists()  # certbot never ran
    assert (
        Path(certificate_paths(site.settings.domain, str(site.root)).live_dir) / PLACEHOLDER_MARKER
    ).exists()
    challenges = site.root / "var/www/acme/.well-known/acme-challenge"
    assert list(challenges.iterdir()) == []  # the probe cleaned up after itself


def test_without_www_pointing_here_the_certificate_covers_the_apex(
    site: EdgeSite, tmp_path: Path
) -> None:
    domain = site.settings.domain
    with AcmeServer(http_port=site.binding.http_port) as acme:
        env = {
            **host_env(site, tmp_path / "bin", {domain}),
            **acme.certbot_env(tmp_path / "config"),
        }
        proc = issue(site, env)
        assert proc.returncode == 0, proc.stderr
    issued = wait_for_served(site, lambda text: PEBBLE_ISSUER in text)
    assert f"DNS:{domain}" in issued
    assert f"www.{domain}" not in issued


def test_a_failed_issuance_puts_the_placeholder_back(site: EdgeSite, tmp_path: Path) -> None:
    domain = site.settings.domain
    live = Path(certificate_paths(domain, str(site.root)).live_dir)
    placeholder = (live / "fullchain.pem").read_bytes()
    # The probe reaches nginx, but the CA validates on a port where nothing listens.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    with closed, AcmeServer(http_port=closed.getsockname()[1]) as acme:
        env = {
            **host_env(site, tmp_path / "bin", {domain, f"www.{domain}"}),
            **acme.certbot_env(tmp_path / "config"),
        }
        proc = issue(site, env)
    assert proc.returncode == 1
    assert "certbot failed" in proc.stderr
    assert (live / "fullchain.pem").read_bytes() == placeholder
    assert (live / PLACEHOLDER_MARKER).exists()
    site.nginx.test()  # a reload or reboot still finds a certificate
    assert site.request("/").status == 200


def test_a_crash_while_the_placeholder_was_parked_is_repaired_by_the_next_run(
    site: EdgeSite, tmp_path: Path
) -> None:
    live = Path(certificate_paths(site.settings.domain, str(site.root)).live_dir)
    parked = live.parent.parent / "clipper-placeholder-parked"
    live.rename(parked)  # as if the host died while certbot was running
    proc = issue(site, host_env(site, tmp_path / "bin", reachable=set()))
    assert proc.returncode == EX_TEMPFAIL
    assert "restored the parked placeholder" in proc.stderr
    assert (live / PLACEHOLDER_MARKER).exists()
    assert not parked.exists()
    site.nginx.test()
