"""The app droplets: Ubuntu LTS hosts in the VPC, hardened and prepared by cloud-init."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as do

from components.host.files import role_tag
from components.renames import formerly
from components.settings import AccessSettings, AppServerSettings, IdentitySettings

# Droplet inputs that only matter when a droplet is built; changing one replaces the droplet.
BUILD_INPUTS: tuple[str, ...] = ("user_data", "image", "ssh_keys")


@dataclass(frozen=True)
class AppHostTagsArgs:
    """Whose tags: the stack's."""

    identity: IdentitySettings


class AppHostTags(pulumi.ComponentResource):
    """The droplet tags, declared first: the firewalls, database firewalls, load balancer and
    alerts select droplets by tag, and the tags must exist before anything refers to them.

    Attributes: `role` (`clipper-<env>-app`, host_files.role_tag), `environment`
    (`clipper-<env>`); both outputs of their Tag resources.
    """

    role: pulumi.Output[str]
    environment: pulumi.Output[str]

    def __init__(
        self, name: str, args: AppHostTagsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            "clipper:app_servers:AppHostTags",
            name,
            None,
            formerly("clipper:compute:AppHostTags", opts),
        )
        child = pulumi.ResourceOptions(parent=self)
        environment = args.identity.environment
        role = do.Tag(f"{name}-role", name=role_tag(environment, "app"), opts=child)
        env = do.Tag(f"{name}-environment", name=f"clipper-{environment}", opts=child)
        self.role, self.environment = role.name, env.name
        self.register_outputs({"role": self.role, "environment": self.environment})


@dataclass(frozen=True)
class AppDroplet:
    """One app host, as the release component and the outputs need it."""

    name: str
    id: pulumi.Output[str]
    urn: pulumi.Output[str]  # DigitalOcean URN (do:droplet:ID), for the project
    public_ipv4: pulumi.Output[str]
    private_ipv4: pulumi.Output[str]
    public_ipv6: pulumi.Output[str] | None
    resource: do.Droplet  # for `depends_on` of remote commands


@dataclass(frozen=True)
class AppServersArgs:
    """The stack, the droplets' settings (how many, of what shape, backups, replacement), the
    operators' account keys, and the network, user-data and tags the droplets get."""

    identity: IdentitySettings
    servers: AppServerSettings
    access: AccessSettings  # its DigitalOcean account keys go on each droplet
    vpc_id: pulumi.Input[str]
    user_data: pulumi.Input[str]
    tags: AppHostTags


class AppServers(pulumi.ComponentResource):
    """`count` droplets named `clipper-<env>-app-<n>`, tagged with the app role tag (which the
    firewalls, the load balancer and the alerts select on) and the environment tag.

    Attributes for other components:
    - `droplets`: list of `AppDroplet` (name, id, urn, public_ipv4, private_ipv4, public_ipv6,
      resource), in order;
    - `tag`: the role tag `clipper-<env>-app` (an output of its Tag resource);
    - `droplet_urns`, `private_ipv4s`, `public_ipv4s`: lists of outputs.

    The inputs a droplet is built from (user-data, image, account SSH keys) force a replacement
    when they change, and Pulumi would replace every droplet at once. So they replace droplets
    only when `app_replace_on_user_data_change` is set; otherwise they are `ignore_changes` (the
    running droplets stay, a new droplet is built from the new inputs) and operators roll the
    droplets one at a time (README, "Roll the app droplets").
    """

    droplets: list[AppDroplet]
    tag: pulumi.Output[str]
    droplet_urns: list[pulumi.Output[str]]
    private_ipv4s: list[pulumi.Output[str]]
    public_ipv4s: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: AppServersArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(
            "clipper:app_servers:AppServers",
            name,
            None,
            formerly("clipper:compute:AppServers", opts),
        )
        self.tag = args.tags.role
        servers = args.servers
        backup_policy = _backup_policy(servers)
        # Off: a user-data change leaves running droplets alone (roll them one at a time, README).
        ignore = [] if servers.app_replace_on_user_data_change else list(BUILD_INPUTS)
        self.droplets = [
            self._droplet(name, number, args, backup_policy, ignore)
            for number in range(1, servers.app_count + 1)
        ]
        self.droplet_urns = [d.urn for d in self.droplets]
        self.private_ipv4s = [d.private_ipv4 for d in self.droplets]
        self.public_ipv4s = [d.public_ipv4 for d in self.droplets]
        self.register_outputs(
            {
                "droplet_names": [d.name for d in self.droplets],
                "private_ipv4s": self.private_ipv4s,
                "public_ipv4s": self.public_ipv4s,
            }
        )

    def _droplet(
        self,
        name: str,
        number: int,
        args: AppServersArgs,
        backup_policy: do.DropletBackupPolicyArgs | None,
        ignore: list[str],
    ) -> AppDroplet:
        """App host number `number`: `clipper-<env>-app-<n>`, both tags, the stack's user-data."""
        servers = args.servers
        droplet_name = f"clipper-{args.identity.environment}-app-{number}"
        droplet = do.Droplet(
            f"{name}-{number}",
            name=droplet_name,
            region=args.identity.region,
            size=servers.app_size,
            image=servers.app_image,
            vpc_uuid=args.vpc_id,
            ipv6=servers.app_ipv6,
            monitoring=True,
            ssh_keys=list(args.access.ssh_key_fingerprints),
            tags=[args.tags.role, args.tags.environment],
            user_data=args.user_data,
            backups=servers.app_backups,
            backup_policy=backup_policy,
            graceful_shutdown=True,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=ignore),
        )
        return AppDroplet(
            name=droplet_name,
            id=droplet.id,
            urn=droplet.droplet_urn,
            public_ipv4=droplet.ipv4_address,
            private_ipv4=droplet.ipv4_address_private,
            public_ipv6=droplet.ipv6_address if servers.app_ipv6 else None,
            resource=droplet,
        )


def _backup_policy(servers: AppServerSettings) -> do.DropletBackupPolicyArgs | None:
    """DigitalOcean's droplet backups when `appBackups` is on (the weekday only when weekly)."""
    if not servers.app_backups:
        return None
    return do.DropletBackupPolicyArgs(
        plan=servers.app_backup_plan,
        weekday=servers.app_backup_weekday if servers.app_backup_plan == "weekly" else None,
        hour=servers.app_backup_hour,
    )
