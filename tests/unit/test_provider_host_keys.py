"""Every remote command pins its droplet's SSH host key, learned once per droplet (TOFU)."""

from __future__ import annotations

from typing import Any

import pytest

from components.host.keys import read_host_key_command
from components.offline.runner import ProgramRun
from tests.support.program import plain, stack_run

COMMAND = "command:remote:Command"
DROPLET = "digitalocean:index/droplet:Droplet"
STACKS = ["staging", "production"]


def _connection(r: Any) -> dict[str, Any]:
    return dict(plain(r.inputs["connection"]))


def _learned(run: ProgramRun) -> dict[str, str]:
    """SSH address -> the key its host-key command read (what later connections must pin)."""
    return {
        _connection(r)["host"]: r.outputs["stdout"].strip()
        for r in run.of_type(COMMAND)
        if r.name.endswith("-host-key")
    }


@pytest.mark.parametrize("stack", STACKS)
def test_each_droplet_has_one_host_key_read_per_droplet(stack: str) -> None:
    run = stack_run(stack)
    reads = [r for r in run.of_type(COMMAND) if r.name.endswith("-host-key")]
    droplet_addresses = {d.outputs["ipv4Address"] for d in run.of_type(DROPLET)}
    assert {_connection(r)["host"] for r in reads} == droplet_addresses
    assert len(reads) == len(droplet_addresses)
    for read in reads:
        assert read.inputs["create"] == read_host_key_command()
        assert "hostKey" not in _connection(read)  # the one trust-on-first-use connection
        assert len(plain(read.inputs["triggers"])) == 1  # the droplet id: a new droplet re-learns


@pytest.mark.parametrize("stack", STACKS)
def test_every_other_remote_command_pins_its_hosts_key(stack: str) -> None:
    run = stack_run(stack)
    learned = _learned(run)
    others = [r for r in run.of_type(COMMAND) if not r.name.endswith("-host-key")]
    assert len(others) >= 8
    for r in others:
        connection = _connection(r)
        assert connection.get("hostKey") == learned[connection["host"]], r.name
        assert connection["hostKey"].startswith("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5")


@pytest.mark.parametrize("stack", STACKS)
def test_no_private_key_travels_in_user_data(stack: str) -> None:
    for droplet in stack_run(stack).of_type(DROPLET):
        user_data = str(plain(droplet.inputs["userData"]))
        assert "PRIVATE KEY" not in user_data
        assert "ssh_keys:" not in user_data  # cloud-init's way to preset host keys
