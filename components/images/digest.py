"""Images by digest: what `pulumi preview` shows is what a host runs, even if a tag moves.

A reference with a tag is resolved at preview time through pulumi-docker's registry lookup
(`docker:index/getRegistryImage`), so the preview carries `repo:tag@sha256:...`; a tag that
moves in the registry changes the digest, hence the preview. A reference that already names a
digest is taken as it is (no registry round trip: the digest is the identity).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.settings.image_rules import IMAGE_REFERENCE_RE as _REFERENCE_RE

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference."""

    name: str
    tag: str | None
    digest: str | None

    @property
    def tagged(self) -> str:
        """`name:tag` (or just `name`): what the registry lookup is asked for."""
        return f"{self.name}:{self.tag}" if self.tag else self.name

    def pinned(self, digest: str) -> str:
        """`name[:tag]@digest`: the tag stays for the reader, the digest decides what runs."""
        if not _DIGEST_RE.match(digest):
            raise ValueError(f"registry answered {digest!r} for {self.tagged}, not a sha256 digest")
        return f"{self.tagged}@{digest}"


def parse_reference(reference: str) -> ImageReference:
    """Split `reference` into name, tag and digest; a malformed one raises ValueError."""
    match = _REFERENCE_RE.match(reference)
    if not match:
        raise ValueError(f"{reference!r} is not an image reference such as ghcr.io/org/app:v1.2.3")
    return ImageReference(match["name"], match["tag"], match["digest"])


def pinned_reference(
    name: str,
    reference: pulumi.Input[str],
    opts: pulumi.InvokeOutputOptions | None = None,
) -> pulumi.Output[str]:
    """`reference` as `repo[:tag]@sha256:...`, resolved at preview time.

    `name` labels the lookup in errors. A reference with a digest is returned unchanged.
    """

    def resolve(ref: str) -> pulumi.Output[str]:
        parsed = parse_reference(ref)
        if parsed.digest:
            return pulumi.Output.from_input(ref)
        found = docker.get_registry_image_output(name=parsed.tagged, opts=opts)

        def pin(digest: str | None) -> str:
            if not digest:
                raise ValueError(f"{name}: the registry has no digest for {parsed.tagged}")
            return parsed.pinned(digest)

        return found.sha256_digest.apply(pin)

    return pulumi.Output.from_input(reference).apply(resolve)
