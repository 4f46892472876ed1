"""How a release rolls out on each host: old releases kept, drain time, readiness timeout."""

from __future__ import annotations

from pydantic import Field

from components.settings.concern import Concern


class ReleaseSettings(Concern):
    """The blue-green release's timings and history."""

    release_keep: int = Field(ge=1, le=10, description="Old releases kept for rollback.")
    release_drain_seconds: int = Field(
        ge=0, le=300, description="Seconds the old colour keeps serving after the switch."
    )
    release_ready_timeout_seconds: int = Field(
        ge=10, le=900, description="Seconds a new colour may take to become ready."
    )
