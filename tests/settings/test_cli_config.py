"""The offline engine refuses what the Pulumi CLI refuses in a stack file, before the program."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from components.offline.cli_config import cli_config_problems
from components.offline.runner import PROJECT_DIR, run_program, stack_file
from components.settings import PROJECT, SettingsError

PROJECT_CONFIG = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]


def _problems(stack: str = "staging", **overrides: Any) -> list[str]:
    return cli_config_problems(PROJECT, stack, *stack_file(stack, overrides=overrides))


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_the_committed_stack_files_pass_the_clis_checks(stack: str) -> None:
    assert _problems(stack) == []


def test_a_missing_key_without_default_is_refused_as_the_cli_does() -> None:
    (problem,) = _problems(domain=None)
    assert problem.startswith(f"{PROJECT}:domain is not set")
    assert problem.endswith("Stack 'staging' is missing configuration value 'domain'")
    both = _problems(domain=None, environment=None)
    assert all("missing configuration values 'domain' and 'environment'" in p for p in both)
    with pytest.raises(SettingsError):
        run_program("staging", overrides={"domain": None})


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        ("appCount", "two", "integer"),
        ("appCount", 1.5, "integer"),
        ("appCount", True, "integer"),
        ("appIpv6", "yes", "boolean"),
        ("appIpv6", "True", "boolean"),
        ("adminCidrs", "203.0.113.0/24", "array<string>"),
        ("adminCidrs", [1], "array<string>"),
        ("domain", ["a.example.com"], "string"),
    ],
)
def test_a_value_of_the_wrong_declared_type_is_refused(key: str, value: Any, kind: str) -> None:
    (problem,) = _problems(**{key: value})
    assert problem.startswith(f"{PROJECT}:{key} = ")
    assert problem.endswith(f"with configuration key '{key}' must be of type '{kind}'")


@pytest.mark.parametrize(
    ("key", "value"),
    [("appCount", 2), ("appCount", "2"), ("appCount", "+2"), ("appIpv6", True),
     ("appIpv6", "false"), ("dbVersion", 17), ("adminCidrs", ["203.0.113.0/24"])],
)  # fmt: skip
def test_values_the_cli_holds_as_the_declared_type_pass(key: str, value: Any) -> None:
    assert _problems(**{key: value}) == []


def test_every_declared_key_has_a_type_the_check_knows() -> None:
    kinds = {spec["type"] for spec in PROJECT_CONFIG.values()}
    assert kinds <= {"string", "integer", "boolean", "array", "object"}
