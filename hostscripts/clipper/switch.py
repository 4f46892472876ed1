"""Moving traffic from one colour to the other: the one path deploy and rollback share.

    start (or resume) the idle colour -> ready -> several answers in a row, directly ->
    nginx include + test + reload -> several answers in a row THROUGH nginx with the new
    release -> restart policy -> record -> drain and stop the old colour.

Until the record is written, any failure puts things back: nginx on the old colour (which
never stopped), the idle colour removed (or stopped again when it was a kept release), and
the error says which step failed. Exactly one colour runs afterwards: the serving one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .book import ReleaseBook
from .containers import ColorState
from .decisions import choose_active, other_color
from .errors import HostError
from .host import POLL_SECONDS, Host, say
from .probes import Answer, established_connections, get, split_loopback_url

IDLE_WAIT_MIN_SECONDS = 5.0  # how long a drained colour may take to lose its last connection
STEADY_GAP_SECONDS = 0.2  # between the direct answers a new colour must give in a row
NGINX_SETTLE_SECONDS = 10.0  # nginx's old workers may answer for a moment after a reload


def settle_active(host: Host) -> tuple[str, dict[str, ColorState]]:
    """Find the serving colour and make nginx's live config match it (reload is idempotent:
    it also finishes a switch that was renamed on disk but never reloaded).

    The include's colour stays active while its containers run: one slow readiness answer
    (the app's DB and Redis pings take up to 3 s) never moves traffic to the other colour.
    """
    states = host.colors()
    disk = host.include_color()
    serving = {
        color: state.running if color == disk else host.is_ready(state)
        for color, state in states.items()
    }
    active = choose_active(disk, serving)
    if disk is not None and active != disk:
        say(
            f"the include points at {disk}, whose containers are not running, while {active}"
            f" is ready: pointing nginx back at {active}"
        )
    if disk is not None or serving.get(active):
        host.point_nginx_at(active)
    return active, states


def retire(host: Host, color: str, state: ColorState) -> None:
    """Let the old colour finish what nginx's old workers sent it, then stop (keep) it.

    After `drain_seconds`, also wait (up to as long again, at least a few seconds) until no TCP
    connection to the colour's ports is left: nginx's old workers hold theirs until they have
    finished their last request and exited, so an idle colour can no longer be sent one.
    """
    if not state.any_running:
        return
    drain = host.config.drain_seconds
    if drain > 0:
        say(f"draining {color} for {drain:g}s")
        time.sleep(drain)
    conf = host.config.colors[color]
    ports = {conf.backend_port, conf.frontend_port}
    deadline = time.monotonic() + max(drain, IDLE_WAIT_MIN_SECONDS)
    while (left := established_connections(ports)) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS / 2)
    if left:
        say(f"{color} still has {left} open connection(s); stopping it anyway (it drains 5s)")
    say(f"stopping {color} (kept for rollback)")
    host.forget_after_reboot(color)
    host.stop_color(color)


def _steady_directly(host: Host, color: str) -> None:
    """`verify_answers` ready answers in a row from the colour itself, before any traffic:
    a backend that answers once and then fails is caught here, with no user request lost."""
    for count in range(host.config.verify_answers):
        probes = host.probes(color)
        failed = {role: text for role, (ok, text) in probes.items() if not ok}
        if failed:
            detail = "; ".join(f"{role}: {text}" for role, text in failed.items())
            raise HostError(
                f"the {color} colour answered ready, then failed on answer {count + 1} of"
                f" {host.config.verify_answers} in a row ({detail}); no traffic moved"
            )
        time.sleep(STEADY_GAP_SECONDS)


def _verify_through_nginx(host: Host, color: str) -> None:
    """Answers through nginx, `verify_answers` in a row, equal to what the new colour answers
    itself on the same path: an nginx that reloaded but kept the old upstream is caught."""
    url = host.config.verify_url
    if url is None:
        return
    port, path = split_loopback_url(url)
    header = host.config.verify_header
    backend = f"127.0.0.1:{host.config.colors[color].backend_port}"
    if header:
        # nginx names the backend it proxied to: that address must be the new colour's.
        expected = Answer(True, f"{header}: {backend}", headers={header.lower(): backend})
    else:
        expected = get(host.config.colors[color].backend_port, path)
        if not expected.ok:
            raise HostError(f"the {color} colour does not answer {path} itself: {expected.text}")

    def from_new_colour(answer: Answer) -> bool:
        if header:
            return answer.headers.get(header.lower()) == backend
        return answer.ok and answer.body == expected.body

    deadline = time.monotonic() + NGINX_SETTLE_SECONDS
    streak, last = 0, expected
    while streak < host.config.verify_answers:
        last = get(port, path)
        if from_new_colour(last):
            streak += 1
            continue
        # Another answer: an nginx worker from before the reload (on a first deploy it proxies
        # to nothing), or the old upstream still. Start counting again, within the bound.
        streak = 0
        if time.monotonic() >= deadline:
            seen = (
                f"proxied to {last.headers.get(header.lower()) or 'no backend'} ({last.text[:100]})"
                if header
                else f"answered {last.text[:200]!r}"
            )
            raise HostError(
                f"nginx reloaded but still does not serve the {color} colour: {url} {seen},"
                f" the {color} colour answers {expected.text[:200]!r}"
            )
        time.sleep(POLL_SECONDS / 5)
    say(f"{streak} answers in a row through nginx came from {color}")


@dataclass
class Switch:
    """One move of traffic to the idle colour. `reuse`: the idle colour already holds the
    release (stopped and kept), so it is resumed instead of recreated."""

    host: Host
    active: str
    states: Mapping[str, ColorState]
    release: Mapping[str, Any]
    env: Mapping[str, str]
    reuse: bool

    @property
    def idle(self) -> str:
        return other_color(self.active)

    def run(self, book: ReleaseBook, action: str, *, move_to_end: bool) -> None:
        host, idle = self.host, self.idle
        moved = False
        try:
            if self.reuse:
                say(f"{idle} still has {self.release['id']}: starting it")
                host.resume_color(self.states[idle])
            else:
                if self.states[idle].any_running:
                    # It was serving moments ago (a switch back, or an interrupted deploy).
                    retire(host, idle, self.states[idle])
                say(f"starting {self.release['id']} on {idle}")
                host.start_color(idle, self.release, self.env)
            say(f"waiting up to {host.config.ready_timeout:g}s for {idle} to be ready")
            host.wait_ready(idle, host.config.ready_timeout)
            _steady_directly(host, idle)
            say(f"{idle} is ready; switching nginx to {idle}")
            moved = True
            host.point_nginx_at(idle)
            _verify_through_nginx(host, idle)
        except BaseException as exc:
            self._undo(moved)
            if isinstance(exc, HostError):
                raise HostError(f"{exc}\n{self._what_was_undone(moved)}") from None
            raise
        host.keep_running_after_reboot(idle)
        say(f"switched: {self.release['id']} serves on {idle}")
        book.activate(dict(self.release), idle, action, move_to_end=move_to_end)

    def _undo(self, moved: bool) -> None:
        host, idle = self.host, self.idle
        if moved:
            try:
                host.point_nginx_at(self.active)
            except HostError as exc:
                say(f"could not point nginx back at {self.active}: {exc}")
        if self.reuse:
            host.stop_color(idle)
        else:
            host.remove_color(idle)

    def _what_was_undone(self, moved: bool) -> str:
        back = f"nginx points at {self.active} again; " if moved else ""
        idle = (
            f"{self.idle} was stopped again (kept for rollback)"
            if self.reuse
            else f"the half-started {self.idle} containers were removed"
        )
        return f"{back}{idle}; {self.active} keeps serving"
