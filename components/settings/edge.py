"""The edge: how traffic enters (reserved IP or load balancer), TLS, and nginx's policy (CSP,
rate limits, body size, proxy timeouts, HSTS)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from components.settings.checks import Email
from components.settings.concern import Concern


class EdgeSettings(Concern):
    """The entry point, its certificate and the web server's limits."""

    edge_entry: Literal["reserved-ip", "load-balancer"] = Field(
        description="reserved-ip: one droplet, TLS by certbot on the host; load-balancer: a"
        " DigitalOcean load balancer ends TLS with a managed certificate."
    )
    acme_email: Email = Field(description="Let's Encrypt account email (certbot).")
    csp_mode: Literal["report-only", "enforce"] = Field(
        description="Send CSP as Content-Security-Policy-Report-Only or enforce it."
    )
    csp_connect_src_extra: list[str] = Field(
        description="Extra CSP connect-src sources beyond self and the Twitch API."
    )
    api_rate_limit_rps: int = Field(ge=1, le=10000, description="Per-client API requests/s.")
    api_rate_burst: int = Field(ge=0, le=10000, description="API burst above the rate.")
    general_rate_limit_rps: int = Field(ge=1, le=10000, description="Per-client requests/s.")
    general_rate_burst: int = Field(ge=0, le=10000, description="General burst above the rate.")
    client_max_body_mb: int = Field(ge=1, le=100, description="Request body limit in MiB.")
    api_read_timeout_seconds: int = Field(ge=5, le=600, description="API proxy read timeout.")
    websocket_read_timeout_seconds: int = Field(
        ge=60, le=86400, description="WebSocket proxy read timeout."
    )
    hsts_max_age_seconds: int = Field(
        ge=31536000, le=63072000, description="HSTS max-age (preload needs at least a year)."
    )
    lb_size_unit: int = Field(ge=1, le=100, description="Load balancer size units.")

    @property
    def uses_load_balancer(self) -> bool:
        return self.edge_entry == "load-balancer"
