"""The program under mocks: the foundation every component builds on."""

from __future__ import annotations

import pytest

from components.offline.runner import run_program
from components.settings import SettingsError
from tests.support.program import stack_run


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_every_resource_is_parented_to_a_clipper_component(stack: str) -> None:
    run = stack_run(stack)
    for reg in run.registrations:
        if reg.type.startswith("clipper:"):
            continue
        parent = run.parent_name(reg)
        assert parent, f"{reg.type} {reg.name} is declared at the top level"


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_children_are_named_after_their_component(stack: str) -> None:
    run = stack_run(stack)
    for reg in run.registrations:
        parent = run.parent_name(reg)
        if parent:
            assert reg.name.startswith(parent), f"{reg.name} is not named after {parent}"


def test_the_two_stacks_use_separate_networks() -> None:
    staging = stack_run("staging").of_type("digitalocean:index/vpc:Vpc")[0].inputs["ipRange"]
    production = stack_run("production").of_type("digitalocean:index/vpc:Vpc")[0].inputs["ipRange"]
    assert staging != production


def test_invalid_settings_stop_the_program_before_any_resource() -> None:
    with pytest.raises(SettingsError) as err:
        run_program("staging", overrides={"appCount": "0"})
    assert "clipper-infra:appCount = 0" in str(err.value)


def test_a_missing_required_secret_says_which_command_to_run() -> None:
    with pytest.raises(SettingsError) as err:
        run_program("staging", secrets={})
    assert "pulumi config set --secret twitchClientSecret <value> -s staging" in str(err.value)


def test_site_url_is_exported_in_plain_text() -> None:
    out = stack_run("production").outputs["siteUrl"]
    assert out.value == "https://clipper.example.com"
    assert not out.secret
