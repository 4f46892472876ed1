"""The active-colour include: the only file a deploy rewrites to move traffic."""

from __future__ import annotations

from components.host.layout import (
    BACKEND_PORTS,
    COLORS,
    FRONTEND_PORTS,
    NGINX_VERIFY_PATH,
    NGINX_VERIFY_PORT,
    VERIFY_UPSTREAM_HEADER,
    Color,
)

BACKEND_UPSTREAM = "clipper_backend"
FRONTEND_UPSTREAM = "clipper_frontend"


def render_active_upstreams(color: Color) -> str:
    """Upstream blocks that point nginx at `color`'s backend and frontend on loopback.

    The site config proxies to `http://clipper_backend` and `http://clipper_frontend`; a deploy
    writes this text to a temporary file, renames it over the include and reloads nginx. A
    loopback-only server in the same file answers which backend address nginx really proxies
    to, so the release can tell that a reload moved the traffic (an nginx that exits 0 but
    keeps its old workers or config does not).
    """
    if color not in COLORS:
        raise ValueError(f"unknown colour {color!r}; colours: {', '.join(COLORS)}")
    return (
        f"# Active colour: {color}. Written by clipper-release; do not edit by hand.\n"
        f"upstream {BACKEND_UPSTREAM} {{\n"
        f"    server 127.0.0.1:{BACKEND_PORTS[color]} max_fails=0;\n"
        f"    keepalive 32;\n"
        f"}}\n"
        f"upstream {FRONTEND_UPSTREAM} {{\n"
        f"    server 127.0.0.1:{FRONTEND_PORTS[color]} max_fails=0;\n"
        f"    keepalive 16;\n"
        f"}}\n"
        f"# clipper-release's check: which backend this nginx proxies to (loopback only).\n"
        f"server {{\n"
        f"    listen 127.0.0.1:{NGINX_VERIFY_PORT};\n"
        f"    server_name _;\n"
        f"    access_log off;\n"
        f"    location = {NGINX_VERIFY_PATH} {{\n"
        f"        proxy_pass http://{BACKEND_UPSTREAM}/health/live;\n"
        f"        add_header {VERIFY_UPSTREAM_HEADER} $upstream_addr always;\n"
        f"    }}\n"
        f"    location / {{\n"
        f"        return 404;\n"
        f"    }}\n"
        f"}}\n"
    )
