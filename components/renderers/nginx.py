"""The nginx site of an app host: TLS (or the load balancer's PROXY protocol), routing to the
active colour, rate limits, security headers, caching, request ids and JSON access logs.

The site file lives in conf.d, so it is read in nginx's `http` context after Ubuntu's stock
`nginx.conf` has set `gzip on`, `ssl_protocols`, `access_log` and friends at that level: every
such directive here is set per server (a second one at http level would be a duplicate).

Two entries, chosen by `settings.edge_entry`:
- reserved-ip: nginx ends TLS. :80 redirects to https except the ACME challenge path (certbot's
  webroot); :443 serves HTTP/2 over TLS 1.2/1.3 with the certificate from tls.py.
- load-balancer: the DigitalOcean load balancer ends TLS and speaks HTTP to :80 with the PROXY
  protocol; the client address in that header is believed only from the VPC range.

The upstreams `clipper_backend`/`clipper_frontend` come from the active-colour include
(nginx_upstreams.py), which a deploy rewrites atomically before `nginx -s reload`.

nginx's `add_header` and `proxy_set_header` are inherited only by levels that define none of
their own, so headers are added at server level only (no location adds any) and every proxied
location includes the one proxy snippet (render_proxy_snippet) before its own lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.host.layout import (
    ACME_WEBROOT,
    NGINX_ACCESS_LOG,
    NGINX_ACTIVE_UPSTREAMS_FILE,
    under_root,
)
from components.renderers.nginx_upstreams import BACKEND_UPSTREAM, FRONTEND_UPSTREAM
from components.renderers.tls import certificate_paths
from components.settings import Settings

# Shared proxy settings, included by every proxied location (not in conf.d: not http-level).
NGINX_PROXY_SNIPPET = "/etc/nginx/clipper/proxy.conf"


# Mozilla "intermediate" TLS 1.2 suites (forward secret AEAD only); TLS 1.3 suites are fixed.
TLS_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

GZIP_TYPES = (
    "text/plain text/css text/xml text/javascript application/javascript application/json"
    " application/xml application/rss+xml application/atom+xml application/manifest+json"
    " application/wasm image/svg+xml font/ttf font/otf"
)

# The app's webhooks and OAuth callback: called by Stripe, SendGrid and Twitch's redirect, not
# by one browser, so the per-client limits must not throttle them.
UNTHROTTLED_API_PATHS = (
    "/api/v1/webhooks/stripe",
    "/api/v1/webhooks/sendgrid",
    "/api/v1/auth/twitch/callback",
)
# The backend's WebSocket endpoints (chat and watch parties): upgrade and long read timeouts.
WEBSOCKET_LOCATION = r"^/api/v1/(?:chat/channels|watch-parties)/[^/]+/ws$"
# Served by the backend although outside /api/ (clipper-app.md, "Routing the edge must do").
# `/clips/best` itself too: the backend's `/clips/best/*path` route answers it (a redirect to
# `/clips/best/`), where the SPA has no such page.
BACKEND_EXACT_PATHS = (
    "/health", "/health/ready", "/health/live", "/sitemap.xml", "/robots.txt", "/clips/best",
)  # fmt: skip
BACKEND_PREFIXES = ("/clips/streamer/", "/clips/game/", "/clips/best/")
# The backend's other /health/* routes (stats, cache, cache/check, webhooks) are unauthenticated
# internals: the edge answers 404 for all of /health/ but the probes above, so they stay off the
# internet. On a host they are still there: curl 127.0.0.1:<colour port>/health/stats.
HIDDEN_PREFIX = "/health/"

# Origins the real frontend loads beyond its own (clipper-app.md, last section): Google Fonts
# (index.css @import), the Twitch embed script and the frames it and the clip/chat embeds open.
TWITCH_EMBED_SCRIPT = "https://embed.twitch.tv"
GOOGLE_FONTS_CSS = "https://fonts.googleapis.com"
GOOGLE_FONTS_FILES = "https://fonts.gstatic.com"
TWITCH_API = "https://api.twitch.tv"
TWITCH_FRAMES = (
    "https://embed.twitch.tv",
    "https://player.twitch.tv",
    "https://clips.twitch.tv",
    "https://www.twitch.tv",
)

# Headers the edge owns: an upstream's copy is dropped so a browser never sees two (the
# frontend image sends X-Frame-Options SAMEORIGIN, the backend sends HSTS in release mode).
EDGE_OWNED_HEADERS = (
    "Strict-Transport-Security",
    "Content-Security-Policy",
    "Content-Security-Policy-Report-Only",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Referrer-Policy",
    "Permissions-Policy",
    "Cross-Origin-Opener-Policy",
    "Cross-Origin-Resource-Policy",
    "X-Request-ID",
    "X-Powered-By",
)

FRONTEND_CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
FRONTEND_CACHE_DEFAULT = "no-cache"
# Vite's hashed build output: /assets/<name>-<8+ char hash>.<ext>.
HASHED_ASSET_REGEX = r"^/assets/.+[.-][A-Za-z0-9_-]{8,}\.[A-Za-z0-9]+$"

PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(),"
    " microphone=(), usb=()"
)


@dataclass(frozen=True)
class SiteBinding:
    """Where the site listens. The defaults are the host's; tests bind loopback ports."""

    http_port: int = 80
    https_port: int = 443
    address: str | None = None  # None: every address (and IPv6 when the droplet has it)


def content_security_policy(settings: Settings) -> str:
    """The CSP: same-origin by default, plus exactly what the real frontend loads: the API and
    WebSockets on this domain, Twitch's API, its embed script and player/clip/chat frames, and
    Google Fonts; nobody may frame the site."""
    connect = ["'self'", TWITCH_API, f"wss://{settings.domain}"]
    connect += [src for src in settings.csp_connect_src_extra if src not in connect]
    directives = [
        "default-src 'self'",
        f"script-src 'self' {TWITCH_EMBED_SCRIPT}",
        f"style-src 'self' 'unsafe-inline' {GOOGLE_FONTS_CSS}",
        "img-src 'self' data: blob: https:",
        "media-src 'self' blob: https:",
        f"font-src 'self' data: {GOOGLE_FONTS_FILES}",
        "connect-src " + " ".join(connect),
        "frame-src " + " ".join(TWITCH_FRAMES),
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "object-src 'none'",
    ]
    return "; ".join(directives)


def security_headers(settings: Settings) -> list[tuple[str, str]]:
    """Every security header the site sends on every response (name, value).

    HSTS is included: it is only sent where the browser talks TLS (nginx's :443, or the load
    balancer in front of :80), and browsers ignore it over plain http anyway.
    """
    csp_header = (
        "Content-Security-Policy"
        if settings.csp_mode == "enforce"
        else "Content-Security-Policy-Report-Only"
    )
    return [
        (
            "Strict-Transport-Security",
            f"max-age={settings.hsts_max_age_seconds}; includeSubDomains; preload",
        ),
        (csp_header, content_security_policy(settings)),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
        ("Permissions-Policy", PERMISSIONS_POLICY),
        ("Cross-Origin-Opener-Policy", "same-origin-allow-popups"),
        ("Cross-Origin-Resource-Policy", "same-site"),
    ]


def render_proxy_snippet(settings: Settings) -> str:
    """The proxy lines every proxied location includes (NGINX_PROXY_SNIPPET).

    X-Forwarded-For is the real client address only, never appended to a client's header: the
    backend trusts it and keys its own rate limits on it.
    """
    # Behind the load balancer the browser's scheme is https (the LB redirects plain http).
    proto = "https" if settings.uses_load_balancer else "$scheme"
    hidden = "\n".join(f"proxy_hide_header {name};" for name in EDGE_OWNED_HEADERS)
    return f"""\
# Rendered by components/renderers/nginx.py; included by each proxied location of clipper.conf.
proxy_http_version 1.1;
proxy_set_header Host $host;
proxy_set_header X-Real-IP $remote_addr;
proxy_set_header X-Forwarded-For $remote_addr;
proxy_set_header X-Forwarded-Proto {proto};
proxy_set_header X-Forwarded-Host $host;
proxy_set_header Forwarded "";
proxy_set_header X-Request-ID $clipper_request_id;
{hidden}
"""


def _indent(lines: list[str], depth: int) -> str:
    pad = "    " * depth
    return "\n".join(pad + line if line else "" for line in lines)


def _listen(binding: SiteBinding, port: int, flags: str, ipv6: bool) -> list[str]:
    address = f"{binding.address}:" if binding.address else ""
    lines = [f"listen {address}{port} {flags};"]
    if ipv6 and binding.address is None:
        lines.append(f"listen [::]:{port} {flags};")
    return lines


def _proxy_location(
    match: str,
    *,
    snippet: str,
    upstream: str,
    route: str,
    limit: str | None,
    read_timeout: int | None = None,
    websocket: bool = False,
    extra: tuple[str, ...] = (),
) -> list[str]:
    lines = [f"location {match} {{", f"    set $clipper_route {route};"]
    if limit:
        lines.append(f"    {limit}")
    lines.append(f"    include {snippet};")
    if websocket:
        lines += [
            "    proxy_set_header Upgrade $http_upgrade;",
            "    proxy_set_header Connection $clipper_connection_upgrade;",
        ]
    else:
        # An empty Connection keeps the upstream keepalive pool in use.
        lines.append('    proxy_set_header Connection "";')
    lines += [f"    {line}" for line in extra]
    if read_timeout is not None:
        lines += [
            f"    proxy_read_timeout {read_timeout}s;",
            f"    proxy_send_timeout {read_timeout}s;",
        ]
    lines += [f"    proxy_pass http://{upstream};", "}"]
    return lines


def _app_locations(settings: Settings, snippet: str) -> list[str]:
    api_limit = f"limit_req zone=clipper_api burst={settings.api_rate_burst} nodelay;"
    general_limit = f"limit_req zone=clipper_general burst={settings.general_rate_burst} nodelay;"

    def backend(
        match: str, limit: str | None, timeout: int | None = None, websocket: bool = False
    ) -> list[str]:
        return _proxy_location(
            match,
            snippet=snippet,
            upstream=BACKEND_UPSTREAM,
            route="backend",
            limit=limit,
            read_timeout=timeout,
            websocket=websocket,
        )

    blocks = [
        *(backend(f"= {path}", None) for path in UNTHROTTLED_API_PATHS),
        backend(
            f"~ {WEBSOCKET_LOCATION}",
            api_limit,
            settings.websocket_read_timeout_seconds,
            websocket=True,
        ),
        backend("/api/", api_limit),
        *(backend(f"= {path}", general_limit) for path in BACKEND_EXACT_PATHS),
        *(backend(prefix, general_limit) for prefix in BACKEND_PREFIXES),
        [f"location ^~ {HIDDEN_PREFIX} {{", "    return 404;", "}"],
        # The SPA: its own cache headers give way to the edge's (hashed assets forever, the rest
        # revalidated), so a deploy's new index.html is seen at once.
        _proxy_location(
            "/",
            snippet=snippet,
            upstream=FRONTEND_UPSTREAM,
            route="frontend",
            limit=general_limit,
            read_timeout=30,
            extra=("proxy_hide_header Cache-Control;", "proxy_hide_header Expires;"),
        ),
    ]
    lines: list[str] = []
    for block in blocks:
        lines += [*block, ""]
    return lines[:-1]


def _common_server_lines(settings: Settings, access_log: str, https_suffix: str) -> list[str]:
    lines = [
        "server_tokens off;",
        f"access_log {access_log} clipper_json;",
        "",
        "# Request limits and timeouts.",
        f"client_max_body_size {settings.client_max_body_mb}m;",
        "client_header_timeout 15s;",
        "client_body_timeout 30s;",
        "send_timeout 30s;",
        "keepalive_timeout 65s;",
        # Upstream timeouts for the API; the WebSockets and the SPA set their own.
        "proxy_connect_timeout 5s;",
        f"proxy_read_timeout {settings.api_read_timeout_seconds}s;",
        f"proxy_send_timeout {settings.api_read_timeout_seconds}s;",
        "limit_req_status 429;",
        "limit_req_log_level warn;",
        "",
        "gzip on;",
        "gzip_vary on;",
        "gzip_proxied any;",
        "gzip_comp_level 5;",
        "gzip_min_length 1024;",
        f"gzip_types {GZIP_TYPES};",
        "",
        "# Headers for every response, errors included (no location adds its own).",
    ]
    lines += [f'add_header {name} "{value}" always;' for name, value in security_headers(settings)]
    lines += [
        "add_header Cache-Control $clipper_cache_control always;",
        "add_header X-Request-ID $clipper_request_id always;",
        "",
        '# Set per location: which upstream answered ("" for nginx itself).',
        'set $clipper_route "";',
        "",
        *_www_redirect(settings, https_suffix),
    ]
    return lines


def _http_context(settings: Settings, root: str) -> str:
    return f"""\
include {under_root(NGINX_ACTIVE_UPSTREAMS_FILE, root)};

# A caller's sane X-Request-ID is kept (one id across hops); otherwise nginx makes one.
map $http_x_request_id $clipper_request_id {{
    default $request_id;
    "~^[A-Za-z0-9][A-Za-z0-9._:-]{{7,127}}$" $http_x_request_id;
}}

map $http_upgrade $clipper_connection_upgrade {{
    default upgrade;
    "" close;
}}

# Cache policy of the frontend's responses; "" leaves the backend's own headers alone.
map "$clipper_route:$uri" $clipper_cache_control {{
    default "";
    "~{HASHED_ASSET_REGEX.replace("^", "^frontend:", 1)}" "{FRONTEND_CACHE_IMMUTABLE}";
    "~^frontend:" "{FRONTEND_CACHE_DEFAULT}";
}}

# Per-client limits, keyed on the real client address (after the PROXY protocol, if any).
limit_req_zone $binary_remote_addr zone=clipper_api:10m rate={settings.api_rate_limit_rps}r/s;
limit_req_zone $binary_remote_addr zone=clipper_general:10m \
rate={settings.general_rate_limit_rps}r/s;

# One JSON object per request for the log pipeline. Paths only: query strings can carry OAuth
# codes and tokens.
log_format clipper_json escape=json '{{"time":"$time_iso8601","request_id":"$clipper_request_id",'
    '"client":"$remote_addr","method":"$request_method","path":"$uri",'
    '"protocol":"$server_protocol","status":$status,"bytes_sent":$bytes_sent,'
    '"request_time":$request_time,"route":"$clipper_route","upstream":"$upstream_addr",'
    '"upstream_status":"$upstream_status","upstream_time":"$upstream_response_time",'
    '"host":"$host","tls":"$ssl_protocol","user_agent":"$http_user_agent"}}';
"""


def _www_redirect(settings: Settings, https_suffix: str) -> list[str]:
    # DNS publishes www; the site itself lives on the apex only.
    return [
        f"if ($host = www.{settings.domain}) {{",
        f"    return 301 https://{settings.domain}{https_suffix}$request_uri;",
        "}",
    ]


def render_nginx_site(
    settings: Settings, *, root: str = "/", binding: SiteBinding | None = None
) -> str:
    """The site file (host_layout.NGINX_SITE_FILE) for `settings.edge_entry`.

    `root` relocates every host path the file names (tests render under a temp dir);
    `binding` sets the listening address and ports.
    """
    binding = binding or SiteBinding()
    snippet = under_root(NGINX_PROXY_SNIPPET, root)
    access_log = under_root(NGINX_ACCESS_LOG, root)
    # Behind the load balancer browsers always use :443 (the LB's); tests move nginx's own port.
    https_suffix = (
        "" if settings.uses_load_balancer or binding.https_port == 443 else f":{binding.https_port}"
    )
    common = _common_server_lines(settings, access_log, https_suffix)
    locations = _app_locations(settings, snippet)
    header = (
        f"# Clipper site for {settings.domain}, entry: {settings.edge_entry}.\n"
        "# Rendered by components/renderers/nginx.py; do not edit on the host.\n\n"
    )

    if settings.uses_load_balancer:
        server = [
            "# Behind the load balancer: it ends TLS and sends HTTP with the PROXY protocol.",
            "server {",
            _indent(_listen(binding, binding.http_port, "proxy_protocol default_server", False), 1),
            # Any Host: the load balancer's health checks use the droplet's address.
            f"    server_name {settings.domain} www.{settings.domain} _;",
            "",
            "    # The client address in the PROXY header is believed from the VPC only.",
            f"    set_real_ip_from {settings.vpc_ip_range};",
            "    real_ip_header proxy_protocol;",
            "",
            _indent(common, 1),
            "",
            _indent(locations, 1),
            "}",
        ]
        return header + _http_context(settings, root) + "\n" + "\n".join(server) + "\n"

    cert = certificate_paths(settings.domain, root)
    redirect = [
        "# Plain http: the ACME challenge (certbot's webroot), everything else to https.",
        "server {",
        _indent(_listen(binding, binding.http_port, "default_server", settings.app_ipv6), 1),
        "    server_name _;",
        "    server_tokens off;",
        f"    access_log {access_log} clipper_json;",
        '    set $clipper_route "";',
        "",
        "    location ^~ /.well-known/acme-challenge/ {",
        f"        root {under_root(ACME_WEBROOT, root)};",
        "        default_type text/plain;",
        "        try_files $uri =404;",
        "    }",
        "",
        "    location / {",
        f"        return 301 https://{settings.domain}{https_suffix}$request_uri;",
        "    }",
        "}",
    ]
    tls_server = [
        "server {",
        _indent(
            _listen(binding, binding.https_port, "ssl http2 default_server", settings.app_ipv6), 1
        ),
        f"    server_name {settings.domain} www.{settings.domain};",
        "",
        "    # certbot's lineage (a self-signed placeholder until the first issuance).",
        f"    ssl_certificate {cert.fullchain};",
        f"    ssl_certificate_key {cert.privkey};",
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        f"    ssl_ciphers {TLS_CIPHERS};",
        "    ssl_prefer_server_ciphers off;",
        "    ssl_session_cache shared:clipper_tls:10m;",
        "    ssl_session_timeout 1d;",
        "    ssl_session_tickets off;",
        # No OCSP stapling: Let's Encrypt ended OCSP in 2025 (its certificates carry no
        # responder URL, so nginx would only log a warning at every start).
        "",
        _indent(common, 1),
        "",
        _indent(locations, 1),
        "}",
    ]
    return (
        header
        + _http_context(settings, root)
        + "\n"
        + "\n".join(redirect)
        + "\n\n"
        + "\n".join(tls_server)
        + "\n"
    )
