"""The rendered nginx config of both stacks, checked by `nginx -t` after Ubuntu's stock http
settings, and read for the properties that no single live request shows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from components.host.layout import NGINX_SITE_FILE, under_root
from components.offline.render import host_files
from components.renderers.edge import edge_bootstrap_commands, edge_host_files
from components.renderers.nginx import NGINX_PROXY_SNIPPET, render_nginx_site, render_proxy_snippet
from components.renderers.tls import PLACEHOLDER_SCRIPT
from components.settings import Settings
from tests.support.edge import install_host_files, main_conf_for, stack_settings
from tests.support.program import stack_run

STACKS = ["staging", "production"]


def nginx_t(root: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on a main config that includes the site under `root` (as conf.d does)."""
    conf = root / "nginx.conf"
    conf.write_text(main_conf_for(root))
    return subprocess.run(
        ["nginx", "-t", "-p", f"{root}/", "-e", str(root / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def install_edge(settings: Settings, root: Path, *, placeholder: bool = True) -> None:
    install_host_files(edge_host_files(settings, root=str(root)), root)
    (root / "var/log/nginx").mkdir(parents=True, exist_ok=True)
    if placeholder and not settings.uses_load_balancer:
        script = under_root(PLACEHOLDER_SCRIPT, str(root))
        subprocess.run(["bash", script], check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_puts_exactly_the_edge_files_on_the_app_hosts(stack: str) -> None:
    on_hosts = host_files(stack_run(stack))["app"]
    for file in edge_host_files(stack_settings(stack)):
        assert file.path in on_hosts, f"{file.path} is not in the app hosts' user-data"
        assert on_hosts[file.path].content == file.content
        assert on_hosts[file.path].mode == file.mode


@pytest.mark.parametrize("stack", STACKS)
def test_nginx_accepts_the_rendered_config(stack: str, tmp_path: Path) -> None:
    install_edge(stack_settings(stack), tmp_path)
    proc = nginx_t(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[emerg]" not in proc.stderr


def test_nginx_needs_the_placeholder_to_start_before_the_first_certificate(
    tmp_path: Path,
) -> None:
    settings = stack_settings("staging")
    install_edge(settings, tmp_path, placeholder=False)
    without = nginx_t(tmp_path)
    assert without.returncode != 0
    assert "fullchain.pem" in without.stderr
    subprocess.run(
        ["bash", under_root(PLACEHOLDER_SCRIPT, str(tmp_path))], check=True, capture_output=True
    )
    assert nginx_t(tmp_path).returncode == 0


# ---------------------------------------------------------------- what the text must (not) say


_LOCATION = re.compile(r"^\s*location ([^{]+)\{(.*?)^\s*\}", re.M | re.S)


def _locations(site: str) -> dict[str, str]:
    """Each `location MATCH { ... }` block's body by its match (locations are not nested)."""
    return {match.strip(): body for match, body in _LOCATION.findall(site)}


@pytest.mark.parametrize("stack", STACKS)
def test_headers_are_added_at_server_level_only(stack: str) -> None:
    # add_header in a location would silently drop every server-level security header there.
    for match, body in _locations(render_nginx_site(stack_settings(stack))).items():
        assert "add_header" not in body, match


@pytest.mark.parametrize("stack", STACKS)
def test_every_proxied_location_includes_the_proxy_snippet(stack: str) -> None:
    locations = _locations(render_nginx_site(stack_settings(stack)))
    proxied = {m: b for m, b in locations.items() if "proxy_pass" in b}
    assert len(proxied) >= 12
    for match, body in proxied.items():
        assert f"include {NGINX_PROXY_SNIPPET};" in body, match
        assert "proxy_set_header X-Forwarded-For" not in body, match


@pytest.mark.parametrize("stack", STACKS)
def test_the_client_address_is_set_never_appended(stack: str) -> None:
    settings = stack_settings(stack)
    snippet = render_proxy_snippet(settings)
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in snippet
    for file in edge_host_files(settings):
        assert "$proxy_add_x_forwarded_for" not in file.content, file.path


def test_behind_the_load_balancer_only_the_vpc_may_name_the_client() -> None:
    settings = stack_settings("production")
    site = render_nginx_site(settings)
    assert re.findall(r"set_real_ip_from (\S+);", site) == [settings.vpc_ip_range]
    assert "real_ip_header proxy_protocol;" in site
    assert "listen 80 proxy_protocol default_server;" in site
    assert "ssl_certificate" not in site  # TLS ends at the load balancer


def test_a_host_that_ends_tls_itself_trusts_no_forwarded_address() -> None:
    site = render_nginx_site(stack_settings("staging"))
    assert "set_real_ip_from" not in site
    assert "proxy_protocol" not in site
    assert "listen 443 ssl http2 default_server;" in site
    assert "listen [::]:443 ssl http2 default_server;" in site  # appIpv6 is on


def test_websockets_get_their_own_read_timeout_and_the_api_its_own() -> None:
    settings = stack_settings(
        "staging", apiReadTimeoutSeconds="33", websocketReadTimeoutSeconds="900"
    )
    site = render_nginx_site(settings)
    ws = next(b for m, b in _locations(site).items() if "/ws$" in m)
    assert "proxy_read_timeout 900s;" in ws
    assert "proxy_set_header Upgrade $http_upgrade;" in ws
    outside_locations = re.sub(_LOCATION, "", site)
    assert "proxy_read_timeout 33s;" in outside_locations
    api = _locations(site)["/api/"]
    assert "proxy_read_timeout" not in api  # inherits the server's


def test_limits_and_sizes_come_from_the_settings() -> None:
    settings = stack_settings(
        "staging",
        apiRateLimitRps="7",
        apiRateBurst="14",
        generalRateLimitRps="13",
        generalRateBurst="26",
        clientMaxBodyMb="25",
        hstsMaxAgeSeconds="31536000",
    )
    site = render_nginx_site(settings)
    assert "zone=clipper_api:10m rate=7r/s;" in site
    assert "zone=clipper_general:10m rate=13r/s;" in site
    assert "limit_req zone=clipper_api burst=14 nodelay;" in site
    assert "limit_req zone=clipper_general burst=26 nodelay;" in site
    assert "client_max_body_size 25m;" in site
    assert '"max-age=31536000; includeSubDomains; preload"' in site


@pytest.mark.parametrize("stack", STACKS)
def test_the_bootstrap_commands_are_single_lines_without_secrets(stack: str) -> None:
    commands = edge_bootstrap_commands(stack_settings(stack))
    assert commands[0] == "rm -f /etc/nginx/sites-enabled/default"
    for command in commands:
        assert "\n" not in command
        assert "offline-placeholder" not in command  # the stand-in value of every secret


def test_first_boot_makes_a_certificate_before_testing_nginx_and_never_waits_for_dns() -> None:
    commands = edge_bootstrap_commands(stack_settings("staging"))
    assert commands.index(PLACEHOLDER_SCRIPT) < commands.index("nginx -t -q")
    issue = [c for c in commands if "clipper-tls-issue.service" in c]
    assert issue == ["systemctl start --no-block clipper-tls-issue.service"]


def test_behind_the_load_balancer_there_is_no_certbot() -> None:
    settings = stack_settings("production")
    assert not any("certbot" in c or "tls" in c for c in edge_bootstrap_commands(settings))
    paths = [f.path for f in edge_host_files(settings)]
    assert NGINX_SITE_FILE in paths
    assert not any("tls" in p or "systemd" in p for p in paths)


def test_the_tls_site_does_not_staple_ocsp_which_lets_encrypt_no_longer_offers() -> None:
    site = render_nginx_site(stack_settings("staging"))
    assert "ssl_certificate " in site
    assert "ssl_stapling" not in site and "resolver " not in site
