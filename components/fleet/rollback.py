"""A fleet rollback: every host back to one release, one host at a time, stopping at the first
failure and saying which hosts moved.

`plan_rollback` decides from every host's status (pure): the release all hosts go back to (the
one `--to` names, else each host's previous release, which must be the same everywhere), and
which hosts already serve it. `roll_back` runs `clipper-release rollback --to ID` host after
host through an injected runner, and records when each host switched: the moment its
"switched:" line arrived, so the reported time is what the operator waited for traffic.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from components.fleet.commands import release_rollback
from components.fleet.outputs import FleetHost
from components.fleet.ssh import HostRun, Line
from components.fleet.status import HostStatus, describe_lock

EXIT_REFUSED = 2
EXIT_LOCKED = 75  # as the host scripts: try again when the other deploy is done
# clipper-release's lines: a switch ("switched: ID serves on COLOUR (...)"), or a host that
# already serves the target ("clipper-release: ID serves on COLOUR").
_SWITCHED = re.compile(r"\bswitched: \S+ serves on (blue|green)\b|^clipper-release: \S+ serves on")


class RollbackRefusedError(Exception):
    """Nothing moved: the fleet's state does not allow one consistent rollback."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class RollbackPlan:
    """Where every host goes, in order, and which ones are already there."""

    target: str
    order: tuple[str, ...]
    already_there: tuple[str, ...]


def plan_rollback(statuses: Sequence[HostStatus], to: str | None) -> RollbackPlan:
    """Decide the rollback before anything moves; refuse with the reason and the way out."""
    unreachable = [s.host for s in statuses if not s.reachable]
    if unreachable:
        raise RollbackRefusedError(
            f"{', '.join(unreachable)} did not answer: nothing was rolled back (a fleet rollback"
            " needs every host; fix SSH or roll back the others with --host)"
        )
    locked = [s for s in statuses if s.lock]
    if locked:
        raise RollbackRefusedError(
            "nothing was rolled back: "
            + "; ".join(f"{s.host} is locked by {describe_lock(s.lock)}" for s in locked)
            + ". Wait for it to finish (ops lock shows the holders)",
            EXIT_LOCKED,
        )
    if to:
        missing = [s.host for s in statuses if to not in s.releases]
        if missing:
            raise RollbackRefusedError(
                f"release {to} is not recorded on {', '.join(missing)}: nothing was rolled back"
                " (ops status --json lists each host's releases)"
            )
        target = to
    else:
        targets = {s.host: s.previous_release for s in statuses}
        if None in targets.values():
            none = [host for host, rid in targets.items() if rid is None]
            raise RollbackRefusedError(
                f"{', '.join(none)} has no release before the live one: nothing was rolled back"
            )
        if len(set(targets.values())) > 1:
            where = ", ".join(f"{host} -> {rid}" for host, rid in targets.items())
            raise RollbackRefusedError(
                f"the hosts would go back to different releases ({where}): nothing was rolled"
                " back; choose one with --to ID"
            )
        target = str(next(iter(targets.values())))
    already = tuple(s.host for s in statuses if s.active_release == target and s.healthy)
    return RollbackPlan(target, tuple(s.host for s in statuses), already)


@dataclass(frozen=True)
class HostOutcome:
    """One host's part: moved (and when traffic switched), skipped, or failed (and why)."""

    host: str
    state: str  # "moved" | "already there" | "failed"
    switched_at: float | None = None  # seconds after the fleet rollback started
    detail: str = ""


@dataclass
class RollbackReport:
    """The fleet rollback's result, in words the operator acts on."""

    target: str
    outcomes: list[HostOutcome] = field(default_factory=list)
    not_attempted: list[str] = field(default_factory=list)
    still_serving: dict[str, str] = field(default_factory=dict)  # failed host -> its release

    @property
    def failed(self) -> HostOutcome | None:
        return next((o for o in self.outcomes if o.state == "failed"), None)

    @property
    def moved(self) -> list[str]:
        return [o.host for o in self.outcomes if o.state == "moved"]

    @property
    def all_switched_after(self) -> float | None:
        """Seconds until every host served the target (None unless every host got there)."""
        if self.failed or self.not_attempted:
            return None
        times = [o.switched_at for o in self.outcomes if o.switched_at is not None]
        return max(times) if times else 0.0

    def summary(self) -> str:
        lines = []
        for o in self.outcomes:
            when = f" (traffic on it {o.switched_at:.1f}s in)" if o.switched_at is not None else ""
            lines.append(f"  {o.host}: {o.state}{when}{': ' + o.detail if o.detail else ''}")
        failed = self.failed
        if failed is None:
            took = self.all_switched_after
            lines.append(
                f"every host serves {self.target}: {', '.join(o.host for o in self.outcomes)};"
                f" all hosts on it {took:.1f}s after the rollback started"
            )
        else:
            lines.append(
                f"stopped at {failed.host}, which failed; moved: {', '.join(self.moved) or 'none'};"
                f" not attempted: {', '.join(self.not_attempted) or 'none'}"
            )
            for host, release in self.still_serving.items():
                lines.append(f"{host} still serves {release}")
        return "\n".join(lines)


def switch_moment(lines: Sequence[Line]) -> float | None:
    """When a host's rollback switched traffic: the arrival time of its "switched" line."""
    return next((line.at for line in lines if _SWITCHED.search(line.text)), None)


def failure_reason(run: HostRun) -> str:
    """The host script's error headline (its first stderr line: which step failed and why)
    and its last line, short enough for one report line; the full text was shown live."""
    text = run.stderr.strip() or run.stdout.strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    kept = lines[:1] + lines[-1:] if len(lines) > 1 else lines
    return f"exit {run.returncode}: " + (" ... ".join(kept) or "no output")


RunOnHost = Callable[[FleetHost, Sequence[str]], HostRun]


def roll_back(
    hosts: Sequence[FleetHost],
    plan: RollbackPlan,
    run: RunOnHost,
    started: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RollbackReport:
    """Run the plan host by host; stop at the first failure (the rest are not touched)."""
    started = clock() if started is None else started
    report = RollbackReport(plan.target)
    for index, host in enumerate(hosts):
        if host.name in plan.already_there:
            report.outcomes.append(HostOutcome(host.name, "already there"))
            continue
        result = run(host, release_rollback(plan.target))
        if result.returncode != 0:
            report.outcomes.append(HostOutcome(host.name, "failed", None, failure_reason(result)))
            report.not_attempted = [h.name for h in hosts[index + 1 :]]
            return report
        moment = switch_moment(result.lines)
        at = (moment if moment is not None else clock()) - started
        report.outcomes.append(HostOutcome(host.name, "moved", at))
    return report
