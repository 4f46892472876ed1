"""Composition: settings in, the stack's components out. No resource is declared before the
settings are valid, and nothing here branches on the stack's name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi

from components.alerts import Alerts, AlertsArgs
from components.app_secrets import AppSecrets, AppSecretsArgs, PostgresLogin
from components.app_servers import AppHostTags, AppHostTagsArgs, AppServers, AppServersArgs
from components.backups import Backups, BackupsArgs
from components.cache import ManagedValkey, ManagedValkeyArgs
from components.database import ManagedPostgres, ManagedPostgresArgs
from components.deploy_key import DeployKey, DeployKeyArgs
from components.dns import SiteDns, SiteDnsArgs
from components.entry import Entry, EntryArgs
from components.firewall import AppFirewall, AppFirewallArgs
from components.host.files import HostFile
from components.host.keys import HostKeys, HostKeysArgs
from components.images.release_images import ReleaseImages, ReleaseImagesArgs
from components.images.source import SourceError, app_source, engine_is_mocked, ensure_checkout
from components.monitoring import (
    MonitoredAppHost,
    Monitoring,
    MonitoringArgs,
    MonitoringHostTag,
    MonitoringHostTagArgs,
)
from components.network import DigitalOceanProject, Network, NetworkArgs, ProjectArgs
from components.release import AppHost, Release, ReleaseArgs
from components.renderers.cloud_init import render_app_user_data
from components.renderers.edge import edge_bootstrap_commands, edge_host_files
from components.settings import Secrets, Settings, SettingsError, load_settings


def _edge_host_files(settings: Settings) -> tuple[list[HostFile], list[str]]:
    """The edge's files and bootstrap commands for cloud-init (components/renderers/edge.py)."""
    return edge_host_files(settings), edge_bootstrap_commands(settings)


def _app_user_data(
    settings: Settings, deploy_key: DeployKey, cache: ManagedValkey
) -> pulumi.Output[str]:
    files, commands = _edge_host_files(settings)
    return pulumi.Output.all(
        deploy_key.public_key_openssh, cache.host, cache.port, cache.ca_certificate
    ).apply(
        lambda v: render_app_user_data(
            settings,
            deploy_public_key=v[0],
            valkey_host=v[1],
            valkey_port=int(v[2]),
            valkey_ca_certificate=v[3],
            extra_files=files,
            extra_commands=commands,
        )
    )


def _deferred_resource() -> tuple[
    pulumi.Output[pulumi.Resource], Callable[[pulumi.Output[pulumi.Resource]], None]
]:
    """A resource to depend on, named now and given later (pulumi.deferred_output)."""
    return pulumi.deferred_output()


@dataclass(frozen=True)
class _Foundation:
    """What everything else is placed in, tagged with or reached by."""

    network: Network
    tags: AppHostTags
    monitoring_tag: MonitoringHostTag | None
    deploy_key: DeployKey

    @property
    def data_store_clients(self) -> tuple[pulumi.Output[str], ...]:
        """The tags the data stores' firewalls trust: the app hosts', and the monitoring
        host's (it probes and scrapes the data stores)."""
        monitoring = (self.monitoring_tag.role,) if self.monitoring_tag else ()
        return (self.tags.role, *monitoring)


@dataclass(frozen=True)
class _DataStores:
    database: ManagedPostgres
    cache: ManagedValkey


@dataclass(frozen=True)
class _AppTier:
    """The app droplets, what fronts them, and each as SSH reaches it; `first_deploy` is the
    first droplet's deploy, given by `resolve_first_deploy` once the release declares it."""

    servers: AppServers
    entry: Entry
    firewall: AppFirewall
    hosts: list[AppHost]
    first_deploy: pulumi.Output[pulumi.Resource]
    resolve_first_deploy: Callable[[pulumi.Output[pulumi.Resource]], None]


def _foundation(s: Settings) -> _Foundation:
    env = s.environment
    network = Network(f"{env}-network", NetworkArgs(identity=s.identity, network=s.network))
    tags = AppHostTags(f"{env}-tags", AppHostTagsArgs(identity=s.identity))
    monitoring_tag = (
        MonitoringHostTag(f"{env}-monitoring-tag", MonitoringHostTagArgs(identity=s.identity))
        if s.monitoring_enabled
        else None
    )
    deploy_key = DeployKey(f"{env}-deploy-key", DeployKeyArgs())
    return _Foundation(network, tags, monitoring_tag, deploy_key)


def _data_stores(s: Settings, base: _Foundation) -> _DataStores:
    env, vpc_id, clients = s.environment, base.network.vpc_id, base.data_store_clients
    database = ManagedPostgres(
        f"{env}-database",
        ManagedPostgresArgs(
            identity=s.identity, database=s.database, vpc_id=vpc_id, trusted_tags=clients
        ),
    )
    cache = ManagedValkey(
        f"{env}-cache",
        ManagedValkeyArgs(
            identity=s.identity, cache=s.cache, database=s.database, vpc_id=vpc_id,
            trusted_tags=clients,
        ),
    )  # fmt: skip
    return _DataStores(database, cache)


def _app_tier(s: Settings, base: _Foundation, stores: _DataStores) -> _AppTier:
    env = s.environment
    servers = AppServers(
        f"{env}-app",
        AppServersArgs(
            identity=s.identity, servers=s.app_servers, access=s.access,
            vpc_id=base.network.vpc_id, user_data=_app_user_data(s, base.deploy_key, stores.cache),
            tags=base.tags,
        ),
    )  # fmt: skip
    # The first droplet's deploy (given after the Release): with a reserved IP, the address and
    # the AAAA record move to a new droplet only once it serves.
    first_deploy, resolve_first_deploy = _deferred_resource()
    entry = Entry(
        f"{env}-entry",
        EntryArgs(
            identity=s.identity, edge=s.edge, vpc_id=base.network.vpc_id,
            droplet_tag=base.tags.role, droplet_ids=[d.id for d in servers.droplets],
            droplet_ipv6=servers.droplets[0].public_ipv6, move_after=first_deploy,
        ),
    )  # fmt: skip
    firewall = AppFirewall(
        f"{env}-firewall",
        AppFirewallArgs(
            identity=s.identity, network=s.network, droplet_tag=base.tags.role,
            load_balancer_id=entry.load_balancer_id,
        ),
    )  # fmt: skip
    hosts = _app_hosts(env, base, servers, firewall)
    return _AppTier(servers, entry, firewall, hosts, first_deploy, resolve_first_deploy)


def _app_hosts(
    env: str, base: _Foundation, servers: AppServers, firewall: AppFirewall
) -> list[AppHost]:
    """Each app droplet as SSH reaches it, its host key trusted on first use and then pinned."""
    droplets = {f"app-{n}": d for n, d in enumerate(servers.droplets, 1)}
    host_keys = HostKeys(
        f"{env}-host-keys",
        HostKeysArgs(
            hosts={name: (d.id, d.public_ipv4) for name, d in droplets.items()},
            private_key=base.deploy_key.private_key_openssh, depends_on=(firewall,),
        ),
    )  # fmt: skip
    return [AppHost(n, d.id, d.public_ipv4, host_keys.keys[n]) for n, d in droplets.items()]


def _app_secrets(s: Settings, secrets: Secrets, stores: _DataStores) -> AppSecrets:
    db = stores.database
    return AppSecrets(
        f"{s.environment}-app-secrets",
        AppSecretsArgs(
            settings=s, secrets=secrets, cache_password=stores.cache.password,
            app_database=PostgresLogin(
                db.app_host, db.app_port, db.app_user, db.app_password, db.app_database
            ),
            admin_database=PostgresLogin(
                db.host, db.port, db.admin_user, db.admin_password, db.database
            ),
        ),
    )  # fmt: skip


def _release_images(s: Settings) -> ReleaseImages:
    source = app_source(s)
    if s.images_to_build and not engine_is_mocked():
        ensure_checkout(source)  # pulumi-docker hashes the build contexts at preview
    return ReleaseImages(f"{s.environment}-images", ReleaseImagesArgs(settings=s, source=source))


def _release(
    s: Settings, secrets: Secrets, base: _Foundation, stores: _DataStores, tier: _AppTier
) -> tuple[ReleaseImages, Release]:
    """The app's secrets and images, and their release on every app host; the first host's
    deploy is what the entry's address (and DNS) wait for."""
    app_secrets = _app_secrets(s, secrets, stores)
    images = _release_images(s)
    release = Release(
        f"{s.environment}-release",
        ReleaseArgs(
            settings=s, ssh_private_key=base.deploy_key.private_key_openssh,
            images=images.pinned, registry_docker_config=images.pull_docker_config,
            hosts=tier.hosts,
            backend_env_file=app_secrets.backend_env_file,
            db_admin_env_file=app_secrets.db_admin_env_file, env_sha256=app_secrets.env_sha256,
            depends_on=(stores.database, stores.cache, tier.firewall),
        ),
    )  # fmt: skip
    tier.resolve_first_deploy(pulumi.Output.from_input(release.deploys[tier.hosts[0].name]))
    return images, release


def _backups(s: Settings, base: _Foundation, tier: _AppTier, release: Release) -> Backups:
    return Backups(
        f"{s.environment}-backups",
        BackupsArgs(
            identity=s.identity, backups=s.backups, database=s.database,
            bucket_region=s.effective_backup_region, host=tier.hosts[0],
            ssh_private_key=base.deploy_key.private_key_openssh, depends_on=(release,),
        ),
    )  # fmt: skip


def _site_dns(s: Settings, tier: _AppTier) -> SiteDns:
    # With a reserved IP, the apex records follow the address: after the first deploy.
    after = () if s.uses_load_balancer else (tier.first_deploy,)
    return SiteDns(
        f"{s.environment}-dns",
        SiteDnsArgs(
            identity=s.identity, dns=s.dns, edge=s.edge, ipv4=tier.entry.ipv4,
            ipv6=tier.entry.ipv6, address_after=after,
        ),
    )  # fmt: skip


def _alerts(s: Settings, secrets: Secrets, base: _Foundation, stores: _DataStores) -> Alerts:
    return Alerts(
        f"{s.environment}-alerts",
        AlertsArgs(
            identity=s.identity, alerts=s.alerts, droplet_tag=base.tags.role,
            database_cluster_ids=[stores.database.cluster_id, stores.cache.cluster_id],
            slack_webhook_url=secrets.alert_slack_webhook_url,
        ),
    )  # fmt: skip


def _monitoring(
    s: Settings, secrets: Secrets, base: _Foundation, stores: _DataStores, tier: _AppTier
) -> Monitoring | None:
    if base.monitoring_tag is None:
        return None
    if secrets.alert_smtp_password is None:
        raise SettingsError(s.environment, ["alertSmtpPassword is required when monitoring is on"])
    return Monitoring(
        f"{s.environment}-monitoring",
        MonitoringArgs(
            settings=s, vpc_id=base.network.vpc_id, tag=base.monitoring_tag,
            environment_tag=base.tags.environment, app_tag=base.tags.role,
            deploy_public_key=base.deploy_key.public_key_openssh,
            ssh_private_key=base.deploy_key.private_key_openssh,
            app_hosts=[
                MonitoredAppHost(h.name, d.name, d.id, d.public_ipv4, d.private_ipv4, h.host_key)
                for h, d in zip(tier.hosts, tier.servers.droplets, strict=True)
            ],
            database=stores.database, cache=stores.cache,
            smtp_password=secrets.alert_smtp_password,
            slack_webhook_url=secrets.alert_slack_webhook_url,
        ),
    )  # fmt: skip


def _fleet_hosts(
    env: str, tier: _AppTier, monitoring: Monitoring | None
) -> dict[str, list[dict[str, pulumi.Input[object]]]]:
    """What `python -m components ops` reaches (components/fleet): every host by role, plain."""
    roles: dict[str, list[dict[str, pulumi.Input[object]]]] = {
        "app": [
            {"name": h.name, "droplet": d.name, "publicAddress": d.public_ipv4,
             "privateAddress": d.private_ipv4, "backups": n == 1,
             # The key each remote command pins: the fleet command pins the same one.
             "hostKey": h.host_key}
            for n, (h, d) in enumerate(zip(tier.hosts, tier.servers.droplets, strict=True), 1)
        ]
    }  # fmt: skip
    if monitoring is not None:
        roles["monitoring"] = [
            {"name": "monitoring", "droplet": f"clipper-{env}-monitoring",
             "publicAddress": monitoring.public_ipv4, "privateAddress": monitoring.private_ipv4}
        ]  # fmt: skip
    return roles


def _monitoring_outputs(monitoring: Monitoring | None) -> dict[str, pulumi.Input[object]]:
    if monitoring is None:
        return {}
    return {
        "monitoringAddress": monitoring.public_ipv4,
        "monitoringTunnel": monitoring.tunnel_command,
        "grafanaAdminPassword": monitoring.grafana_admin_password,
    }


def build_stack(settings: Settings, secrets: Secrets) -> dict[str, pulumi.Input[object]]:
    """Declare every component of the stack, in dependency order; return the stack outputs."""
    s, env = settings, settings.environment
    base = _foundation(s)
    stores = _data_stores(s, base)
    tier = _app_tier(s, base, stores)
    images, release = _release(s, secrets, base, stores, tier)
    backups = _backups(s, base, tier, release)
    project_urns: list[pulumi.Input[str]] = [
        *tier.servers.droplet_urns, tier.entry.resource_urn, stores.database.cluster_urn,
        stores.cache.cluster_urn, backups.bucket_urn,
    ]  # fmt: skip
    if s.dns_manage_domain:
        project_urns.append(_site_dns(s, tier).domain_urn)
    _alerts(s, secrets, base, stores)
    monitoring = _monitoring(s, secrets, base, stores, tier)
    if monitoring is not None:
        project_urns += [monitoring.droplet_urn, monitoring.volume_urn]
    DigitalOceanProject(
        f"{env}-project", ProjectArgs(identity=s.identity, resource_urns=project_urns)
    )
    return {
        **_monitoring_outputs(monitoring),
        "vpcId": base.network.vpc_id,
        "siteUrl": s.site_url,
        "publicAddress": tier.entry.ipv4,
        "dropletPublicAddresses": tier.servers.public_ipv4s,
        "dropletPrivateAddresses": tier.servers.private_ipv4s,
        "databaseHost": stores.database.host,
        "cacheHost": stores.cache.host,
        "databaseUri": stores.database.app_uri,
        "cacheUri": stores.cache.uri,
        "releaseImages": release.images,
        "registryEndpoint": images.registry_endpoint,
        "releaseDeployLogs": release.deploy_logs,
        "backupBucket": backups.bucket_name,
        "backupEndpoint": backups.bucket_endpoint,
        "fleetHosts": _fleet_hosts(env, tier, monitoring),
        # A secret output: the fleet command's SSH key (`--show-secrets`); never printed plain.
        "deployPrivateKey": base.deploy_key.private_key_openssh,
    }


def main() -> None:
    """The program: load and validate settings (stopping with a clear error), build, export."""
    try:
        settings, secrets = load_settings()
    except SettingsError as err:
        raise pulumi.RunError(str(err)) from err
    try:
        outputs = build_stack(settings, secrets)
    except SourceError as err:
        raise pulumi.RunError(str(err)) from err
    for name, value in outputs.items():
        pulumi.export(name, value)
