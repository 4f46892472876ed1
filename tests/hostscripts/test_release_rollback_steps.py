"""clipper-release rollback's steps without Docker: which release it goes to, what it records
before anything moves, what it says when the old containers cannot be resumed, and what a
failed switch leaves behind. The host tests (tests/host/test_release_recovery.py,
test_release_failures.py) run the whole rollback on a real engine."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import cast

import pytest
from clipper import decisions, errors, release_cli
from clipper.book import ReleaseBook
from clipper.containers import LABEL_FINGERPRINT, LABEL_RELEASE, ColorState, ContainerState
from clipper.host import Host
from clipper.switch import Switch

from tests.support.release_records import IMAGES, RUNTIME

ENV = {"TWITCH_CLIENT_SECRET": "today", "DATABASE_URL": "postgres://app@db/clipper"}


def book_with(tmp_path: Path, ids: list[str], active: str | None) -> ReleaseBook:
    doc = {
        "schema": 1,
        "active": active,
        "releases": [{"id": rid, "images": {"backend": f"img:{rid}"}} for rid in ids],
        "history": [],
    }
    (tmp_path / "releases.json").write_text(json.dumps(doc))
    return ReleaseBook(tmp_path)


def colour(name: str, release: str = "", fingerprint: str = "", exists: bool = True) -> ColorState:
    labels = {LABEL_RELEASE: release, LABEL_FINGERPRINT: fingerprint}
    return ColorState(
        name,
        ContainerState(f"clipper-{name}-backend", exists, labels=labels),
        ContainerState(f"clipper-{name}-frontend", exists, labels=dict(labels)),
    )


class PullRecorder:
    """Stands in for clipper.host.Host where a step only pulls images: records the pulls
    instead of calling docker."""

    def __init__(self) -> None:
        self.pulled: list[Mapping[str, str]] = []

    def pull_missing(self, images: Mapping[str, str]) -> None:
        self.pulled.append(images)


class RuntimeOnlyConfig:
    """Stands in for release_config.Config where a step reads only `runtime` (how containers
    run, part of the fingerprint)."""

    runtime = RUNTIME


# ------------------------------------------------------------------------ the target


def test_a_plain_rollback_goes_one_release_back_with_no_note(tmp_path: Path) -> None:
    book = book_with(tmp_path, ["r1", "r2", "r3"], "r3")
    target, note = release_cli._rollback_target(book, "r3", None, None)
    assert (target["id"], note) == ("r2", "")


def test_rollback_to_a_named_release_goes_there_even_past_the_previous_one(tmp_path: Path) -> None:
    book = book_with(tmp_path, ["r1", "r2", "r3"], "r3")
    target, note = release_cli._rollback_target(book, "r3", "r1", None)
    assert (target["id"], note) == ("r1", "")


def test_rollback_to_an_unknown_release_names_the_recorded_ones(tmp_path: Path) -> None:
    book = book_with(tmp_path, ["r1", "r2"], "r2")
    with pytest.raises(errors.HostError) as refused:
        release_cli._rollback_target(book, "r2", "r9", None)
    assert str(refused.value) == "no release 'r9' on this host; recorded: r1, r2"


def test_a_plain_rollback_with_nothing_before_the_active_release_says_so(tmp_path: Path) -> None:
    book = book_with(tmp_path, ["r1"], "r1")
    with pytest.raises(errors.HostError) as refused:
        release_cli._rollback_target(book, "r1", None, None)
    assert str(refused.value) == "no release before r1 is recorded on this host"


def test_an_interrupted_plain_rollback_is_finished_not_repeated(tmp_path: Path) -> None:
    # Killed after the switch: r2 serves but the record still says r3.
    book = book_with(tmp_path, ["r1", "r2", "r3"], "r3")
    pending = {"to": "r2", "from": "r3", "explicit": False}
    target, note = release_cli._rollback_target(book, "r3", None, pending)
    assert (target["id"], note) == ("r2", "finishing an interrupted rollback to r2")


def test_a_failed_rollback_to_a_named_release_is_not_resumed_by_a_plain_one(
    tmp_path: Path,
) -> None:
    book = book_with(tmp_path, ["r1", "r2", "r3"], "r3")
    pending = {"to": "r1", "from": "r3", "explicit": True}
    target, note = release_cli._rollback_target(book, "r3", None, pending)
    assert target["id"] == "r2"
    assert note == (
        "a failed `rollback --to r1` was left recorded; it is cleared: this plain rollback goes"
        " one release back"
    )


def test_a_named_rollback_wins_over_a_pending_one(tmp_path: Path) -> None:
    book = book_with(tmp_path, ["r1", "r2", "r3"], "r3")
    pending = {"to": "r2", "from": "r3", "explicit": False}
    target, note = release_cli._rollback_target(book, "r3", "r1", pending)
    assert (target["id"], note) == ("r1", "")


# ------------------------------------------------------------------------ the steps


def test_the_pending_record_names_target_origin_and_whether_it_was_asked_for(
    tmp_path: Path,
) -> None:
    pending = tmp_path / release_cli.PENDING_ROLLBACK
    release_cli._record_pending(pending, "r1", "r3", explicit=True)
    assert pending.read_text() == '{"to": "r1", "from": "r3", "explicit": true}\n'


def test_the_release_rolled_back_to_runs_with_todays_env_file_under_its_own_id() -> None:
    config = cast(release_cli.Config, RuntimeOnlyConfig())
    old = decisions.release_record(IMAGES, {**ENV, "TWITCH_CLIENT_SECRET": "leaked"}, RUNTIME)
    record = release_cli._rollback_release(config, old, ENV)
    assert record["id"] == old["id"]
    assert record["fingerprint"] == decisions.release_record(IMAGES, ENV, RUNTIME)["fingerprint"]
    assert record["fingerprint"] != old["fingerprint"]


def test_kept_containers_of_the_same_release_and_env_are_resumed_without_a_pull(
    capsys: pytest.CaptureFixture[str],
) -> None:
    puller = PullRecorder()
    record = {"id": "r1", "fingerprint": "f-today", "images": IMAGES}
    standby = colour("green", "r1", "f-today")
    assert release_cli._prepare_standby(cast(Host, puller), standby, record, record) is True
    assert puller.pulled == [] and capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("standby", "why"),
    [
        (
            colour("green", "r1", "f-old"),
            "the containers of r1 carry an older env file (a secret was rotated since)",
        ),
        (colour("green", exists=False), "no containers of r1 are left"),
        (colour("green", "r2", "f-r2"), "no containers of r1 are left"),
    ],
    ids=["rotated-secret", "removed", "other-release"],
)
def test_containers_that_cannot_be_resumed_are_recreated_and_the_reason_is_said(
    standby: ColorState, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    puller = PullRecorder()
    target = {"id": "r1", "images": IMAGES}
    record = {**target, "fingerprint": "f-today"}
    assert release_cli._prepare_standby(cast(Host, puller), standby, target, record) is False
    assert puller.pulled == [IMAGES]
    stamp, line = capsys.readouterr().out.split(" ", 1)  # say() starts with [HH:MM:SS]
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\]", stamp)
    assert line == (
        f"{why}: recreating them from its images with the current env file"
        " (migrations are not rolled back: the schema stays as is)\n"
    )


class RejectedSwitch(Switch):
    """Stands in for a Switch whose move nginx rejected (Switch.run undoes it and raises
    HostError): no host, no containers."""

    def run(self, book: ReleaseBook, action: str, *, move_to_end: bool) -> None:
        raise errors.HostError("nginx -t rejected the include; green was stopped again")


def test_a_failed_switch_removes_the_pending_record_and_says_where_the_next_one_goes(
    tmp_path: Path,
) -> None:
    pending = tmp_path / release_cli.PENDING_ROLLBACK
    release_cli._record_pending(pending, "r1", "r3", explicit=True)
    switch = RejectedSwitch(cast(Host, None), "blue", {}, {"id": "r1"}, ENV, reuse=True)
    with pytest.raises(errors.HostError) as failed:
        release_cli._switch_back(switch, book_with(tmp_path, ["r1", "r3"], "r3"), pending, "r3")
    assert not pending.exists()
    assert str(failed.value) == (
        "nginx -t rejected the include; green was stopped again\n"
        f"the rollback to r1 was not recorded as pending ({pending} removed): the next plain"
        " rollback goes one release back from r3"
    )


def test_a_rollback_found_already_done_records_it_when_the_record_lags(tmp_path: Path) -> None:
    book = book_with(tmp_path, ["r1", "r2"], "r2")
    states = {"blue": colour("blue", "r1"), "green": colour("green", "r2")}  # green stopped
    target = book.get("r1")
    assert target is not None
    release_cli._settle_rolled_back(cast(Host, None), book, target, "blue", states)
    again = ReleaseBook(tmp_path)
    assert again.active == "r1"
    assert again.get("r1") == {**target, "color": "blue", "activated_at": again.history[-1]["at"],
                               "deployed_at": again.history[-1]["at"]}  # fmt: skip
    assert [(h["action"], h["release"]) for h in again.history] == [("rollback", "r1")]


def test_a_rollback_found_already_done_and_recorded_changes_no_record(tmp_path: Path) -> None:
    book = book_with(tmp_path, ["r1", "r2"], "r1")
    before = (tmp_path / "releases.json").read_text()
    states = {"blue": colour("blue", "r1"), "green": colour("green", "r2")}
    target = book.get("r1")
    assert target is not None
    release_cli._settle_rolled_back(cast(Host, None), book, target, "blue", states)
    assert (tmp_path / "releases.json").read_text() == before
