"""The stack outputs the fleet command reads (components/stack.py): hosts plain, key secret."""

from __future__ import annotations

import json

import pytest

from components.fleet.outputs import fleet_from_outputs
from tests.support.program import of_role, plain, stack_run

DROPLET = "digitalocean:index/droplet:Droplet"
STACKS = ["staging", "production"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_deploy_key_is_exported_only_as_a_secret(stack: str) -> None:
    run = stack_run(stack)
    out = run.outputs["deployPrivateKey"]
    assert out.secret
    key = run.named(f"{stack}-deploy-key-key")
    assert out.value == plain(key.outputs["privateKeyOpenssh"])
    for name, other in run.outputs.items():
        if not other.secret:
            assert "PRIVATE KEY" not in json.dumps(other.value, default=str), name


@pytest.mark.parametrize("stack", STACKS)
def test_every_app_droplet_is_a_fleet_host_with_its_addresses_in_plain(stack: str) -> None:
    run = stack_run(stack)
    out = run.outputs["fleetHosts"]
    assert not out.secret
    droplets = sorted(of_role(run, DROPLET), key=lambda d: str(d.inputs["name"]))
    assert out.value["app"] == [
        {
            "name": f"app-{n}",
            "droplet": d.inputs["name"],
            "publicAddress": d.outputs["ipv4Address"],
            "privateAddress": d.outputs["ipv4AddressPrivate"],
            "backups": n == 1,  # clipper-backup runs on app-1 (components/backups.py)
            # The host key the program learned and pins (components/host/keys.py).
            "hostKey": plain(
                run.named(f"{stack}-host-keys-app-{n}-host-key").outputs["stdout"]
            ).strip(),
        }
        for n, d in enumerate(droplets, 1)
    ]
    assert all(h["hostKey"].startswith("ssh-ed25519 ") for h in out.value["app"])
    (monitoring,) = of_role(run, DROPLET, "monitoring")
    assert out.value["monitoring"][0]["publicAddress"] == monitoring.outputs["ipv4Address"]


def test_the_fleet_command_reads_what_the_stack_exports() -> None:
    run = stack_run("production")
    doc = {name: out.value for name, out in run.outputs.items()}  # `--show-secrets`
    fleet = fleet_from_outputs("production", doc)
    assert [h.name for h in fleet.hosts] == ["app-1", "app-2"]
    assert fleet.release_images == run.outputs["releaseImages"].value
