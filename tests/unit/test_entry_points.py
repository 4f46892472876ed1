"""The contracts other code and people rely on: the README's commands, `.ci/run`, plan, render."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from components.host.files import ROLES
from components.offline.runner import PROJECT_DIR

README = (PROJECT_DIR / "README.md").read_text()


def _readme_command(job: str) -> str:
    match = re.search(rf"\*\*{job}\*\*[^|]*\|\s*`([^`]+)`", README)
    assert match, f"README has no {job} command"
    return match.group(1)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    command = _readme_command("Tests")
    assert command == "bash scripts/test.sh"
    ci = (PROJECT_DIR / ".ci" / "run").read_text()
    assert "exec bash scripts/test.sh\n" in ci


def test_the_test_command_installs_debian_packages_after_apt_update() -> None:
    test_sh = (PROJECT_DIR / "scripts" / "test.sh").read_text()
    assert "bash scripts/install-test-deps.sh" in test_sh
    install = (PROJECT_DIR / "scripts" / "install-test-deps.sh").read_text()
    assert "apt-get update" in install and "apt-get install" in install


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_plan_prints_every_resource_and_a_count(stack: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", stack, "--json"],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    plan = json.loads(result.stdout)
    assert plan["count"] == len(plan["resources"]) > 0
    for row in plan["resources"]:
        assert row["type"] and row["name"]
    assert "offline-placeholder-" not in result.stdout, "secret values must print as [secret]"


def test_render_writes_files_under_role_and_absolute_path(tmp_path: Path) -> None:
    command = ["render", "--stack", "staging", "--out", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", "components", *command],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert result.stdout.strip().endswith(f"files written under {tmp_path}")
    written = [Path(line) for line in result.stdout.splitlines()[:-1]]
    for path in written:
        assert path.is_file()
        assert path.relative_to(tmp_path).parts[0] in ROLES
    expected = [
        "app/var/lib/cloud/instance/user-data.txt",  # the user-data itself
        "app/etc/nginx/conf.d/clipper.conf",  # from cloud-init write_files
        "app/usr/local/bin/clipper-release",  # from a RemoteFiles component (over SSH)
        "app/etc/clipper/backend.env",
    ]
    for relative in expected:
        assert tmp_path / relative in written, relative
    assert (tmp_path / "app/etc/clipper/backend.env").stat().st_mode & 0o777 == 0o600
