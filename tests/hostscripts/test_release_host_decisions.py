"""The host package's newer decisions, as tables: migration advice, "latest" backups, drill
leftovers, the release metrics textfile, and release records of the wrong shape."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from clipper import backup_plan, metrics, migrations
from clipper.book import ReleaseBook
from clipper.errors import ConfigError, HostError

NOW = dt.datetime(2026, 12, 2, 6, 0, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("output", "says", "forces"),
    [
        ('error: failed to open database: pq: password authentication failed for user "app"',
         "could not log in", False),
        ("error: failed to open database: dial tcp 10.0.0.5:25060: connect: connection refused",
         "could not reach the database", False),
        ("error: migration failed: canceling statement due to lock timeout in line 0: ALTER",
         "waited more than 1s for a table lock", False),
        ("error: migration failed: canceling statement due to statement timeout in line 0",
         "ran longer than 15min", False),
        ('error: migration failed: relation "no_such_table" does not exist in line 0',
         "marks the schema dirty", True),
    ],
)  # fmt: skip
def test_migration_failures_are_explained_and_only_sql_errors_advise_migrate_force(
    output: str, says: str, forces: bool
) -> None:
    advice = migrations.migration_failure_advice(output)
    assert says in advice
    assert ("migrate-force" in advice) is forces


def test_a_failed_version_read_never_advises_migrate_force() -> None:
    advice = migrations.migration_failure_advice("error: something odd", ran_sql=False)
    assert "migrate-force" not in advice


def test_only_a_timeout_counts_as_a_clean_roll_back() -> None:
    assert migrations.rolled_back_cleanly("canceling statement due to lock timeout")
    assert not migrations.rolled_back_cleanly('relation "x" does not exist')


def test_migrations_run_with_bounded_lock_waits_and_the_password_only_in_the_environment() -> None:
    login = migrations.MigrateLogin("postgres://app@db:25060/clipper?sslmode=require", "s3cret")
    assert migrations.migrate_environment(login) == {
        "PGPASSWORD": "s3cret",
        "PGOPTIONS": "-c lock_timeout=1s -c statement_timeout=15min",
    }


def _backup(stamp: str) -> list[str]:
    day = f"{stamp[:4]}/{stamp[4:6]}/{stamp[6:8]}"
    return [f"p/postgres/{day}/{stamp}.dump", f"p/postgres/{day}/{stamp}.json"]


def test_latest_is_never_a_backup_stamped_in_the_future() -> None:
    keys = [*_backup("20261201T031500Z"), *_backup("20300101T000000Z")]
    assert backup_plan.manifest_key_for("latest", "p", keys, NOW).endswith("20261201T031500Z.json")
    with pytest.raises(HostError, match="1 stamped in the future, ignored"):
        backup_plan.manifest_key_for("latest", "p", _backup("20300101T000000Z"), NOW)
    # A few minutes of clock skew on the host that made it is not "the future".
    skewed = _backup("20261202T060300Z")
    assert backup_plan.manifest_key_for("latest", "p", skewed, NOW).endswith("060300Z.json")


def test_a_killed_drills_scratch_database_is_recognised_and_nothing_else() -> None:
    names = [
        "clipper",
        "clipper_drill_20261201t031500z",
        "clipper_drill_x",
        "other_drill_20261201t031500z",
    ]
    assert backup_plan.leftover_drill_databases("clipper", names) == [
        "clipper_drill_20261201t031500z"
    ]
    assert backup_plan.drill_database("clipper", NOW) == "clipper_drill_20261202t060000z"


@pytest.mark.parametrize(("free", "size", "fits"), [(10, 5, True), (5, 5, False), (0, 1, False)])
def test_a_dump_must_fit_in_the_free_space(free: int, size: int, fits: bool) -> None:
    assert backup_plan.dump_fits(free, size) is fits


SERVING = {
    "id": "v2-abcd1234",
    "color": "green",
    "images": {"backend": "ghcr.io/o/backend@sha256:" + "b" * 64, "frontend": 'f"rontend:v2'},
}


def test_the_release_metrics_follow_the_contract_with_the_monitoring_host() -> None:
    text = metrics.render_release_metrics(SERVING, 1764655200.5, True, 1764655260.25)
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert samples == [
        'clipper_release_info{release="v2-abcd1234",color="green",'
        f'backend_image="ghcr.io/o/backend@sha256:{"b" * 64}",frontend_image="f\\"rontend:v2"}} 1',
        "clipper_release_last_change_timestamp_seconds 1764655200.500",
        "clipper_release_last_attempt_success 1",
        "clipper_release_last_attempt_timestamp_seconds 1764655260.250",
    ]


def test_a_failed_first_attempt_has_no_serving_release_and_says_zero() -> None:
    text = metrics.render_release_metrics(None, None, False, 1764655260.0)
    assert "clipper_release_info" not in text
    assert "clipper_release_last_change_timestamp_seconds" not in text
    assert "clipper_release_last_attempt_success 0" in text


def test_promtool_accepts_the_release_metrics() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes from scripts/install-test-deps.sh (package prometheus)"
    text = metrics.render_release_metrics(SERVING, 1764655200.0, True, 1764655260.0)
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ([1, 2], "is not a JSON object"),
        ({"releases": {"v1": {}}}, "'releases' must be a list"),
        ({"releases": [{"images": {}}]}, "'releases' must be a list of records with an id"),
        ({"releases": [], "active": 3}, "'active' must be a release id"),
        ({"releases": [], "history": "x"}, "'history' must be a list"),
    ],
)
def test_a_release_record_of_the_wrong_shape_is_named_not_a_traceback(
    tmp_path: Path, doc: object, says: str
) -> None:
    (tmp_path / "releases.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=says) as err:
        ReleaseBook(tmp_path)
    assert str(tmp_path / "releases.json") in str(err.value)
    assert "move it aside" in str(err.value)
