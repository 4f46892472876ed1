"""Releases: ship the stack's images to every app host over SSH, one host at a time.

Per app droplet, in this order, the host setup of components/host/setup.py (pulumi-command
remote commands connecting as the `deploy` user with the stack's deploy key):

0. (before, in components/host/keys.py: the droplet's host key, pinned by every command here);
1. `ready`: wait for cloud-init to finish and for the host-ready marker it writes last;
2. `scripts`: install `clipper-release`, the `clipper` host package it runs and its non-secret
   `deploy.json` (a RemoteFiles bundle);
3. `env`: write the backend's env file, the admin login for extensions and the registry's
   read-only pull credential (RemoteFiles, secret stdin, mode 0600), before any deploy,
   migration or pull reads them;
4. `deploy`: `sudo clipper-release deploy` (pull, migrate, start the idle colour, wait until it
   is ready, switch nginx, drain, stop the old colour). Its stdout is the operator's record.

The deploy runs again when its triggers change: the droplet (a new one needs the app), the four
pinned image references (`name:tag@sha256:...`, components/images/release_images.py: a moved tag
is a new digest, hence a new trigger), or the sha256 of the env files (a secret: computed in
`apply` on secrets). A changed trigger replaces the command resource, which re-runs `create`;
its command line never changes and holds nothing secret. Host N+1 is touched only after host N's
deploy succeeded, so a failing deploy stops the roll with the other hosts still on the old
release.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_command as command

from components.host import layout as host_layout
from components.host.connection import AppHost, deploy_ssh
from components.host.remote_files import RemoteFile, host_package_files
from components.host.setup import Activation, Bundle, set_up_host
from components.renderers.deploy_config import IMAGE_KEYS, render_deploy_config
from components.settings import Settings

HOST_SCRIPT_SOURCE = Path(__file__).resolve().parents[1] / "hostscripts" / "clipper-release"


def deploy_command() -> str:
    """The deploy, as root; the script prints what it did, never a secret."""
    return f"sudo -n {host_layout.RELEASE_SCRIPT} deploy"


def _pick(images: pulumi.Output[dict[str, str]], key: str) -> pulumi.Output[str]:
    return images.apply(lambda pinned: pinned[key])


def _release_files(settings: Settings, images: pulumi.Output[dict[str, str]]) -> list[RemoteFile]:
    """The non-secret bundle: `clipper-release`, the host package it runs, and deploy.json
    naming the release's images by digest."""
    script = RemoteFile(host_layout.RELEASE_SCRIPT, HOST_SCRIPT_SOURCE.read_text(), "0755")
    package = [RemoteFile(f.path, f.content, f.mode) for f in host_package_files()]
    deploy_config = RemoteFile(
        host_layout.DEPLOY_CONFIG_FILE,
        images.apply(lambda pinned: render_deploy_config(settings, images=pinned)),
        "0644",
    )
    return [script, *package, deploy_config]


@dataclass(frozen=True)
class ReleaseArgs:
    """What to ship (settings, env files) and where (hosts, key)."""

    settings: Settings
    hosts: Sequence[AppHost]
    # The release's images by digest (ReleaseImages.pinned): what deploy.json names.
    images: pulumi.Input[Mapping[str, str]]
    # The registry's read-only Docker config (a secret): /etc/clipper/registry/config.json.
    registry_docker_config: pulumi.Input[str]
    # The deploy user's private key (OpenSSH PEM), a secret.
    ssh_private_key: pulumi.Input[str]
    backend_env_file: pulumi.Input[str]
    db_admin_env_file: pulumi.Input[str]
    env_sha256: pulumi.Input[str]
    # Resources a deploy needs besides its inputs: firewalls that let SSH in and let the
    # droplets reach the database (migrations) and the cache (readiness).
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class Release(pulumi.ComponentResource):
    """The stack's release: scripts, env files and a blue-green deploy on each app host."""

    images: pulumi.Output[dict[str, str]]
    deploy_logs: pulumi.Output[dict[str, str]]
    deploys: dict[str, command.remote.Command]  # per host: depend on it to wait until it serves

    def __init__(
        self, name: str, args: ReleaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        images: pulumi.Output[dict[str, str]] = pulumi.Output.from_input(args.images).apply(dict)
        # The images and their digests as the component's (plain) inputs: the plan and the
        # preview show what the hosts will run (the deploy's trigger list is secret: it holds the
        # env hash); a digest alone stays short enough to be shown whole.
        digests = images.apply(lambda m: {k: ref.rpartition("@")[2] for k, ref in m.items()})
        super().__init__(
            "clipper:release:Release", name, {"images": images, "digests": digests}, opts
        )
        env_files = [
            RemoteFile(host_layout.BACKEND_ENV_FILE, args.backend_env_file, "0600"),
            RemoteFile(host_layout.DB_ADMIN_ENV_FILE, args.db_admin_env_file, "0600"),
            RemoteFile(
                host_layout.REGISTRY_DOCKER_CONFIG_FILE, args.registry_docker_config, "0600"
            ),
        ]
        bundles = [
            Bundle("scripts", "app", _release_files(args.settings, images)),
            Bundle("env", "app", env_files, secret=True),
        ]
        image_triggers = [_pick(images, key) for key in IMAGE_KEYS]
        extra = list(args.depends_on)
        previous_deploy: list[pulumi.Resource] = []
        self.deploys = {}
        for host in args.hosts:
            setup = set_up_host(
                f"{name}-{host.name}",
                parent=self,
                connection=deploy_ssh(host.address, args.ssh_private_key, host.host_key),
                droplet_id=host.droplet_id,
                bundles=bundles,
                activation=Activation(
                    "deploy",
                    deploy_command(),
                    triggers=[host.droplet_id, *image_triggers, args.env_sha256],
                    after=extra,
                ),
                reachable_after=extra,
                # Nothing on host N+1 changes before host N's deploy succeeded.
                install_after=previous_deploy,
            )
            self.deploys[host.name] = setup.activation
            previous_deploy = [setup.activation]

        self.images = images
        self.deploy_logs = pulumi.Output.all(
            **{host: deploy.stdout for host, deploy in self.deploys.items()}
        )
        self.register_outputs({"images": self.images, "deploy_logs": self.deploy_logs})
