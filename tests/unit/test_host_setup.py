"""components/host/setup.py on its own: what one host's setup declares, in which order, and that
no secret reaches a command line.

The helper runs under the offline engine's mocks and recording monitor (the same ones `plan`
uses), inside a small program of this file: a parent component and two stand-in resources for
what a real caller hands in (the firewall SSH needs, the previous host's deploy).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_random as random
import pytest

from components.host import layout as host_layout
from components.host.connection import deploy_ssh
from components.host.remote_files import RemoteFile, install_command
from components.host.setup import (
    Activation,
    Bundle,
    HostSetup,
    set_up_host,
    wait_for_host_command,
)
from components.offline.mocks import ClipperMocks, RecordingMonitor, Registration
from tests.support.program import is_secret, plain

COMMAND = "command:remote:Command"
ADDRESS = "203.0.113.7"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAItestpinnedhostkey"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\ntest-deploy-key-0123456789\n-----END"
SECRET = "test-secret-env-value-0123456789"
DROPLET_ID = "4242"


class _Owner(pulumi.ComponentResource):
    """Stands in for the component that owns the setup (Release, Monitoring, Backups)."""

    def __init__(self) -> None:
        super().__init__("test:host:Owner", "owner")


def _declare(build: Callable[[_Owner, list[pulumi.Resource]], HostSetup]) -> list[Registration]:
    """Run `build` (given the owner and two stand-ins: `firewall`, `previous`) under the
    offline engine's mocks, and return every registration."""
    mocks = ClipperMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="clipper-infra", stack="staging", monitor=monitor)

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        owner = _Owner()
        # Stand-ins (random strings) for a cloud firewall and the previous host's deploy: the
        # helper only orders its commands after them.
        firewall = random.RandomString("firewall", length=8)
        previous = random.RandomString("previous-deploy", length=8)
        setup = build(owner, [firewall, previous])
        return setup.activation.stdout

    program()
    return monitor.registrations


def _standard(owner: _Owner, stand_ins: list[pulumi.Resource], **kw: Any) -> HostSetup:
    firewall, previous = stand_ins
    options: dict[str, Any] = {"reachable_after": [firewall], "install_after": [previous], **kw}
    return set_up_host(
        "owner-app-1",
        parent=owner,
        connection=deploy_ssh(ADDRESS, pulumi.Output.secret(PRIVATE_KEY), HOST_KEY),
        droplet_id=DROPLET_ID,
        bundles=[
            Bundle("scripts", "app", [RemoteFile("/usr/local/bin/tool", "#!/bin/sh\n", "0755")]),
            Bundle(
                "env",
                "app",
                # Plain text here: the bundle's `secret` alone must keep it secret.
                [RemoteFile("/etc/clipper/x.env", f"X={SECRET}\n", "0600")],
                secret=True,
            ),
        ],
        activation=Activation(
            "deploy", "sudo -n /usr/local/bin/tool go", triggers=[DROPLET_ID, "v1"], after=[]
        ),
        **options,
    )


@pytest.fixture(scope="module")
def standard() -> dict[str, Registration]:
    return {r.name: r for r in _declare(_standard)}


def test_it_declares_the_wait_one_installer_per_bundle_and_the_activation(
    standard: dict[str, Registration],
) -> None:
    commands = {name for name, r in standard.items() if r.type == COMMAND}
    assert commands == {
        "owner-app-1-ready",
        "owner-app-1-scripts-install",
        "owner-app-1-env-install",
        "owner-app-1-deploy",
    }
    assert standard["owner-app-1-scripts"].type == "clipper:host:RemoteFiles"
    assert plain(standard["owner-app-1-ready"].inputs["create"]) == wait_for_host_command()
    for bundle in ("scripts", "env"):
        assert plain(standard[f"owner-app-1-{bundle}-install"].inputs["create"]) == (
            install_command()
        )
        assert plain(standard[f"owner-app-1-{bundle}"].inputs["role"]) == "app"
    assert plain(standard["owner-app-1-deploy"].inputs["create"]) == (
        "sudo -n /usr/local/bin/tool go"
    )


def test_every_step_is_a_child_of_the_owner(standard: dict[str, Registration]) -> None:
    owner = standard["owner"].urn
    for name in ("ready", "scripts", "env", "deploy"):
        assert standard[f"owner-app-1-{name}"].parent_urn == owner, name


def test_the_wait_checks_cloud_init_and_the_ready_marker() -> None:
    assert "cloud-init status --wait" in wait_for_host_command()
    assert f"[ -f {host_layout.HOST_READY_FILE} ]" in wait_for_host_command()


def test_the_files_wait_for_the_host_and_the_activation_for_the_files(
    standard: dict[str, Registration],
) -> None:
    urn = {name: r.urn for name, r in standard.items()}
    ready, deploy = standard["owner-app-1-ready"], standard["owner-app-1-deploy"]
    assert urn["firewall"] in ready.depends_on
    # Waiting may start while the previous host deploys; changing this host may not.
    assert urn["previous-deploy"] not in ready.depends_on
    for bundle in ("scripts", "env"):
        install = standard[f"owner-app-1-{bundle}-install"]
        assert {urn["owner-app-1-ready"], urn["previous-deploy"]} <= set(install.depends_on)
        assert urn[f"owner-app-1-{bundle}-install"] in deploy.depends_on
    assert {urn["owner-app-1-ready"], urn["previous-deploy"]} <= set(deploy.depends_on)


def test_a_new_droplet_reruns_the_wait_and_the_files_and_the_activation_its_triggers(
    standard: dict[str, Registration],
) -> None:
    for name in ("ready", "scripts-install", "env-install"):
        assert plain(standard[f"owner-app-1-{name}"].inputs["triggers"]) == [DROPLET_ID], name
    assert plain(standard["owner-app-1-deploy"].inputs["triggers"]) == [DROPLET_ID, "v1"]


def test_every_step_connects_as_deploy_with_the_secret_key_and_the_pinned_host_key(
    standard: dict[str, Registration],
) -> None:
    for r in standard.values():
        if r.type != COMMAND:
            continue
        connection = r.inputs["connection"]
        assert is_secret(connection) or is_secret(connection["privateKey"]), r.name
        conn = plain(connection)
        assert (conn["host"], conn["user"], conn["hostKey"]) == (
            ADDRESS, host_layout.DEPLOY_USER, HOST_KEY,
        ), r.name  # fmt: skip


def test_no_secret_is_on_a_command_line_and_the_secret_bundle_is_secret_stdin(
    standard: dict[str, Registration],
) -> None:
    for r in standard.values():
        if r.type == COMMAND:
            for field in ("create", "update", "delete", "environment", "triggers"):
                text = json.dumps(plain(r.inputs.get(field)))
                assert SECRET not in text and "test-deploy-key" not in text, (r.name, field)
    env = standard["owner-app-1-env-install"]
    assert is_secret(env.inputs["stdin"])
    assert SECRET in plain(env.inputs["stdin"])
    assert not is_secret(standard["owner-app-1-scripts-install"].inputs["stdin"])
    files = standard["owner-app-1-env"].inputs["files"]
    assert is_secret(files) or all(is_secret(f) or is_secret(f["content"]) for f in files)


def test_an_activation_command_must_be_plain_text() -> None:
    with pytest.raises(TypeError, match="plain string"):
        Activation("deploy", pulumi.Output.secret("sudo -n x " + SECRET), triggers=[])  # type: ignore[arg-type]


def test_a_host_another_setup_waited_for_gets_no_second_wait() -> None:
    def build(owner: _Owner, stand_ins: list[pulumi.Resource]) -> HostSetup:
        return _standard(owner, stand_ins, wait_for_host=False, reachable_after=[])

    regs = {r.name: r for r in _declare(build)}
    assert "owner-app-1-ready" not in regs
    previous = regs["previous-deploy"].urn
    for name in ("scripts-install", "env-install", "deploy"):
        assert previous in regs[f"owner-app-1-{name}"].depends_on, name
