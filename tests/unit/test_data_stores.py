"""Managed PostgreSQL and Valkey under mocks, for both stacks, and the settings that size them."""

from __future__ import annotations

import pytest

from components.database import APP_DATABASE, APP_USER, POOL_NAME
from components.host.files import role_tag
from components.offline.mocks import Registration
from components.offline.runner import ProgramRun, stack_config
from components.settings import PROJECT, SettingsError, parse_settings, slugs
from tests.support.program import custom_run, plain, stack_run

CLUSTER = "digitalocean:index/databaseCluster:DatabaseCluster"
DB_FIREWALL = "digitalocean:index/databaseFirewall:DatabaseFirewall"
POOL = "digitalocean:index/databaseConnectionPool:DatabaseConnectionPool"
REPLICA = "digitalocean:index/databaseReplica:DatabaseReplica"
PG_CONFIG = "digitalocean:index/databasePostgresqlConfig:DatabasePostgresqlConfig"
VALKEY_CONFIG = "digitalocean:index/databaseValkeyConfig:DatabaseValkeyConfig"
STACKS = ["staging", "production"]


def _cluster(run: ProgramRun, engine: str) -> Registration:
    (cluster,) = [r for r in run.of_type(CLUSTER) if r.inputs["engine"] == engine]
    return cluster


# ---------------------------------------------------------------- PostgreSQL


def test_production_database_has_a_standby_node_and_is_protected() -> None:
    cluster = _cluster(stack_run("production"), "pg")
    assert cluster.inputs["nodeCount"] >= 2
    assert cluster.protect and cluster.retain_on_delete


def test_staging_database_has_one_node_and_no_protection() -> None:
    cluster = _cluster(stack_run("staging"), "pg")
    assert cluster.inputs["nodeCount"] == 1
    assert not cluster.protect and not cluster.retain_on_delete


@pytest.mark.parametrize("stack", STACKS)
def test_database_is_postgresql_17_in_the_stack_vpc_with_a_maintenance_window(stack: str) -> None:
    run = stack_run(stack)
    cluster = _cluster(run, "pg")
    assert cluster.inputs["version"] == "17"
    assert cluster.inputs["region"] == "nyc3"
    assert cluster.inputs["privateNetworkUuid"] == run.outputs["vpcId"].value
    assert cluster.inputs["maintenanceWindows"] == [{"day": "sunday", "hour": "04:00"}]


@pytest.mark.parametrize("stack", STACKS)
def test_database_and_cache_firewalls_trust_only_the_app_and_monitoring_tags(stack: str) -> None:
    run = stack_run(stack)
    firewalls = run.of_type(DB_FIREWALL)
    assert len(firewalls) == 2  # one per cluster
    for firewall in firewalls:
        assert plain(firewall.inputs["rules"]) == [
            {"type": "tag", "value": role_tag(stack, role)} for role in ("app", "monitoring")
        ]


@pytest.mark.parametrize("stack", STACKS)
def test_each_cluster_has_its_own_firewall(stack: str) -> None:
    run = stack_run(stack)
    guarded = {plain(f.inputs["clusterId"]) for f in run.of_type(DB_FIREWALL)}
    clusters = {c.name: c for c in run.of_type(CLUSTER)}
    parents = {run.parent_name(f) for f in run.of_type(DB_FIREWALL)}
    assert len(guarded) == 2
    assert parents == {run.parent_name(c) for c in clusters.values()}


@pytest.mark.parametrize("stack", STACKS)
def test_the_app_database_and_user_exist(stack: str) -> None:
    run = stack_run(stack)
    dbs = run.of_type("digitalocean:index/databaseDb:DatabaseDb")
    users = run.of_type("digitalocean:index/databaseUser:DatabaseUser")
    assert [d.inputs["name"] for d in dbs] == [APP_DATABASE]
    assert [u.inputs["name"] for u in users] == [APP_USER]


@pytest.mark.parametrize("stack", STACKS)
def test_the_app_connects_through_a_session_mode_pool_sized_from_settings(stack: str) -> None:
    run = stack_run(stack)
    (pool,) = run.of_type(POOL)
    expected = {"staging": 40, "production": 150}[stack]
    # pgx caches prepared statements per connection: transaction mode would break them.
    assert pool.inputs["mode"] == "session"
    assert pool.inputs["size"] == expected
    assert pool.inputs["dbName"] == APP_DATABASE
    assert pool.inputs["user"] == APP_USER
    assert pool.inputs["name"] == POOL_NAME


def test_a_direct_connection_declares_no_pool_and_points_the_app_at_the_primary() -> None:
    run = custom_run("staging", overrides={"dbConnection": "direct"})
    assert run.of_type(POOL) == []
    cluster = _cluster(run, "pg")
    uri = str(plain(run.outputs["databaseUri"].value))
    assert f"@{cluster.outputs['privateHost']}:25060/{APP_DATABASE}?sslmode=require" in uri
    assert run.outputs["databaseUri"].secret


def test_the_pooled_connection_string_names_the_pool_on_its_private_host() -> None:
    run = stack_run("production")
    (pool,) = run.of_type(POOL)
    uri = str(plain(run.outputs["databaseUri"].value))
    assert uri.startswith(f"postgresql://{APP_USER}:")
    assert f"@{pool.outputs['privateHost']}:25061/{POOL_NAME}?sslmode=require" in uri


@pytest.mark.parametrize(("stack", "ms"), [("staging", 250), ("production", 500)])
def test_slow_queries_are_logged_from_the_settings_threshold(stack: str, ms: int) -> None:
    (config,) = stack_run(stack).of_type(PG_CONFIG)
    assert config.inputs["logMinDurationStatement"] == ms


def test_production_has_a_read_replica_of_the_configured_size_in_the_vpc() -> None:
    run = stack_run("production")
    (replica,) = run.of_type(REPLICA)
    assert (
        replica.inputs["size"] == "db-s-4vcpu-8gb"
    )  # the primary's size: a replica may not be smaller
    assert replica.inputs["privateNetworkUuid"] == run.outputs["vpcId"].value


def test_staging_has_no_read_replica() -> None:
    assert stack_run("staging").of_type(REPLICA) == []


# ---------------------------------------------------------------- Valkey


@pytest.mark.parametrize("stack", STACKS)
def test_cache_is_valkey_in_the_vpc_with_settings_eviction_and_tls_only(stack: str) -> None:
    run = stack_run(stack)
    cache = _cluster(run, "valkey")
    (config,) = run.of_type(VALKEY_CONFIG)
    assert cache.inputs["version"] == "8"
    assert cache.inputs["evictionPolicy"] == "allkeys_lru"
    assert cache.inputs["privateNetworkUuid"] == run.outputs["vpcId"].value
    assert config.inputs["ssl"] is True
    assert config.inputs["persistence"] == {"staging": "off", "production": "rdb"}[stack]
    assert (
        cache.inputs["size"] == {"staging": "db-s-1vcpu-1gb", "production": "db-s-1vcpu-2gb"}[stack]
    )
    assert cache.inputs["nodeCount"] == {"staging": 1, "production": 2}[stack]


def test_the_cache_shares_the_database_maintenance_window() -> None:
    run = custom_run(
        "staging", overrides={"dbMaintenanceDay": "wednesday", "dbMaintenanceHour": "02:30"}
    )
    for engine in ("pg", "valkey"):
        assert _cluster(run, engine).inputs["maintenanceWindows"] == [
            {"day": "wednesday", "hour": "02:30"}
        ], engine


def test_production_cache_is_protected_and_staging_cache_is_not() -> None:
    assert _cluster(stack_run("production"), "valkey").protect
    assert not _cluster(stack_run("staging"), "valkey").protect


def test_no_engine_is_the_retired_managed_redis() -> None:
    for stack in STACKS:
        assert {c.inputs["engine"] for c in stack_run(stack).of_type(CLUSTER)} == {"pg", "valkey"}


# ---------------------------------------------------------------- settings that size them


def _settings_with(stack: str, **overrides: str) -> None:
    config, secret_keys = stack_config(stack, overrides=overrides)
    raw = {k.split(":", 1)[1]: v for k, v in config.items()}
    parse_settings(stack, raw, {k.split(":", 1)[1] for k in secret_keys})


def test_connection_limits_follow_digitalocean_25_per_gib_less_3() -> None:
    assert slugs.postgres_connection_limit("db-s-1vcpu-1gb") == 22
    assert slugs.postgres_connection_limit("db-s-1vcpu-2gb") == 47
    assert slugs.postgres_connection_limit("db-s-4vcpu-8gb") == 197
    assert set(slugs.DATABASE_MEMORY_GIB) == set(slugs.DATABASE_SIZES)


def test_a_pool_larger_than_the_database_size_allows_is_refused() -> None:
    with pytest.raises(SettingsError) as err:
        _settings_with("staging", dbPoolSize="45")  # 47 - 5 headroom = 42
    assert f"{PROJECT}:dbPoolSize = 45" in str(err.value)
    assert "at most 42" in str(err.value)


def test_the_largest_pool_that_leaves_headroom_is_accepted() -> None:
    _settings_with("staging", dbPoolSize="42")
    _settings_with("production", dbPoolSize="192")


def test_pool_size_is_not_limited_by_size_when_connecting_directly() -> None:
    _settings_with("staging", dbPoolSize="45", dbConnection="direct")
