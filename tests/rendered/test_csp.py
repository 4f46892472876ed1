"""The Content-Security-Policy allows exactly what the real frontend loads, so `cspMode: enforce`
would not break the site: the policy is rendered, parsed, and each origin the app uses
(subculture-collective/clipper at fb1e144, frontend/src and index.css) is checked against the
directive that governs it, with CSP's own source matching (scheme + host, no wildcards here)."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from components.renderers.nginx import content_security_policy, render_nginx_site
from tests.support.program import settings_for

# (directive, URL the app loads, where in the app) — written out from the app's source,
# independently of the renderer's constants.
APP_LOADS = [
    ("script-src", "https://embed.twitch.tv/embed/v1.js", "TwitchPlayer.tsx: the embed SDK"),
    ("frame-src", "https://embed.twitch.tv/?channel=x", "Twitch.Embed's iframe"),
    ("frame-src", "https://player.twitch.tv/?channel=x&parent=d", "the live player frame"),
    ("frame-src", "https://clips.twitch.tv/embed?clip=x&parent=d", "clip embeds"),
    ("frame-src", "https://www.twitch.tv/embed/x/chat?parent=d", "TwitchChatEmbed.tsx"),
    ("style-src", "https://fonts.googleapis.com/css2?family=Inter", "index.css @import"),
    ("font-src", "https://fonts.gstatic.com/s/inter/v13/x.woff2", "Google Fonts' files"),
    ("connect-src", "https://api.twitch.tv/helix/streams", "Twitch API calls"),
    ("img-src", "https://static-cdn.jtvnw.net/previews-ttv/x.jpg", "Twitch thumbnails"),
    ("connect-src", "https://{domain}/api/v1/clips", "the API (same origin)"),
    ("connect-src", "wss://{domain}/api/v1/chat/channels/1/ws", "chat WebSocket"),
]
NOT_ALLOWED = [
    ("script-src", "https://evil.example/x.js"),
    ("frame-src", "https://evil.example/"),
    ("connect-src", "https://evil.example/"),
    ("style-src", "https://evil.example/x.css"),
    ("font-src", "http://fonts.gstatic.com/x.woff2"),  # plain http is not the allowed scheme
]
FETCH_FALLBACK = {"script-src", "style-src", "img-src", "font-src", "connect-src", "frame-src"}


def parse_policy(policy: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            assert words[0] not in directives, f"{words[0]} given twice"
            directives[words[0]] = words[1:]
    return directives


def allows(policy: dict[str, list[str]], directive: str, url: str, site: str) -> bool:
    """CSP Level 3 source matching, for the source forms this policy uses."""
    sources = policy.get(directive)
    if sources is None and directive in FETCH_FALLBACK:
        sources = policy.get("default-src", [])
    target = urlsplit(url)
    own = urlsplit(site)
    for source in sources or []:
        if source == "'self'":
            same = (target.hostname, target.port) == (own.hostname, own.port)
            if same and (target.scheme == own.scheme or (own.scheme, target.scheme) in
                         {("https", "wss"), ("http", "ws")}):  # fmt: skip
                return True
        elif source.endswith(":") and "/" not in source:
            if target.scheme == source[:-1]:
                return True
        elif "://" in source:
            allowed = urlsplit(source)
            if (allowed.scheme, allowed.hostname, allowed.port) == (
                target.scheme, target.hostname, target.port,
            ):  # fmt: skip
                return True
    return False


@pytest.mark.parametrize("stack", ["staging", "production"])
@pytest.mark.parametrize(("directive", "url", "where"), APP_LOADS)
def test_each_origin_the_frontend_loads_is_allowed(
    stack: str, directive: str, url: str, where: str
) -> None:
    settings = settings_for(stack)
    policy = parse_policy(content_security_policy(settings))
    url = url.format(domain=settings.domain)
    assert allows(policy, directive, url, settings.site_url), f"{where}: {url} ({directive})"


@pytest.mark.parametrize(("directive", "url"), NOT_ALLOWED)
def test_other_origins_stay_blocked(directive: str, url: str) -> None:
    settings = settings_for("production")
    policy = parse_policy(content_security_policy(settings))
    assert not allows(policy, directive, url, settings.site_url)


def test_the_site_still_may_not_be_framed_and_runs_no_plugins() -> None:
    policy = parse_policy(content_security_policy(settings_for("production")))
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert "'unsafe-eval'" not in policy["script-src"]


def test_enforce_mode_sends_the_same_policy_as_the_enforcing_header() -> None:
    settings = settings_for("production", cspMode="enforce")
    site = render_nginx_site(settings)
    assert f'add_header Content-Security-Policy "{content_security_policy(settings)}" always;' in (
        site
    )
    assert "Content-Security-Policy-Report-Only" not in site
