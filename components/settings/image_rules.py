"""The rules for the release's image settings: where each image comes from, the app's source,
and the stack's DigitalOcean Container Registry. Pure value checks, used by components/settings/.
"""

from __future__ import annotations

import re
from typing import Final

# An image setting is either this word (build it from the app's source) or a reference.
BUILD: Final = "build"
# The images a release ships that the stack may build (golang-migrate is always prebuilt).
BUILDABLE_IMAGES: Final[tuple[str, ...]] = ("backend", "frontend", "migrations")

# DigitalOcean Container Registry (docs.digitalocean.com/products/container-registry/details/):
# subscription tiers and how many repositories each holds (professional: no stated limit).
REGISTRY_TIER_REPOSITORIES: Final[dict[str, int | None]] = {
    "starter": 1,
    "basic": 5,
    "professional": None,
}
# Regions the registry is offered in.
REGISTRY_REGIONS: Final[frozenset[str]] = frozenset(
    {"nyc3", "sfo2", "sfo3", "ams3", "sgp1", "fra1", "blr1", "syd1"}
)
# Where a stack whose region has no registry keeps it: the nearest region that has one.
REGISTRY_NEAREST_REGION: Final[dict[str, str]] = {
    "nyc1": "nyc3", "sfo1": "sfo3", "tor1": "nyc3", "lon1": "ams3", "atl1": "nyc3",
}  # fmt: skip
# The registry's host, the same for every DigitalOcean registry.
REGISTRY_SERVER: Final = "registry.digitalocean.com"

# Docker's reference grammar, reduced to what settings accept: name[:tag][@sha256:hex].
IMAGE_REFERENCE_RE = re.compile(
    r"^(?P<name>[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*)"
    r"(:(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
# DigitalOcean: lower-case letters, digits and dashes, 63 at most, starting with a letter or digit.
_REGISTRY_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# A git tag or branch name (git check-ref-format, reduced) or a full commit id.
_GIT_REF_RE = re.compile(r"^(?!.*\.\.)(?!.*//)(?!/)(?!.*/$)(?!.*\.lock$)[A-Za-z0-9._/-]{1,200}$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_GIT_URL_RE = re.compile(r"^(https://[^\s@]+|ssh://git@[^\s]+|git@[A-Za-z0-9.-]+:[^\s]+)$")


def pinned_image(value: str) -> str:
    """A reference with a version: a tag that is not `latest`, or a sha256 digest."""
    match = IMAGE_REFERENCE_RE.match(value)
    if not match:
        raise ValueError("not an image reference such as ghcr.io/org/app:v1.2.3")
    if not match["tag"] and not match["digest"]:
        raise ValueError("has no tag or digest; allowed: an explicit version tag or @sha256 digest")
    if match["tag"] == "latest":
        raise ValueError("uses 'latest', which is not a version; allowed: an explicit version tag")
    return value


def digest_pinned_image(value: str) -> str:
    """A reference that names its digest."""
    pinned_image(value)
    if "@sha256:" not in value:
        raise ValueError("must be pinned by digest: allowed: name:tag@sha256:<64 hex digits>")
    return value


def image_source(value: str) -> str:
    """`build` (from the app's source at `appSourceRef`), or a prebuilt pinned reference."""
    if value == BUILD:
        return value
    try:
        return pinned_image(value)
    except ValueError as err:
        raise ValueError(f"{err}; or '{BUILD}' to build it from the app's source") from None


def registry_name(value: str) -> str:
    if value and not _REGISTRY_NAME_RE.match(value):
        raise ValueError(
            "not a registry name: allowed: empty (clipper-<environment>) or up to 63 lower-case"
            " letters, digits and dashes"
        )
    return value


def registry_region(value: str) -> str:
    if value and value not in REGISTRY_REGIONS:
        raise ValueError(
            "has no DigitalOcean Container Registry; allowed: empty (the stack's region) or "
            + ", ".join(sorted(REGISTRY_REGIONS))
        )
    return value


def git_ref(value: str) -> str:
    if value and not (_COMMIT_RE.match(value) or _GIT_REF_RE.match(value)):
        raise ValueError("allowed: empty, a git tag such as v1.4.0, or a 40-hex commit id")
    return value


def git_url(value: str) -> str:
    if not _GIT_URL_RE.match(value):
        raise ValueError(
            "allowed: a git URL such as https://github.com/subculture-collective/clipper.git"
            " or git@github.com:org/repo.git"
        )
    return value


def stripe_price_id(value: str) -> str:
    if value and not re.match(r"^price_[A-Za-z0-9]{8,}$", value):
        raise ValueError("allowed: empty or a Stripe price id such as price_1Nabc...")
    return value


def image_tag_for(ref: str) -> str:
    """A Docker tag for source ref `ref` (a git tag or commit): what the built images carry."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", ref)[:128]
    return tag if tag and tag[0] not in ".-" else f"src-{tag}"[:128]
