"""DigitalOcean's rules (components/provider/rules.py): each refused by settings, with a source."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.offline.runner import PROJECT_DIR, run_program
from components.provider import rules as provider_rules
from components.provider.rules import RULES, vpc_overlaps
from components.settings import PROJECT, SettingsError, sibling_vpc_ranges
from tests.support.program import settings_for

KEY = f"{PROJECT}:"

# rule name -> (stack, overrides, the key named, a phrase of the message)
BAD_CONFIGS: dict[str, tuple[str, dict[str, Any], str, str]] = {
    "replica-at-least-primary": (
        "production", {"dbReadReplicaSize": "db-s-2vcpu-4gb"}, "dbSize", "same size or larger"
    ),
    "database-standbys": (
        "staging", {"dbSize": "db-s-1vcpu-1gb", "dbNodeCount": "2", "dbPoolSize": "10"},
        "dbNodeCount", "2 GiB or more",
    ),
    "cache-standbys": (
        "staging", {"cacheSize": "db-s-1vcpu-1gb", "cacheNodeCount": "2"},
        "cacheNodeCount", "2 GiB or more",
    ),
    "connection-pools-within-limit": (
        "staging", {"dbPoolSize": "45"}, "dbPoolSize", "25 per GiB minus 3"
    ),
    "vpc-range-private": ("staging", {"vpcIpRange": "169.254.0.0/16"}, "vpcIpRange", "RFC 1918"),
    "engine-versions-offered": ("staging", {"dbVersion": "14"}, "dbVersion", "allowed: 16, 17"),
    "droplet-backup-window": ("staging", {"appBackupHour": "5"}, "appBackupHour", "0, 4, 8"),
    "spaces-region": ("staging", {"region": "nyc1"}, "backupRegion", "no Spaces"),
    "managed-certificate-needs-dns": (
        "production", {"dnsManageDomain": "false"}, "dnsManageDomain", "Let's Encrypt"
    ),
}  # fmt: skip
# Rules whose bad value the settings' own bounds already exclude, checked as functions below;
# and those checked elsewhere (cross-stack here, the program's constant in the unit tests).
GUARDS = {"lb-idle-timeout", "trusted-source-addresses"}
ELSEWHERE = {"vpc-ranges-disjoint", "uptime-alert-period"}


def test_every_rule_has_a_source_and_a_bad_config_test() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names)) >= 12
    for rule in RULES:
        assert any(s in rule.source for s in ("https://", ".go", ".md")), rule
    assert set(names) == set(BAD_CONFIGS) | GUARDS | ELSEWHERE


@pytest.mark.parametrize("rule", sorted(BAD_CONFIGS))
def test_settings_refuse_what_the_api_would_refuse(rule: str) -> None:
    stack, overrides, other_key, phrase = BAD_CONFIGS[rule]
    with pytest.raises(SettingsError) as err:
        settings_for(stack, **overrides)
    named = [p for p in err.value.problems if f"{KEY}{other_key}" in p]
    assert any(phrase in p for p in named), err.value.problems
    first_key = next(iter(overrides))
    assert any(f"{KEY}{first_key}" in p or f"{KEY}{other_key}" in p for p in named)


@pytest.mark.parametrize(
    "value", ["169.254.0.0/16", "100.64.0.0/16", "198.18.0.0/16", "10.0.0.0/8", "10.0.0.0/25"]
)
def test_a_vpc_range_outside_rfc1918_or_the_size_bounds_is_refused(value: str) -> None:
    with pytest.raises(SettingsError) as err:
        settings_for("staging", vpcIpRange=value)
    assert any(f'{KEY}vpcIpRange = "{value}"' in p for p in err.value.problems)


@pytest.mark.parametrize("value", ["10.0.0.0/16", "172.16.4.0/24", "192.168.0.0/20"])
def test_rfc1918_ranges_from_16_to_24_are_accepted(value: str) -> None:
    assert settings_for("staging", vpcIpRange=value).vpc_ip_range == value


def test_standby_rules_accept_two_standbys_on_a_2_gib_plan() -> None:
    settings_for("staging", dbNodeCount="3")  # db-s-1vcpu-2gb: primary + 2 standbys
    settings_for("staging", cacheSize="db-s-1vcpu-2gb", cacheNodeCount="3")


def test_the_guards_refuse_values_beyond_the_api_limits() -> None:
    s = settings_for("production")
    assert provider_rules.lb_idle_timeout(s) == 600  # 3600 s for nginx, capped for the LB
    short = s.model_copy(update={"websocket_read_timeout_seconds": 20})
    assert "30..600 s" in (provider_rules._idle_timeout(short) or "")
    crowded = s.model_copy(update={"app_count": 50})
    assert "allows 100" in (provider_rules._trusted_sources(crowded) or "")
    assert provider_rules._idle_timeout(s) is None and provider_rules._trusted_sources(s) is None


def test_replica_size_compares_vcpus_and_memory() -> None:
    assert provider_rules.size_shape("db-s-4vcpu-8gb") == (4, 8)
    assert provider_rules.size_shape("gd-2vcpu-8gb") == (2, 8)
    # Same memory, fewer vCPUs: still smaller.
    with pytest.raises(SettingsError):
        settings_for("production", dbSize="db-s-4vcpu-8gb", dbReadReplicaSize="gd-2vcpu-8gb")


# ---------------------------------------------------------------- across stacks: one account


def test_the_committed_stacks_vpc_ranges_are_disjoint() -> None:
    ranges = {stack: settings_for(stack).vpc_ip_range for stack in ("staging", "production")}
    assert sibling_vpc_ranges(PROJECT_DIR, "staging") == {"production": ranges["production"]}
    assert vpc_overlaps("staging", ranges["staging"], ranges) == []
    assert vpc_overlaps("production", ranges["production"], ranges) == []


def _two_stacks(tmp_path: Path, staging_range: str) -> Path:
    for name in ("Pulumi.yaml", "__main__.py", "Pulumi.production.yaml"):
        shutil.copy(PROJECT_DIR / name, tmp_path / name)
    staging = yaml.safe_load((PROJECT_DIR / "Pulumi.staging.yaml").read_text())
    staging["config"][f"{KEY}vpcIpRange"] = staging_range
    (tmp_path / "Pulumi.staging.yaml").write_text(yaml.safe_dump(staging))
    return tmp_path


def test_a_stack_whose_vpc_overlaps_another_stack_file_is_refused(tmp_path: Path) -> None:
    production = settings_for("production").vpc_ip_range  # 10.130.0.0/20
    project = _two_stacks(tmp_path, "10.130.8.0/24")
    with pytest.raises(SettingsError) as err:
        run_program("staging", project_dir=project)
    (problem,) = [p for p in err.value.problems if "overlaps" in p]
    assert f'{KEY}vpcIpRange = "10.130.8.0/24" overlaps stack production' in problem
    assert production in problem


def test_a_disjoint_range_in_the_same_project_is_accepted(tmp_path: Path) -> None:
    run_program("staging", project_dir=_two_stacks(tmp_path, "10.140.0.0/20"))
