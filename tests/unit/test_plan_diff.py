"""scripts/plan-diff.py, the lead's check of what a change did to `plan --json`: run as a
command on plan files, the committed stack's real plan among them."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "plan-diff.py"


def _resource(name: str, **inputs: Any) -> dict[str, Any]:
    return {"type": "t:i:R", "name": name, "parent": "", "inputs": inputs, "options": {}}


def _plan(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"stack": "s", "resources": list(resources), "count": len(resources), "outputs": {}}


def _diff(tmp_path: Path, before: Any, after: Any, *flags: str) -> subprocess.CompletedProcess[str]:
    paths = []
    for name, plan in (("before.json", before), ("after.json", after)):
        path = tmp_path / name
        path.write_text(plan if isinstance(plan, str) else json.dumps(plan))
        paths.append(str(path))
    return subprocess.run(
        [sys.executable, str(SCRIPT), *paths, *flags],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_plan_equals_itself(tmp_path: Path) -> None:
    plan = _plan(_resource("a", size=1), _resource("b", tags=["x"]))
    result = _diff(tmp_path, plan, copy.deepcopy(plan))
    assert (result.returncode, result.stdout) == (0, "plan-diff: no differences\n")


def test_added_removed_and_changed_resources_are_listed(tmp_path: Path) -> None:
    before = _plan(_resource("a", size=1, text="x\ny\n"), _resource("gone"))
    after = _plan(_resource("a", size=2, text="x\nz\n"), _resource("new"))
    result = _diff(tmp_path, before, after, "--text")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[:2] == ["added resource: t:i:R new", "removed resource: t:i:R gone"]
    assert "changed: t:i:R a: inputs.size: 1 -> 2" in lines
    assert "changed: t:i:R a: inputs.text: (4 bytes, 2 lines) -> (4 bytes, 2 lines)" in lines
    assert "-y" in lines and "+z" in lines  # --text: the unified diff of the text


def test_a_file_bundle_is_compared_by_path_not_by_position(tmp_path: Path) -> None:
    files = [{"path": "/b", "content": "b"}, {"path": "/c", "content": "c"}]
    before = _plan(_resource("bundle", files=files))
    after = _plan(_resource("bundle", files=[{"path": "/a", "content": "a"}, *files]))
    result = _diff(tmp_path, before, after)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        'changed: t:i:R bundle: inputs.files[/a]: (absent) -> {"content": "a", "path": "/a"}'
    ]


def test_a_type_renamed_under_an_alias_reads_as_moved_not_replaced(tmp_path: Path) -> None:
    before = _plan({**_resource("db", size=1), "type": "clipper:data:ManagedPostgres"})
    renamed = {**_resource("db", size=1), "type": "clipper:database:ManagedPostgres"}
    after = _plan({**renamed, "options": {"aliases": ["clipper:data:ManagedPostgres"]}})
    result = _diff(tmp_path, before, after)
    assert result.stdout.splitlines() == [
        "moved (aliased): clipper:data:ManagedPostgres -> clipper:database:ManagedPostgres db"
    ]
    # Without the alias the engine would replace it: removed and added.
    unaliased = _diff(tmp_path, before, _plan(renamed)).stdout.splitlines()
    assert unaliased == [
        "added resource: clipper:database:ManagedPostgres db",
        "removed resource: clipper:data:ManagedPostgres db",
    ]


def test_an_unreadable_plan_is_an_error_not_a_difference(tmp_path: Path) -> None:
    result = _diff(tmp_path, "{not json", _plan())
    assert result.returncode == 2
    assert result.stderr.startswith("plan-diff: ")


def test_the_real_plan_equals_itself_and_shows_a_changed_user_data(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "components", "plan", "--stack", "staging", "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    plan = json.loads(proc.stdout)
    assert _diff(tmp_path, plan, plan).returncode == 0
    changed = copy.deepcopy(plan)
    droplet = next(r for r in changed["resources"] if r["type"].endswith("droplet:Droplet"))
    droplet["inputs"]["userData"] += "# one more line\n"
    result = _diff(tmp_path, plan, changed)
    assert result.returncode == 1
    (line,) = result.stdout.splitlines()
    assert line.startswith(f"changed: {droplet['type']} {droplet['name']}: inputs.userData: (")
