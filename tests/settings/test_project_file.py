"""Pulumi.yaml declares exactly the settings the program reads, typed, described and defaulted."""

from __future__ import annotations

import typing
from typing import Any

import yaml

from components.offline.runner import PROJECT_DIR
from components.settings import SECRET_KEYS, Settings, config_keys, parse_settings

PROJECT_FILE = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
DECLARED: dict[str, dict[str, Any]] = PROJECT_FILE["config"]

# Settings with no safe default: a default domain, network, key or image would deploy wrongly.
NO_DEFAULT = {
    "environment", "domain", "vpcIpRange", "adminCidrs", "sshAdminPublicKeys", "imageBackend",
    "imageFrontend", "imageMigrations", "twitchClientId", "acmeEmail", "alertEmails",
}  # fmt: skip


def _pulumi_type(annotation: Any) -> str:
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if typing.get_origin(annotation) is list:
        return "array"
    return "string"


def test_the_project_is_named_and_runs_python_in_a_virtualenv() -> None:
    assert PROJECT_FILE["name"] == "clipper-infra"
    assert PROJECT_FILE["runtime"]["name"] == "python"
    assert PROJECT_FILE["runtime"]["options"]["virtualenv"] == ".venv"
    assert PROJECT_FILE["description"]


def test_every_setting_is_declared_with_its_type_and_description() -> None:
    assert set(DECLARED) == set(config_keys())
    for name, field in Settings.model_fields.items():
        spec = DECLARED[field.alias or name]
        assert spec["type"] == _pulumi_type(field.annotation), name
        assert spec["description"] == field.description, name


def test_every_setting_but_the_identity_ones_has_a_default() -> None:
    without = {key for key, spec in DECLARED.items() if "default" not in spec}
    assert without == NO_DEFAULT


def test_secrets_are_not_declared_with_values_in_the_project_file() -> None:
    assert not set(SECRET_KEYS) & set(DECLARED)


def test_the_defaults_are_valid_settings_on_their_own() -> None:
    raw = {key: spec["default"] for key, spec in DECLARED.items() if "default" in spec}
    raw.update(
        environment="staging", domain="clipper.example.com", vpcIpRange="10.10.0.0/20",
        adminCidrs=["203.0.113.0/24"], twitchClientId="id", acmeEmail="ops@example.com",
        sshAdminPublicKeys=["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIJV8Pg0y0utdIGf4ebKHU0NWZaD1Z x"],
        imageBackend="ghcr.io/o/backend:v1", imageFrontend="ghcr.io/o/frontend:v1",
        imageMigrations="ghcr.io/o/migrations:v1", alertEmails=["ops@example.com"],
    )  # fmt: skip
    settings = parse_settings(
        "staging", raw, secret_keys_set={"twitchClientSecret", "alertSmtpPassword"}
    )
    assert settings.db_protect is True, "the secure default protects the database"
    assert settings.csp_mode == "report-only"
