"""Bad stack settings are rejected early, all at once, naming the key, the value and the rule."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.__main__ import main as cli
from components.offline.runner import PROJECT_DIR, stack_config
from components.settings import PROJECT, SettingsError, parse_settings

KEY = f"{PROJECT}:"


def raw_config(stack: str = "staging", **overrides: Any) -> tuple[dict[str, Any], set[str]]:
    """A stack's config as the program receives it, without the namespace, plus secret keys."""
    config, secret_keys = stack_config(stack, overrides=overrides)
    raw = {k[len(KEY) :]: v for k, v in config.items() if k.startswith(KEY)}
    return raw, {k[len(KEY) :] for k in secret_keys}


def problems_for(stack: str = "staging", **overrides: Any) -> list[str]:
    raw, secrets = raw_config(stack, **overrides)
    with pytest.raises(SettingsError) as err:
        parse_settings(stack, raw, secret_keys_set=secrets)
    return err.value.problems


# (key, bad value, a phrase the message must contain). Each is one distinct mistake.
BAD_VALUES: list[tuple[str, Any, str]] = [
    ("environment", "prod", "'staging' or 'production'"),
    ("region", "nyc9", "allowed: ams3"),
    ("region", "NYC3", "not a known DigitalOcean region"),
    ("domain", "Clipper.Example.com", "lower-case DNS name"),
    ("domain", "clipper", "lower-case DNS name"),
    ("vpcIpRange", "8.8.8.0/24", "private IPv4 range"),
    ("vpcIpRange", "10.0.0.1/20", "not a CIDR network"),
    ("adminCidrs", ["0.0.0.0/0"], "opens SSH to the whole internet"),
    ("adminCidrs", ["::/0"], "opens SSH to the whole internet"),
    ("adminCidrs", ["203.0.113.300/24"], "not a CIDR network"),
    ("adminCidrs", [], "at least 1 item"),
    ("sshAdminPublicKeys", ["not-a-key"], "OpenSSH public key"),
    ("sshKeyFingerprints", ["3b:16:bf"], "MD5 key fingerprint"),
    ("appCount", "0", "greater than or equal to 1"),
    ("appCount", "11", "less than or equal to 10"),
    ("appCount", "two", "valid integer"),
    ("appSize", "s-1vcpu-512mb-10gb", "not a known droplet size"),
    ("appImage", "debian-12-x64", "Ubuntu LTS image"),
    ("appSwapMb", "-1", "greater than or equal to 0"),
    ("appIpv6", "maybe", "valid boolean"),
    ("appBackupPlan", "hourly", "not a known backup plan"),
    ("appBackupWeekday", "Sunday", "not a known backup weekday"),
    ("appBackupHour", "5", "allowed: 0, 4, 8, 12, 16, 20"),
    ("imageBackend", "ghcr.io/subculture-collective/clipper/backend", "no tag or digest"),
    ("imageBackend", "ghcr.io/subculture-collective/clipper/backend:latest", "'latest'"),
    ("imageFrontend", "Not An Image", "not an image reference"),
    ("imageMigrate", "migrate/migrate:v4.17.0", "pinned by digest"),
    ("releaseKeep", "0", "greater than or equal to 1"),
    ("releaseReadyTimeoutSeconds", "5", "greater than or equal to 10"),
    ("twitchClientId", "", "at least 1 character"),
    ("corsAllowedOrigins", ["http://staging.clipper.example.com"], "https origin"),
    ("corsAllowedOrigins", ["https://other.example.com"], "must be the site"),
    ("websocketAllowedOrigins", ["https://x.example.com/path"], "https origin with no path"),
    ("dbVersion", "15", "not a known PostgreSQL version"),
    ("dbSize", "db-s-1vcpu-3gb", "did you mean 'db-s-1vcpu-2gb'"),
    ("dbNodeCount", "4", "less than or equal to 3"),
    ("dbMaintenanceDay", "funday", "not a known weekday"),
    ("dbMaintenanceHour", "25:00", "HH:MM"),
    ("dbConnection", "transaction-pool", "'session-pool' or 'direct'"),
    ("cacheVersion", "7", "not a known Valkey version"),
    ("cacheEvictionPolicy", "allkeys-lru", "did you mean 'allkeys_lru'"),
    ("cachePersistence", "aof", "not a known persistence mode"),
    ("cacheTunnelPort", "80", "greater than or equal to 1024"),
    ("edgeEntry", "cloudflare", "'reserved-ip' or 'load-balancer'"),
    ("acmeEmail", "ops-at-example", "not an email address"),
    ("cspMode", "off", "'report-only' or 'enforce'"),
    ("apiRateLimitRps", "0", "greater than or equal to 1"),
    ("apiRateBurst", "5", "a burst below its rate"),
    ("clientMaxBodyMb", "500", "less than or equal to 100"),
    ("hstsMaxAgeSeconds", "86400", "greater than or equal to 31536000"),
    ("dnsTtl", "10", "greater than or equal to 30"),
    ("alertEmails", [], "at least 1 item"),
    ("alertEmails", ["oncall"], "not an email address"),
    ("alertCpuPercent", "150", "less than or equal to 100"),
]


@pytest.mark.parametrize(
    ("key", "value", "phrase"), BAD_VALUES, ids=[f"{k}={v}" for k, v, _ in BAD_VALUES]
)
def test_a_bad_value_is_rejected_naming_key_value_and_rule(
    key: str, value: Any, phrase: str
) -> None:
    problems = problems_for(**{key: value})
    mine = [p for p in problems if f"{KEY}{key}" in p]
    assert mine, f"no message names {key}: {problems}"
    assert any(phrase in p for p in mine), f"{phrase!r} not in {mine}"


def test_there_are_at_least_25_distinct_bad_inputs() -> None:
    assert len({(k, str(v)) for k, v, _ in BAD_VALUES}) >= 25


def test_a_misspelt_key_is_rejected_with_a_suggestion() -> None:
    problems = problems_for(appCuont="2")
    assert any(
        "clipper-infra:appCuont" in p and "unknown key" in p and "did you mean 'appCount'" in p
        for p in problems
    ), problems


def test_every_problem_of_a_run_is_reported_together() -> None:
    problems = problems_for(region="mars1", appCount="0", dbSize="huge", typoKey="x")
    keys = ["region", "appCount", "dbSize", "typoKey"]
    for key in keys:
        assert any(f"{KEY}{key}" in p for p in problems), f"{key} missing from {problems}"


def test_more_than_one_droplet_needs_the_load_balancer() -> None:
    problems = problems_for(appCount="2")
    assert any("edgeEntry" in p and "load-balancer" in p for p in problems), problems


def test_a_production_environment_must_protect_its_database() -> None:
    problems = problems_for("production", dbProtect="false")
    assert any("dbProtect" in p and "protect" in p for p in problems), problems


def test_a_missing_required_secret_names_the_command_to_run() -> None:
    raw, _ = raw_config()
    raw.pop("twitchClientSecret", None)
    with pytest.raises(SettingsError) as err:
        parse_settings("production", raw, secret_keys_set=set())
    assert "pulumi config set --secret twitchClientSecret <value> -s production" in str(err.value)


def test_a_secret_set_in_plain_text_is_rejected() -> None:
    raw, _ = raw_config()
    with pytest.raises(SettingsError) as err:
        parse_settings("staging", raw, plain_keys_set={"twitchClientSecret"})
    assert "clipper-infra:twitchClientSecret is stored in plain text" in str(err.value)


def test_half_a_jwt_key_pair_is_rejected() -> None:
    raw, secrets = raw_config()
    with pytest.raises(SettingsError) as err:
        parse_settings("staging", raw, secret_keys_set=secrets | {"jwtPrivateKey"})
    assert "jwtPrivateKey/jwtPublicKey" in str(err.value)


def test_a_slack_channel_needs_its_webhook_secret() -> None:
    raw, secrets = raw_config("staging", alertSlackChannel="#ops")
    with pytest.raises(SettingsError) as err:
        parse_settings("staging", raw, secret_keys_set=secrets - {"alertSlackWebhookUrl"})
    assert "alertSlackWebhookUrl" in str(err.value)


@pytest.mark.parametrize("stack", ["staging", "production"])
def test_the_committed_stack_files_are_valid(stack: str) -> None:
    raw, secrets = raw_config(stack)
    settings = parse_settings(stack, raw, secret_keys_set=secrets)
    assert settings.environment == stack


# ------------------------------------------------------------- the command line: exit code 2


def _project_with_stack_file(tmp_path: Path, stack_values: dict[str, Any]) -> Path:
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(PROJECT_DIR / name, tmp_path / name)
    base = yaml.safe_load((PROJECT_DIR / "Pulumi.staging.yaml").read_text())
    base["config"].update({f"{KEY}{k}": v for k, v in stack_values.items()})
    (tmp_path / "Pulumi.bad.yaml").write_text(yaml.safe_dump(base))
    return tmp_path


# Values the Pulumi CLI itself refuses against Pulumi.yaml's declared type, before the program.
CLI_REFUSES: dict[str, str] = {
    "appCount=two": "with configuration key 'appCount' must be of type 'integer'",
    "appIpv6=maybe": "with configuration key 'appIpv6' must be of type 'boolean'",
}


@pytest.mark.parametrize(
    ("key", "value", "phrase"), BAD_VALUES[:30], ids=[k for k, _, _ in BAD_VALUES[:30]]
)
def test_plan_exits_2_on_a_bad_stack_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: Any, phrase: str
) -> None:
    project = _project_with_stack_file(tmp_path, {key: value})
    code = cli(["plan", "--stack", "bad", "--project-dir", str(project)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{KEY}{key}" in err and CLI_REFUSES.get(f"{key}={value}", phrase) in err
    assert "Traceback" not in err


def test_plan_exits_2_in_a_real_process_without_a_traceback(tmp_path: Path) -> None:
    project = _project_with_stack_file(tmp_path, {"region": "nyc9", "appCuont": "1"})
    command = ["plan", "--stack", "bad", "--project-dir", str(project)]
    result = subprocess.run(
        [sys.executable, "-m", "components", *command],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert 'clipper-infra:region = "nyc9"' in result.stderr
    assert "clipper-infra:appCuont" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
