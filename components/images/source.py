"""The app's source that the stack builds its images from: a git ref, or a local checkout.

pulumi-docker reads (and hashes) a build context from a local directory at preview time, so a
git source is checked out before any image is declared: `git fetch --depth 1 URL REF` into a
directory under the project (`.app-source/`, one per URL and ref), then a detached checkout of
what was fetched. A local path (development) is used as it is.

Under Pulumi's mock runtime (the offline `plan`/`render` and the unit tests) nothing is fetched:
the context path is declared, never read, as no provider runs there.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from components.settings import PROJECT_DIR, Settings
from components.settings.image_rules import image_tag_for

CHECKOUT_ROOT = PROJECT_DIR / ".app-source"


class SourceError(Exception):
    """The app's source could not be fetched: names the URL, the ref and git's answer."""


@dataclass(frozen=True)
class AppSource:
    """Where the build contexts live, and the tag the built images get."""

    root: Path
    tag: str
    # How to obtain `root`: (url, ref) to fetch, or None for a local checkout.
    fetch: tuple[str, str] | None

    @property
    def backend_context(self) -> Path:
        return self.root / "backend"

    @property
    def frontend_context(self) -> Path:
        return self.root / "frontend"

    @property
    def migrations_context(self) -> Path:
        return self.root / "backend" / "migrations"


def app_source(settings: Settings, checkout_root: Path = CHECKOUT_ROOT) -> AppSource:
    """The source `settings` names (pure: nothing is fetched here)."""
    if settings.app_source_path:
        return AppSource((PROJECT_DIR / settings.app_source_path).resolve(), "dev", None)
    url, ref = settings.app_source_git_url, settings.app_source_ref
    key = hashlib.sha256(f"{url}#{ref}".encode()).hexdigest()[:16]
    return AppSource(checkout_root / key, image_tag_for(ref), (url, ref))


def checkout_commands(url: str, ref: str, target: Path) -> list[list[str]]:
    """The git commands that leave `target` at `ref` of `url` and nothing else (re-runnable)."""
    git = ["git", "-C", str(target)]
    return [
        ["git", "init", "--quiet", str(target)],
        [*git, "fetch", "--quiet", "--depth", "1", "--no-tags", url, ref],
        [*git, "checkout", "--quiet", "--force", "--detach", "FETCH_HEAD"],
        [*git, "clean", "--quiet", "-ffdx"],
    ]


def ensure_checkout(source: AppSource) -> None:
    """Fetch a git source into its directory; a local one must exist (settings checked it)."""
    if source.fetch is None:
        return
    url, ref = source.fetch
    source.root.parent.mkdir(parents=True, exist_ok=True)
    for argv in checkout_commands(url, ref, source.root):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise SourceError(
                f"fetching the app's source {url} at {ref} failed at `{' '.join(argv)}`:"
                f" {proc.stderr.strip() or proc.stdout.strip()}"
            )


def engine_is_mocked() -> bool:
    """True under Pulumi's mock runtime, where no provider reads a build context."""
    from pulumi.runtime import settings as runtime_settings
    from pulumi.runtime.mocks import MockMonitor

    return isinstance(runtime_settings.SETTINGS.monitor, MockMonitor)
