"""Every input the program declares, in both stacks, fits the provider's own schema."""

from __future__ import annotations

import copy

import pytest

from components.offline.runner import ProgramRun
from tests.support.program import stack_run
from tests.support.provider_schema import args_classes, check_resource

STACKS = ["staging", "production"]


def _problems(run: ProgramRun) -> list[str]:
    return [
        problem
        for r in run.registrations
        if r.custom
        for problem in check_resource(r.type, r.name, dict(r.inputs))
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_every_declared_input_matches_the_provider_schema(stack: str) -> None:
    run = stack_run(stack)
    checked = {r.type for r in run.registrations if r.custom}
    assert len(checked) >= 20, checked
    assert _problems(run) == []


def test_the_schema_comes_from_the_installed_sdks() -> None:
    classes = args_classes()
    assert classes["digitalocean:index/droplet:Droplet"].__name__ == "DropletArgs"
    assert classes["command:remote:Command"].__module__.startswith("pulumi_command.remote")
    assert len(classes) > 100


def test_a_misspelt_nested_key_is_caught() -> None:
    (lb,) = stack_run("production").of_type("digitalocean:index/loadBalancer:LoadBalancer")
    inputs = copy.deepcopy(dict(lb.inputs))
    health = inputs["healthcheck"]
    health["checkIntervalSecond"] = health.pop("checkIntervalSeconds")
    (problem,) = check_resource(lb.type, lb.name, inputs)
    assert "healthcheck.checkIntervalSecond: not an input of LoadBalancerHealthcheckArgs" in problem
    assert "did you mean 'checkIntervalSeconds'" in problem


def test_a_missing_nested_required_key_and_a_wrong_type_are_caught() -> None:
    (lb,) = stack_run("production").of_type("digitalocean:index/loadBalancer:LoadBalancer")
    inputs = copy.deepcopy(dict(lb.inputs))
    del inputs["forwardingRules"][0]["entryPort"]
    inputs["sizeUnit"] = "two"
    problems = check_resource(lb.type, lb.name, inputs)
    assert any("forwardingRules[0].entryPort: required" in p for p in problems), problems
    assert any(p.startswith(f"{lb.name}.sizeUnit: ") for p in problems), problems
