"""The rendered edge under real nginx on loopback, in front of stand-in blue/green upstreams.

Staging's site (edge_entry reserved-ip: nginx ends TLS with the self-signed placeholder the
rendered script makes) and production's (edge_entry load-balancer: plain http with the PROXY
protocol, as DigitalOcean's load balancer sends it) are rendered by the same functions the hosts
get, with only their root dir and ports moved (tests/support/edge.py).
"""

from __future__ import annotations

import gzip
import math
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from typing import Any

import pytest

from components.renderers.nginx import FRONTEND_CACHE_DEFAULT, FRONTEND_CACHE_IMMUTABLE
from components.settings import Settings
from tests.support import NginxFactory, ServiceError
from tests.support.edge import (
    EdgeSite,
    Reply,
    proxy_protocol_line,
    read_ws_frame,
    send_ws_frame,
    stack_settings,
    write_atomically,
)

HASHED_JS = "/assets/index-B7xQ2kLm.js"

SiteMaker = Callable[..., EdgeSite]


@pytest.fixture
def make_site(nginx_factory: NginxFactory) -> Iterator[SiteMaker]:
    """Start an EdgeSite for a stack (with optional setting overrides); all stop afterwards."""
    sites: list[EdgeSite] = []

    def make(stack: str = "staging", loopback_vpc: bool = False, **overrides: Any) -> EdgeSite:
        nginx = nginx_factory()
        settings = stack_settings(stack, **overrides)
        if loopback_vpc:  # stand-in: loopback plays the VPC (settings refuse it: not RFC 1918)
            settings = settings.model_copy(update={"vpc_ip_range": "127.0.0.0/24"})
        site = EdgeSite(settings=settings, root=nginx.prefix, nginx=nginx)
        sites.append(site)
        site.start()
        return site

    yield make
    for site in sites:
        site.stop()


@pytest.fixture
def staging(make_site: SiteMaker) -> EdgeSite:
    return make_site("staging")


def expected_security_headers(settings: Settings) -> dict[str, str]:
    csp_name = (
        "Content-Security-Policy"
        if settings.csp_mode == "enforce"
        else "Content-Security-Policy-Report-Only"
    )
    hsts = f"max-age={settings.hsts_max_age_seconds}; includeSubDomains; preload"
    return {
        "Strict-Transport-Security": hsts,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "Cross-Origin-Opener-Policy": "same-origin-allow-popups",
        "Cross-Origin-Resource-Policy": "same-site",
        csp_name: "",  # checked by its directives below
        "Permissions-Policy": "",
    }


def assert_security_headers(reply: Reply, settings: Settings) -> None:
    for name, value in expected_security_headers(settings).items():
        got = reply.all(name)
        assert len(got) == 1, f"{name}: expected exactly one, got {got}"
        if value:
            assert got[0] == value, name
    csp_name = "Content-Security-Policy" + (
        "" if settings.csp_mode == "enforce" else "-Report-Only"
    )
    csp = reply.header(csp_name) or ""
    connect_src = re.search(r"connect-src ([^;]+)", csp)
    assert connect_src, csp
    assert "https://api.twitch.tv" in connect_src.group(1).split()
    assert f"wss://{settings.domain}" in connect_src.group(1).split()
    assert "frame-ancestors 'none'" in csp
    assert "camera=()" in (reply.header("Permissions-Policy") or "")


# ------------------------------------------------------------------------ http, https, TLS


def test_plain_http_redirects_to_https_keeping_path_and_query(staging: EdgeSite) -> None:
    reply = staging.request("/clips/abc123?sort=top", tls=False)
    assert reply.status == 301
    port = staging.binding.https_port
    assert (
        reply.header("Location")
        == f"https://{staging.settings.domain}:{port}/clips/abc123?sort=top"
    )


def test_the_acme_challenge_is_served_over_plain_http_from_the_webroot(staging: EdgeSite) -> None:
    challenge = staging.root / "var/www/acme/.well-known/acme-challenge/tok-123"
    challenge.write_text("tok-123.thumbprint")
    reply = staging.request("/.well-known/acme-challenge/tok-123", tls=False)
    assert (reply.status, reply.body) == (200, b"tok-123.thumbprint")
    assert staging.request("/.well-known/acme-challenge/missing", tls=False).status == 404


def test_www_is_redirected_to_the_apex_domain(staging: EdgeSite) -> None:
    domain, port = staging.settings.domain, staging.binding.https_port
    # The placeholder (like the issued certificate) covers www too.
    reply = staging.request("/clips/abc?x=1", host=f"www.{domain}")
    assert reply.status == 301
    assert reply.header("Location") == f"https://{domain}:{port}/clips/abc?x=1"
    assert_security_headers(reply, staging.settings)


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/clips/abc123",
        HASHED_JS,
        "/api/v1/clips",
        "/api/v1/clips/missing?status=404",
        "/api/v1/webhooks/stripe",
        "/sitemap.xml",
        "/health/ready?status=503",
    ],
)
def test_each_security_header_is_sent_once_on_every_route(staging: EdgeSite, path: str) -> None:
    reply = staging.request(path)
    assert_security_headers(reply, staging.settings)


def test_csp_is_enforced_when_the_setting_says_so(make_site: SiteMaker) -> None:
    site = make_site(
        "staging", cspMode="enforce", cspConnectSrcExtra=["https://o1.ingest.sentry.io"]
    )
    reply = site.request("/")
    assert reply.header("Content-Security-Policy-Report-Only") is None
    csp = reply.header("Content-Security-Policy") or ""
    assert "https://o1.ingest.sentry.io" in csp
    assert_security_headers(reply, site.settings)


def test_http2_is_negotiated_over_tls(staging: EdgeSite) -> None:
    domain, port = staging.settings.domain, staging.binding.https_port
    proc = subprocess.run(
        [
            "curl", "--silent", "--show-error", "--http2", "--cacert", str(staging.certificate),
            "--resolve", f"{domain}:{port}:127.0.0.1", "--output", "/dev/null",
            "--write-out", "%{http_version} %{http_code}", f"https://{domain}:{port}/",
        ],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert proc.stdout == "2 200"


def _handshake(
    site: EdgeSite, version: ssl.TLSVersion, ciphers: str = "DEFAULT:@SECLEVEL=0"
) -> str:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(str(site.certificate))
    context.minimum_version = context.maximum_version = version
    context.set_ciphers(ciphers)
    with (
        socket.create_connection(("127.0.0.1", site.binding.https_port), 5) as raw,
        context.wrap_socket(raw, server_hostname=site.settings.domain) as tls,
    ):
        return str(tls.version())


def test_only_tls_1_2_and_1_3_are_accepted(staging: EdgeSite) -> None:
    # Ubuntu's http-level ssl_protocols (UBUNTU_HTTP_DEFAULTS) still allows 1.0/1.1: the
    # server's own setting must win. The server (not our client) must be the one refusing.
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION"):
            _handshake(staging, old)
    assert _handshake(staging, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert _handshake(staging, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


def test_tls_1_2_refuses_ciphers_without_forward_secrecy_or_aead(staging: EdgeSite) -> None:
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
        _handshake(staging, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
    assert _handshake(staging, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256") == "TLSv1.2"


# ------------------------------------------------------------------------ routing


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("GET", "/api/v1/clips?page=2", "backend"),
        ("GET", "/api/v1/health", "backend"),
        ("GET", "/health", "backend"),
        ("GET", "/health/ready", "backend"),
        ("GET", "/health/live", "backend"),
        ("GET", "/sitemap.xml", "backend"),
        ("GET", "/robots.txt", "backend"),
        ("GET", "/clips/streamer/xqc", "backend"),
        ("GET", "/clips/game/509658", "backend"),
        ("GET", "/clips/best/week", "backend"),
        ("GET", "/clips/best", "backend"),  # the backend's /clips/best/*path, not the SPA
        ("POST", "/api/v1/webhooks/stripe", "backend"),
        ("POST", "/api/v1/webhooks/sendgrid", "backend"),
        ("GET", "/api/v1/auth/twitch/callback?code=abc&state=xyz", "backend"),
        ("GET", "/", "frontend"),
        ("GET", "/index.html", "frontend"),
        ("GET", "/health.html", "frontend"),
        ("GET", "/clips/abc123", "frontend"),
        ("GET", "/streamer/xqc", "frontend"),
        ("GET", HASHED_JS, "frontend"),
    ],
)
def test_routes_reach_the_backend_or_the_frontend_of_the_active_colour(
    staging: EdgeSite, method: str, path: str, role: str
) -> None:
    reply = staging.request(path, method=method, body=b"{}" if method == "POST" else None)
    assert reply.status == 200
    seen = reply.json()
    assert (seen["role"], seen["color"]) == (role, "blue")
    assert seen["path"] == path.split("?", maxsplit=1)[0]


@pytest.mark.parametrize(
    "path", ["/health/stats", "/health/cache", "/health/cache/check", "/health/webhooks"]
)
def test_the_backends_internal_health_routes_are_not_served_to_the_internet(
    staging: EdgeSite, path: str
) -> None:
    reply = staging.request(path)
    assert reply.status == 404
    assert b'"role"' not in reply.body  # answered by nginx: neither upstream saw it


@pytest.mark.parametrize("path", ["/api/v1/chat/channels/42/ws", "/api/v1/watch-parties/p-7/ws"])
def test_websocket_upgrades_are_passed_through_to_the_backend(staging: EdgeSite, path: str) -> None:
    with staging.websocket(path) as (sock, head):
        assert head.startswith(b"HTTP/1.1 101"), head
        send_ws_frame(sock, b"hello", mask=True)
        assert read_ws_frame(sock) == "blue:hello"


def test_a_client_supplied_forwarded_for_never_reaches_the_backend(staging: EdgeSite) -> None:
    spoof = {
        "X-Forwarded-For": "6.6.6.6",
        "X-Real-IP": "6.6.6.6",
        "Forwarded": "for=6.6.6.6",
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Host": "evil.example.net",
    }
    for path in ("/api/v1/clips", "/", "/api/v1/webhooks/stripe"):
        headers = staging.request(path, headers=spoof).json()["headers"]
        assert headers["x-forwarded-for"] == "127.0.0.1"
        assert headers["x-real-ip"] == "127.0.0.1"
        assert "forwarded" not in headers
        assert headers["x-forwarded-proto"] == "https"
        assert headers["x-forwarded-host"] == staging.settings.domain


# ------------------------------------------------------------------------ compression, caching


def test_text_responses_are_gzipped_and_images_are_not(staging: EdgeSite) -> None:
    accept = {"Accept-Encoding": "gzip"}
    text = staging.request("/api/v1/clips?size=8000", headers=accept)
    assert text.header("Content-Encoding") == "gzip"
    assert "Accept-Encoding" in (text.header("Vary") or "")
    assert b"clipper clipper" in gzip.decompress(text.body)
    assert len(text.body) < 2000

    script = staging.request(HASHED_JS + "?size=8000", headers=accept)
    assert script.header("Content-Encoding") == "gzip"

    image = staging.request("/assets/logo-Qm9x7Lp2.png?size=8000", headers=accept)
    assert image.status == 200
    assert image.header("Content-Encoding") is None


def test_hashed_assets_are_cached_for_a_year_and_pages_are_revalidated(staging: EdgeSite) -> None:
    asset = staging.request(HASHED_JS)
    assert asset.all("Cache-Control") == [FRONTEND_CACHE_IMMUTABLE]
    assert asset.all("Expires") == []  # the frontend image's own Expires is dropped
    for page in ("/", "/index.html", "/clips/abc123", "/assets/unhashed.js"):
        assert staging.request(page).all("Cache-Control") == [FRONTEND_CACHE_DEFAULT], page
    # The backend's own caching headers pass through untouched.
    assert staging.request("/api/v1/clips").all("Cache-Control") == ["private, max-age=5"]


# ------------------------------------------------------------------------ limits


def _burst(site: EdgeSite, path: str, count: int, method: str = "GET") -> tuple[list[int], float]:
    """`count` requests as fast as one keepalive connection goes: statuses, seconds taken."""
    conn = site.connection()
    started = time.monotonic()
    try:
        statuses = [site.request(path, method=method, conn=conn).status for _ in range(count)]
    finally:
        conn.close()
    return statuses, time.monotonic() - started


def _assert_limited(statuses: list[int], seconds: float, rate: int, burst: int) -> None:
    """Exactly what limit_req with `nodelay` allows: 1 + burst at once, then `rate` per second
    refilled while the burst ran; every other request is answered 429."""
    allowed = statuses.count(200)
    assert burst + 1 <= allowed <= burst + 1 + math.ceil(rate * seconds) + 1, (allowed, seconds)
    assert statuses.count(429) == len(statuses) - allowed > 0


def test_api_requests_past_the_rate_limit_are_answered_429(staging: EdgeSite) -> None:
    settings = staging.settings
    statuses, seconds = _burst(staging, "/api/v1/clips", settings.api_rate_burst + 30)
    _assert_limited(statuses, seconds, settings.api_rate_limit_rps, settings.api_rate_burst)
    refused = staging.request("/api/v1/clips")
    assert refused.status == 429
    assert_security_headers(refused, settings)


def test_pages_past_the_general_rate_limit_are_answered_429(staging: EdgeSite) -> None:
    settings = staging.settings
    statuses, seconds = _burst(staging, "/clips/abc", settings.general_rate_burst + 60)
    _assert_limited(statuses, seconds, settings.general_rate_limit_rps, settings.general_rate_burst)


def test_webhooks_and_the_oauth_callback_are_not_throttled(staging: EdgeSite) -> None:
    # Use up this client's API allowance first.
    assert 429 in _burst(staging, "/api/v1/clips", staging.settings.api_rate_burst + 30)[0]
    for method, path in (
        ("POST", "/api/v1/webhooks/stripe"),
        ("POST", "/api/v1/webhooks/sendgrid"),
        ("GET", "/api/v1/auth/twitch/callback?code=abc"),
    ):
        statuses = set(_burst(staging, path, 60, method)[0])
        assert statuses == {200}, (path, statuses)


def test_bodies_over_the_configured_limit_are_refused_with_413(staging: EdgeSite) -> None:
    limit = staging.settings.client_max_body_mb * 1024 * 1024
    accepted = staging.request("/api/v1/uploads", method="POST", body=b"x" * (limit - 1024))
    assert accepted.status == 200
    assert accepted.json()["body_bytes"] == limit - 1024
    # Refused from the Content-Length alone, before any of the body is read.
    with closing(staging.connection()) as conn:
        conn.putrequest("POST", "/api/v1/uploads")
        conn.putheader("Content-Length", str(limit + 1))
        conn.endheaders()
        assert conn.getresponse().status == 413


# ------------------------------------------------------------------------ request id, logs


def test_the_request_id_reaches_the_backend_the_response_and_the_json_log(
    staging: EdgeSite,
) -> None:
    reply = staging.request("/api/v1/auth/twitch/callback?code=SECRET-CODE&state=s")
    request_id = reply.header("X-Request-ID") or ""
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert reply.json()["headers"]["x-request-id"] == request_id

    entry = staging.log_entry(request_id=request_id)
    assert entry["path"] == "/api/v1/auth/twitch/callback"
    assert (entry["status"], entry["client"], entry["route"]) == (200, "127.0.0.1", "backend")
    assert entry["tls"] in ("TLSv1.2", "TLSv1.3")
    assert "SECRET-CODE" not in staging.access_log.read_text()  # no query strings in logs


def test_a_sane_incoming_request_id_is_kept_and_a_strange_one_replaced(staging: EdgeSite) -> None:
    kept = staging.request("/api/v1/clips", headers={"X-Request-ID": "trace-0123456789abcdef"})
    assert kept.header("X-Request-ID") == "trace-0123456789abcdef"
    assert kept.json()["headers"]["x-request-id"] == "trace-0123456789abcdef"
    strange = staging.request("/api/v1/clips", headers={"X-Request-ID": '"};drop'})
    assert re.fullmatch(r"[0-9a-f]{32}", strange.header("X-Request-ID") or "")


# ------------------------------------------------------------------------ colour switch


def test_switching_the_active_colour_on_reload_fails_no_request(make_site: SiteMaker) -> None:
    # Limits out of the way: this is about the reload, with several busy clients.
    site = make_site(
        "staging",
        apiRateLimitRps="10000",
        apiRateBurst="10000",
        generalRateLimitRps="10000",
        generalRateBurst="10000",
    )
    results: list[tuple[float, float, str, int | str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    paths = ["/api/v1/slow?delay_ms=400", "/", "/api/v1/clips", "/clips/streamer/x"]

    def client(index: int) -> None:
        n = 0
        while not stop.is_set():
            path = paths[(index + n) % len(paths)]
            n += 1
            started = time.monotonic()
            try:
                reply = site.request(path)
                outcome: int | str = reply.status
                color = reply.json()["color"] if reply.status == 200 else "-"
            except Exception as exc:  # every failure is counted, not raised here
                outcome, color = f"{type(exc).__name__}: {exc}", "-"
            with lock:
                results.append((started, time.monotonic(), color, outcome))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    switch_started = time.monotonic()
    site.switch_to("green")
    switched = time.monotonic()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)

    failures = [r for r in results if r[3] != 200]
    assert not failures, failures[:5]
    in_flight = [r for r in results if r[0] < switch_started < r[1]]
    assert in_flight, "no request was in flight during the reload"
    assert {r[2] for r in in_flight} == {"blue"}  # finished by the old colour
    after = [r for r in results if r[0] > switched]
    assert after and {r[2] for r in after} == {"green"}
    assert len(results) > 100


def test_a_broken_include_is_rejected_on_reload_and_the_old_colour_keeps_serving(
    staging: EdgeSite,
) -> None:
    write_atomically(staging.include_path, "upstream clipper_backend {\n")
    with pytest.raises(ServiceError, match="reload"):
        staging.nginx.reload(timeout=5)
    assert staging.request("/api/v1/clips").json()["color"] == "blue"
    staging.switch_to("green")
    assert staging.request("/api/v1/clips").json()["color"] == "green"


# ------------------------------------------------------------------------ behind the load balancer


def test_behind_the_load_balancer_the_proxy_protocol_address_is_the_client(
    make_site: SiteMaker,
) -> None:
    # The "VPC" is loopback here, so nginx believes the PROXY header from the test client.
    site = make_site("production", loopback_vpc=True)
    reply = site.request(
        "/api/v1/clips",
        proxy_line=proxy_protocol_line("198.51.100.23"),
        headers={"X-Forwarded-For": "6.6.6.6"},
    )
    assert reply.status == 200
    seen = reply.json()["headers"]
    assert seen["x-forwarded-for"] == "198.51.100.23"
    assert seen["x-real-ip"] == "198.51.100.23"
    assert seen["x-forwarded-proto"] == "https"
    assert_security_headers(reply, site.settings)  # HSTS too: the load balancer serves TLS
    with site.websocket("/api/v1/watch-parties/p-7/ws") as (sock, head):
        assert head.startswith(b"HTTP/1.1 101"), head
        send_ws_frame(sock, b"hi", mask=True)
        assert read_ws_frame(sock) == "blue:hi"
    assert site.log_entry(path="/api/v1/clips")["client"] == "198.51.100.23"
    www = site.request("/clips/abc", host=f"www.{site.settings.domain}")
    assert (www.status, www.header("Location")) == (
        301,
        f"https://{site.settings.domain}/clips/abc",
    )


def test_behind_the_load_balancer_limits_apply_per_proxied_client(make_site: SiteMaker) -> None:
    site = make_site("production", loopback_vpc=True)
    with closing(
        site.connection(tls=False, proxy_line=proxy_protocol_line("198.51.100.23"))
    ) as conn:
        count = site.settings.api_rate_burst + 30
        statuses = [site.request("/api/v1/clips", conn=conn).status for _ in range(count)]
    assert 429 in statuses
    other = site.request("/api/v1/clips", proxy_line=proxy_protocol_line("203.0.113.9"))
    assert other.status == 200


def test_a_proxy_protocol_header_from_outside_the_vpc_is_not_believed(make_site: SiteMaker) -> None:
    site = make_site("production")  # VPC 10.130.0.0/20: loopback is outside it
    reply = site.request("/api/v1/clips", proxy_line=proxy_protocol_line("198.51.100.23"))
    assert reply.status == 200
    assert reply.json()["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_behind_the_load_balancer_a_request_without_proxy_protocol_is_refused(
    make_site: SiteMaker,
) -> None:
    site = make_site("production", loopback_vpc=True)
    with socket.create_connection(("127.0.0.1", site.binding.http_port), 5) as sock:
        sock.sendall(f"GET /api/v1/clips HTTP/1.1\r\nHost: {site.settings.domain}\r\n\r\n".encode())
        answer = sock.recv(65536)
    assert b"HTTP/1.1 200" not in answer
