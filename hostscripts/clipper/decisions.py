"""What a release decides, as pure functions (table-tested): which colour serves, what a
release is, where a rollback goes, what to prune."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .envfile import env_digest
from .errors import HostError
from .release_config import COLORS, ColorConfig


def other_color(color: str) -> str:
    return COLORS[1] if color == COLORS[0] else COLORS[0]


def image_version(ref: str) -> str:
    """The human version of an image reference: its tag, else a short digest."""
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.split(":", 1)[1]
    return digest[:19] if digest else "untagged"


def release_fingerprint(
    images: Mapping[str, str], env_sha256: str, runtime: Mapping[str, Any]
) -> str:
    """What makes two releases the same: images, env content and how containers run."""
    doc = {"images": dict(sorted(images.items())), "env_sha256": env_sha256, "runtime": runtime}
    return hashlib.sha256(
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def release_id(images: Mapping[str, str], fingerprint: str) -> str:
    return f"{image_version(images['backend'])}-{fingerprint[:8]}"


def color_of_include(text: str | None, colors: Mapping[str, ColorConfig]) -> str | None:
    """Which colour the nginx include on disk points at (None: there is no include yet)."""
    if text is None:
        return None
    for color, conf in colors.items():
        if text == conf.upstreams:
            return color
    match = re.search(r"^# Active colou?r: (blue|green)\b", text, re.MULTILINE)
    if match:
        return match.group(1)
    for color, conf in colors.items():  # hand-edited: recognise the backend port
        if re.search(rf"127\.0\.0\.1:{conf.backend_port}\b", text):
            return color
    raise HostError("the nginx include points at neither colour; fix it by hand or restore it")


def choose_active(disk: str | None, ready: Mapping[str, bool]) -> str:
    """The colour that is serving: the include on disk, unless a killed switch left it on a
    colour that is not ready while the other one is (then the other is what must serve)."""
    if disk is None:
        return next((color for color in COLORS if ready.get(color)), COLORS[0])
    if not ready.get(disk) and ready.get(other_color(disk)):
        return other_color(disk)
    return disk


def rollback_target(
    releases: Sequence[Mapping[str, Any]], active_id: str | None
) -> Mapping[str, Any] | None:
    """The release recorded just before the active one (releases are oldest first)."""
    ids = [record["id"] for record in releases]
    if active_id not in ids:
        return releases[-1] if releases else None
    index = ids.index(active_id)
    return releases[index - 1] if index > 0 else None


def prune_releases(
    releases: Sequence[Mapping[str, Any]], active_id: str | None, keep: int
) -> tuple[list[Mapping[str, Any]], list[Mapping[str, Any]]]:
    """Keep the active release and the `keep` newest others; return (kept, dropped)."""
    others = [record for record in releases if record["id"] != active_id]
    dropped_ids = {record["id"] for record in others[: max(0, len(others) - keep)]}
    kept = [record for record in releases if record["id"] not in dropped_ids]
    dropped = [record for record in releases if record["id"] in dropped_ids]
    return kept, dropped


def images_to_remove(
    dropped: Sequence[Mapping[str, Any]], kept: Sequence[Mapping[str, Any]]
) -> list[str]:
    in_use = {ref for record in kept for ref in record.get("images", {}).values()}
    refs = {ref for record in dropped for ref in record.get("images", {}).values()}
    return sorted(refs - in_use)


def release_record(
    images: Mapping[str, str], env: Mapping[str, str], runtime: Mapping[str, Any]
) -> dict[str, Any]:
    """The release that `images` + `env` make: id, version, fingerprint (no secret in it)."""
    env_sha = env_digest(env)
    fingerprint = release_fingerprint(images, env_sha, runtime)
    return {
        "id": release_id(images, fingerprint),
        "version": image_version(images["backend"]),
        "fingerprint": fingerprint,
        "env_sha256": env_sha,
        "images": dict(images),
    }
