"""Every edge file of an app host (nginx site, proxy snippet, the active-colour include, and the
TLS files when the host ends TLS itself), and the first-boot commands that bring them to life.

The app droplet's cloud-init writes `edge_host_files` with `defer: true` (after the packages are
installed: nginx would not start with them before) and runs `edge_bootstrap_commands` from its
setup script. None of these files or commands holds a secret.
"""

from __future__ import annotations

from components.host.files import HostFile
from components.host.layout import NGINX_ACTIVE_UPSTREAMS_FILE, NGINX_SITE_FILE, Color
from components.renderers.nginx import (
    NGINX_PROXY_SNIPPET,
    SiteBinding,
    render_nginx_site,
    render_proxy_snippet,
)
from components.renderers.nginx_upstreams import render_active_upstreams
from components.renderers.tls import tls_bootstrap_commands, tls_host_files
from components.settings import Settings

# The colour a new host starts on; the first deploy fills it.
INITIAL_COLOR: Color = "blue"

# Ubuntu's stock site also claims `default_server` on :80.
STOCK_SITE = "/etc/nginx/sites-enabled/default"


def edge_host_files(
    settings: Settings, *, root: str = "/", binding: SiteBinding | None = None
) -> list[HostFile]:
    """The edge's files for an app host, at their host paths.

    `root` and `binding` only change what the files say (the host paths they name, the ports
    nginx listens on), so tests can run the same files under a temp dir on loopback ports.
    """
    binding = binding or SiteBinding()
    files = [
        HostFile(NGINX_SITE_FILE, render_nginx_site(settings, root=root, binding=binding)),
        HostFile(NGINX_PROXY_SNIPPET, render_proxy_snippet(settings)),
        HostFile(NGINX_ACTIVE_UPSTREAMS_FILE, render_active_upstreams(INITIAL_COLOR)),
    ]
    if not settings.uses_load_balancer:
        files += tls_host_files(settings, root=root, http_port=binding.http_port)
    return files


def edge_bootstrap_commands(settings: Settings) -> list[str]:
    """One-line shell commands for cloud-init's setup script, in order, none failing the boot
    for a reason outside the host (such as DNS not pointing here yet)."""
    commands = [f"rm -f {STOCK_SITE}"]
    if not settings.uses_load_balancer:
        commands += tls_bootstrap_commands()
    return commands
