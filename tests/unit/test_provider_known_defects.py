"""The four mistakes a first real `pulumi up` would have hit, each pinned by a test.

Each was red before its fix (see the issue note): a replica smaller than its primary, an
`ssl_expiry` uptime alert without `period`, a CAA value the provider reads back changed, and an
offline plan that hid a secret stored in plain text.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.__main__ import main as cli
from components.offline.runner import PROJECT_DIR, ProviderRefusalError, run_program, stack_config
from components.provider.normalisations import dns_value_read_back as provider_read_back
from components.provider.rules import UPTIME_ALERT_PERIODS
from components.settings import PROJECT, SettingsError
from tests.support.program import plain, settings_for, stack_run

KEY = f"{PROJECT}:"
STACKS = ["staging", "production"]


# ---------------------------------------------------------------- replica vs primary


def test_a_read_replica_smaller_than_its_primary_is_refused_naming_both_keys() -> None:
    with pytest.raises(SettingsError) as err:
        settings_for("production", dbReadReplicaSize="db-s-2vcpu-4gb", dbSize="db-s-4vcpu-8gb")
    (problem,) = [p for p in err.value.problems if "dbReadReplicaSize" in p]
    assert f"{KEY}dbReadReplicaSize" in problem and f"{KEY}dbSize" in problem
    assert "db-s-2vcpu-4gb" in problem and "db-s-4vcpu-8gb" in problem
    assert "same size or larger" in problem


def test_production_declares_a_replica_at_least_as_large_as_its_primary() -> None:
    s = settings_for("production")
    assert s.db_read_replica
    (replica,) = stack_run("production").of_type(
        "digitalocean:index/databaseReplica:DatabaseReplica"
    )
    assert replica.inputs["size"] == s.db_read_replica_size
    settings_for("production", dbReadReplicaSize=s.db_size)  # the same size is allowed


# ---------------------------------------------------------------- uptime alert period


@pytest.mark.parametrize("stack", STACKS)
def test_every_uptime_alert_declares_a_period_the_api_accepts(stack: str) -> None:
    alerts = stack_run(stack).of_type("digitalocean:index/uptimeAlert:UptimeAlert")
    assert {a.inputs["type"] for a in alerts} >= {"ssl_expiry"}
    for alert in alerts:
        assert alert.inputs.get("period") in UPTIME_ALERT_PERIODS, (alert.name, alert.inputs)


# ---------------------------------------------------------------- DNS records read back


@pytest.mark.parametrize("stack", STACKS)
def test_every_dns_record_reads_back_as_declared(stack: str) -> None:
    records = stack_run(stack).of_type("digitalocean:index/dnsRecord:DnsRecord")
    assert records
    for record in records:
        declared = dict(plain(record.inputs))
        assert provider_read_back(declared) == declared["value"], declared


def test_the_read_back_rule_is_the_providers_it_appends_a_dot_except_to_iodef() -> None:
    # terraform-provider-digitalocean, digitalocean/domain/resource_record.go (Read).
    assert provider_read_back({"type": "CAA", "tag": "issuewild", "value": ";"}) == ";."
    assert provider_read_back({"type": "CAA", "tag": "issue", "value": "letsencrypt.org"}) == (
        "letsencrypt.org."
    )
    assert provider_read_back({"type": "CAA", "tag": "iodef", "value": "mailto:a@b.c"}) == (
        "mailto:a@b.c"
    )
    assert provider_read_back({"type": "A", "value": "203.0.113.7"}) == "203.0.113.7"


# ---------------------------------------------------------------- a secret in plain text


def _project_with(tmp_path: Path, stack_values: dict[str, Any]) -> Path:
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(PROJECT_DIR / name, tmp_path / name)
    base = yaml.safe_load((PROJECT_DIR / "Pulumi.staging.yaml").read_text())
    base["config"].update({f"{KEY}{k}": v for k, v in stack_values.items()})
    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump(base))
    return tmp_path


def test_a_secret_stored_in_plain_text_reaches_the_program_in_plain_text(tmp_path: Path) -> None:
    # What `pulumi preview` does: a plain stack value is passed as it is, not as a secret.
    project = _project_with(tmp_path, {"twitchClientSecret": "some-value"})
    config, secret_keys = stack_config("staging", project)
    assert config[f"{KEY}twitchClientSecret"] == "some-value"
    assert f"{KEY}twitchClientSecret" not in secret_keys


def test_the_offline_plan_refuses_a_secret_stored_in_plain_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = _project_with(tmp_path, {"twitchClientSecret": "some-value"})
    with pytest.raises(SettingsError) as err:
        run_program("staging", project_dir=project)
    assert f"{KEY}twitchClientSecret is stored in plain text" in str(err.value)
    code = cli(["plan", "--stack", "staging", "--project-dir", str(project)])
    assert code == 2
    assert "twitchClientSecret is stored in plain text" in capsys.readouterr().err


def test_an_encrypted_secret_in_the_stack_file_is_a_secret_to_the_program(tmp_path: Path) -> None:
    project = _project_with(tmp_path, {"twitchClientSecret": {"secure": "v1:AAAA:ciphertext"}})
    _, secret_keys = stack_config("staging", project)
    assert f"{KEY}twitchClientSecret" in secret_keys
    run_program("staging", project_dir=project)  # no refusal


# ---------------------------------------------------------------- the engine refuses it too


def test_the_offline_plan_refuses_an_uptime_alert_without_period_as_the_provider_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The declaration before the fix: ssl_expiry without a period.
    monkeypatch.setattr("components.alerts.SSL_EXPIRY_PERIOD", None)
    with pytest.raises(ProviderRefusalError) as err:
        run_program("staging")
    (problem,) = err.value.problems
    assert problem.startswith("staging-alerts-uptime-ssl-expiry (UptimeAlert): period is unset")
    assert "the provider would refuse 1 input(s) at preview; nothing was created" in str(err.value)
