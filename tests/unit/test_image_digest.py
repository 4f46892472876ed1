"""components/images/digest.py: tags resolved to digests at preview, digests kept as they are."""

from __future__ import annotations

import pulumi
import pytest

from components.images.digest import parse_reference, pinned_reference
from components.offline.mocks import ClipperMocks, mock_registry_digest

_DIGEST = "sha256:" + "ab" * 32


def _resolve(mocks: ClipperMocks, reference: str) -> str:
    """Run `pinned_reference` under `mocks` (the offline registry) and return what it resolved."""
    pulumi.runtime.set_mocks(mocks, project="clipper-infra", stack="staging", preview=True)
    seen: list[str] = []

    @pulumi.runtime.test
    def program() -> pulumi.Output[None]:
        return pinned_reference("backend", reference).apply(seen.append)

    program()
    return seen[0]


def test_a_tag_is_resolved_to_the_registrys_digest_and_keeps_the_tag_for_the_reader() -> None:
    pinned = _resolve(ClipperMocks(), "registry.example.com/clipper/backend:v1.4.0")
    assert pinned == (
        "registry.example.com/clipper/backend:v1.4.0@"
        + mock_registry_digest("registry.example.com/clipper/backend:v1.4.0")
    )


def test_a_moved_tag_changes_the_pinned_reference() -> None:
    ref = "registry.example.com/clipper/backend:v1.4.0"
    before = _resolve(ClipperMocks(), ref)
    after = _resolve(ClipperMocks(registry_digests={ref: _DIGEST}), ref)
    assert before != after
    assert after == f"{ref}@{_DIGEST}"


def test_a_reference_with_a_digest_is_not_looked_up() -> None:
    ref = f"registry.example.com/clipper/backend:v1.4.0@{_DIGEST}"
    # The registry would answer another digest for the tag: a digest in settings still wins.
    mocks = ClipperMocks(registry_digests={"registry.example.com/clipper/backend:v1.4.0": "x"})
    assert _resolve(mocks, ref) == ref


def test_a_registry_answer_that_is_not_a_digest_is_refused() -> None:
    ref = "registry.example.com/clipper/backend:v1.4.0"
    with pytest.raises(Exception, match="not a sha256 digest"):
        _resolve(ClipperMocks(registry_digests={ref: "sha256:short"}), ref)


@pytest.mark.parametrize(
    ("reference", "name", "tag", "digest"),
    [
        ("nginx", "nginx", None, None),
        ("localhost:5000/a/b:1.2", "localhost:5000/a/b", "1.2", None),
        (f"a/b@{_DIGEST}", "a/b", None, _DIGEST),
    ],
)
def test_references_are_split_into_name_tag_and_digest(
    reference: str, name: str, tag: str | None, digest: str | None
) -> None:
    parsed = parse_reference(reference)
    assert (parsed.name, parsed.tag, parsed.digest) == (name, tag, digest)


def test_a_malformed_reference_is_refused_with_its_value() -> None:
    with pytest.raises(ValueError, match="'Not/An:Image!'"):
        parse_reference("Not/An:Image!")
