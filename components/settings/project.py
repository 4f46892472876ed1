"""The Pulumi project: its config namespace, its directory, and the error invalid settings raise."""

from __future__ import annotations

from pathlib import Path

PROJECT = "clipper-infra"
# Where Pulumi.yaml lives: the working directory of `pulumi up`, and the root of relative paths.
PROJECT_DIR = Path(__file__).resolve().parents[2]


class SettingsError(Exception):
    """Invalid stack settings: one line per problem, each naming the key, the value and the rule."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.stack = stack
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"stack '{stack}' has {len(problems)} invalid setting(s); nothing was created:\n{lines}"
        )
