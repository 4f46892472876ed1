"""The settings grouped by concern: every key in exactly one concern module, each concern a
frozen sub-model of `Settings` holding exactly its own values, validated by its own checks."""

from __future__ import annotations

import inspect
from collections import Counter
from functools import cached_property

import pytest
from pydantic import BaseModel, ValidationError

from components.settings import (
    CONCERNS,
    CacheSettings,
    DatabaseSettings,
    Settings,
    SettingsError,
    parse_settings,
)
from tests.settings.test_bad_settings import raw_config
from tests.support.program import settings_for

STACKS = ["staging", "production"]


def test_every_setting_belongs_to_exactly_one_concern() -> None:
    owners = Counter(name for concern in CONCERNS.values() for name in concern.model_fields)
    assert {name for name, count in owners.items() if count > 1} == set(), "in two concerns"
    assert set(Settings.model_fields) - set(owners) == set(), "declared in no concern"
    assert set(owners) == set(Settings.model_fields)


def test_settings_keeps_the_keys_in_the_order_of_the_concerns() -> None:
    # Problems are reported in field order: the same order as the keys in Pulumi.yaml.
    in_concern_order = [name for concern in CONCERNS.values() for name in concern.model_fields]
    assert list(Settings.model_fields) == in_concern_order


def test_every_concern_is_a_base_of_settings_and_one_of_its_attributes() -> None:
    for name, concern in CONCERNS.items():
        assert issubclass(Settings, concern)
        assert isinstance(inspect.getattr_static(Settings, name, None), cached_property), name


@pytest.mark.parametrize("stack", STACKS)
def test_each_sub_model_holds_exactly_its_concerns_values(stack: str) -> None:
    settings = settings_for(stack)
    for name, concern in CONCERNS.items():
        view = getattr(settings, name)
        assert type(view) is concern, name
        expected = {field: getattr(settings, field) for field in concern.model_fields}
        assert view.model_dump() == expected, name


def test_a_sub_model_is_frozen() -> None:
    database = settings_for("production").database
    with pytest.raises(ValidationError, match="frozen"):
        database.db_size = "db-s-1vcpu-1gb"  # type: ignore[misc]


def test_a_sub_model_is_cut_once_per_settings() -> None:
    settings = settings_for("staging")
    assert settings.database is settings.database
    assert settings == settings_for("staging"), "a cached sub-model is not part of the value"


def test_a_copy_with_changes_gets_sub_models_of_its_own_values() -> None:
    settings = settings_for("staging")
    before = settings.database.db_pool_size  # now cached on the original
    copied = settings.model_copy(update={"db_pool_size": before + 1})
    assert copied.database.db_pool_size == before + 1
    assert settings.database.db_pool_size == before


def test_the_database_keys_and_their_rules_are_the_database_concerns() -> None:
    raw, secrets = raw_config("staging", dbSize="db-s-64vcpu")
    with pytest.raises(SettingsError) as err:
        parse_settings("staging", raw, secret_keys_set=secrets)
    (problem,) = err.value.problems
    concern_keys = {f.alias for f in DatabaseSettings.model_fields.values()}
    with pytest.raises(ValidationError) as own:
        DatabaseSettings.model_validate({k: v for k, v in raw.items() if k in concern_keys})
    (error,) = own.value.errors()
    assert error["loc"] == ("dbSize",)
    assert str(error["msg"]).removeprefix("Value error, ") in problem


def test_a_concern_refuses_keys_of_another_concern() -> None:
    values = settings_for("staging").cache.model_dump(by_alias=True)
    assert CacheSettings.model_validate(values) == settings_for("staging").cache
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        CacheSettings.model_validate({**values, "dbSize": "db-s-1vcpu-1gb"})


def test_concern_models_are_plain_pydantic_models_without_settings_derivations() -> None:
    # Values tying concerns together (the stack's region, the site URL) live on Settings only.
    database = settings_for("staging").database
    assert isinstance(database, BaseModel)
    assert not hasattr(database, "effective_backup_region")
    assert not hasattr(database, "region")
