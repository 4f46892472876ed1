"""The host shell scripts as shipped (components/renderers/scripts/*.sh) and the config files
rendered beside them: each script whole and linted as a file, each placed with the config it
sources, each config defining exactly what its script reads, every value arriving unchanged."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from components.renderers.host_scripts import SCRIPTS_DIR, render_script_config, script_text
from tests.support.host_scripts import sourced
from tests.support.monitoring import STACKS, role_files

SCRIPTS = sorted(p.stem for p in SCRIPTS_DIR.glob("*.sh"))
ROLES = ["app", "monitoring"]
_SOURCES = re.compile(r'^source "\$\(dirname "\$\{BASH_SOURCE\[0\]\}"\)/([\w.-]+)"$', re.M)


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def _config_name(script: str) -> str | None:
    names = _SOURCES.findall(script)
    assert len(names) <= 1, names
    return names[0] if names else None


def _read_keys(script: str) -> set[str]:
    """Upper-case variables the script reads and does not set itself (nor bash)."""
    read = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", script))
    assigned = set(re.findall(r"(?m)^\s*(?:readonly\s+)?([A-Z][A-Z0-9_]*)=", script))
    return read - assigned - {"BASH_SOURCE"}


def _config_keys(config: str) -> set[str]:
    return set(re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=", config))


def test_there_are_the_seven_host_scripts() -> None:
    assert SCRIPTS == [
        "clipper-agents-activate", "clipper-host-setup", "clipper-monitoring-activate",
        "clipper-retire-units", "clipper-tls-issue", "clipper-tls-placeholder",
        "clipper-tls-reload-nginx",
    ]  # fmt: skip


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_is_strict_bash_with_a_header_and_passes_shellcheck(name: str) -> None:
    text = script_text(name)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert lines[1].startswith("# ") and "set -euo pipefail" in lines
    header = lines[1 : lines.index("set -euo pipefail")]
    assert all(line.startswith("#") for line in header)
    # Every shellcheck directive says why.
    for line in lines:
        if line.startswith("# shellcheck "):
            assert re.fullmatch(r"# shellcheck \S+ +# \S.*", line), line
    path = SCRIPTS_DIR / f"{name}.sh"
    result = _run(["shellcheck", "-f", "gcc", "-S", "style", str(path)])
    assert result.returncode == 0, result.stdout
    # scripts/test.sh shellchecks `git ls-files '*.sh'`: the file must be tracked.
    tracked = _run(["git", "ls-files", "--error-unmatch", str(path)])
    assert tracked.returncode == 0, f"{path} is not in git: scripts/test.sh would skip it"


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_script_names_its_config_in_its_header(name: str) -> None:
    text = script_text(name)
    config = _config_name(text)
    if config is None:
        assert _read_keys(text) <= {"RENEWED_LINEAGE"}  # certbot's environment
    else:
        assert f"Fed by {config} beside it" in text


def _placed_scripts(stack: str, role: str) -> dict[str, str]:
    """Host path -> script name, for every shipped script among a role's files."""
    texts = {script_text(name): name for name in SCRIPTS}
    return {
        path: texts[file.content]
        for path, file in role_files(stack, role).items()
        if file.content in texts
    }


def test_every_script_reaches_a_host_under_its_own_name() -> None:
    placed = [
        (path, name)
        for stack in STACKS
        for role in ROLES
        for path, name in _placed_scripts(stack, role).items()
    ]
    assert all(Path(path).name == name for path, name in placed), placed
    assert {name for _, name in placed} == set(SCRIPTS)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("stack", STACKS)
def test_each_placed_script_has_its_config_beside_it_defining_what_it_reads(
    stack: str, role: str
) -> None:
    files = role_files(stack, role)
    readers: dict[str, set[str]] = {}  # config path -> what its scripts read
    for path in _placed_scripts(stack, role):
        script = files[path]
        assert script.mode == "0755", path
        name = _config_name(script.content)
        if name is not None:
            config_path = str(Path(path).parent / name)
            readers.setdefault(config_path, set()).update(_read_keys(script.content))
    for path, read in readers.items():
        config = files[path]
        assert config.mode == "0644" and config.owner == "root:root", path
        # Nothing missing, nothing unused (the TLS scripts share one config).
        assert _config_keys(config.content) == read, path
        for key in read:
            sourced(config.content, key)  # set, under `set -u`, after bash sources the file


def test_config_values_reach_the_script_unchanged_whatever_their_characters() -> None:
    tricky = ["it's", 'say "hi"', "$HOME `id` $(id)", "a;b|c&d", "  spaced  ", "", "*"]
    config = render_script_config("test", {"ONE": tricky[2], "MANY": tricky, "NONE": []})
    assert sourced(config, "ONE") == [tricky[2]]
    assert sourced(config, "MANY") == tricky
    assert sourced(config, "NONE") == []


def test_a_config_refuses_what_the_scripts_could_not_read_back() -> None:
    with pytest.raises(ValueError, match="upper-case shell name"):
        render_script_config("test", {"lower": "x"})
    with pytest.raises(ValueError, match="one line per element"):
        render_script_config("test", {"LINES": ["a\nb"]})
