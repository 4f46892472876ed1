"""The app's own non-secret environment: Twitch, CORS and WebSocket origins, OpenSearch, Stripe
plans (the secret half is `Secrets`)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from components.settings import image_rules
from components.settings.concern import Concern


def _https_origin(value: str) -> str:
    if not re.match(r"^https://[a-z0-9.-]+(:[0-9]{1,5})?$", value):
        raise ValueError(
            "allowed: an https origin with no path, such as https://clipper.example.com"
        )
    return value


Origin = Annotated[str, AfterValidator(_https_origin)]


class AppEnvironmentSettings(Concern):
    """What the backend (and the built frontend) is configured with, besides secrets."""

    twitch_client_id: str = Field(min_length=1, description="Twitch OAuth client id.")
    cors_allowed_origins: list[Origin] = Field(
        description="CORS origins; empty means https://<domain>. First gets OAuth."
    )
    websocket_allowed_origins: list[Origin] = Field(
        description="WebSocket origins; empty means https://<domain>."
    )
    opensearch_url: str = Field(description="OpenSearch URL; empty: search uses SQL.")
    opensearch_username: str = Field(description="OpenSearch user name.")
    stripe_pro_monthly_price_id: Annotated[str, AfterValidator(image_rules.stripe_price_id)] = (
        Field(description="Stripe price id of the monthly Pro plan (needs stripeSecretKey).")
    )
    stripe_pro_yearly_price_id: Annotated[str, AfterValidator(image_rules.stripe_price_id)] = Field(
        description="Stripe price id of the yearly Pro plan (needs stripeSecretKey)."
    )
