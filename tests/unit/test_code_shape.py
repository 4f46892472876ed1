"""Short functions: no constructor in components/ or hostscripts/ is over MAX_LINES lines, and a
longer plain function is there only when it is listed below with its reason (most are data: a
config document or a script as one literal). Ruff's complexity rules (C901, PLR0911/0912/0915)
watch the branching; this watches the length, which they do not."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 60

# "path::function": why it may stay longer than MAX_LINES. An entry that is no longer long fails
# the test, so the list only shrinks.
LONG_FUNCTIONS = {
    "components/renderers/alertmanager.py::render_alertmanager_config":
        "data: the alertmanager.yml document as one literal",
    "components/renderers/cloud_init.py::render_host_user_data":
        "data: the #cloud-config document as one literal",
    "components/renderers/deploy_config.py::deploy_config": "data: deploy.json as one literal",
    "components/renderers/monitoring_units.py::monitoring_containers":
        "data: the monitoring host's containers as one list",
    "components/renderers/nginx.py::render_nginx_site": "data: the site file's lines",
    "components/renderers/prometheus.py::render_prometheus_config":
        "data: prometheus.yml's scrape jobs",
    "components/renderers/prometheus.py::render_alert_rules": "data: the alert rules",
}  # fmt: skip


# The host launchers: Python without a .py name (as in ruff's extend-include).
LAUNCHERS = ("hostscripts/clipper-release", "hostscripts/clipper-backup")


def _python_files() -> list[Path]:
    """components/**/*.py, hostscripts/**/*.py and the host launchers."""
    return sorted(
        [
            *(ROOT / "components").rglob("*.py"),
            *(ROOT / "hostscripts").rglob("*.py"),
            *(ROOT / launcher for launcher in LAUNCHERS),
        ]
    )


def long_functions(source: str, max_lines: int) -> list[tuple[int, str, int, bool]]:
    """(line, name, length, is a constructor) of each function over `max_lines` lines; a
    constructor is an `__init__` defined directly in a class."""
    tree = ast.parse(source)
    constructors = {
        id(node)
        for cls in ast.walk(tree)
        if isinstance(cls, ast.ClassDef)
        for node in cls.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "__init__"
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > max_lines:
                found.append((node.lineno, node.name, length, id(node) in constructors))
    return sorted(found)


def _project_long_functions() -> list[tuple[str, int, str, int, bool]]:
    return [
        (str(path.relative_to(ROOT)), line, name, length, is_constructor)
        for path in _python_files()
        for line, name, length, is_constructor in long_functions(path.read_text(), MAX_LINES)
    ]


def test_the_guard_finds_a_long_constructor_and_a_long_function_but_not_one_at_the_limit() -> None:
    def body(lines: int, indent: str) -> str:
        return "".join(f"{indent}x{n} = {n}\n" for n in range(lines))

    source = (
        f"class A:\n    def __init__(self) -> None:\n{body(MAX_LINES, ' ' * 8)}"
        f"def f() -> None:\n{body(MAX_LINES, ' ' * 4)}"
        f"def g() -> None:\n{body(MAX_LINES - 1, ' ' * 4)}"
    )
    assert long_functions(source, MAX_LINES) == [
        (2, "__init__", MAX_LINES + 1, True),
        (MAX_LINES + 3, "f", MAX_LINES + 1, False),
    ]


def test_no_constructor_is_over_60_lines() -> None:
    too_long = [
        f"{path}:{line} {name}: {length} lines (at most {MAX_LINES}; extract named steps)"
        for path, line, name, length, is_constructor in _project_long_functions()
        if is_constructor
    ]
    assert not too_long, "\n".join(too_long)


def test_a_function_over_60_lines_is_listed_with_its_reason() -> None:
    found = {
        f"{path}::{name}": f"{path}:{line} {name}: {length} lines"
        for path, line, name, length, is_constructor in _project_long_functions()
        if not is_constructor
    }
    unlisted = [where for key, where in found.items() if key not in LONG_FUNCTIONS]
    assert not unlisted, (
        f"over {MAX_LINES} lines: split into named steps, or (only for data) list it in"
        " LONG_FUNCTIONS with the reason:\n" + "\n".join(unlisted)
    )
    stale = sorted(set(LONG_FUNCTIONS) - set(found))
    assert not stale, f"no longer over the limit (or gone): remove it from LONG_FUNCTIONS: {stale}"
