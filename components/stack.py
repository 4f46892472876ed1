"""Composition: settings in, the stack's components out. No resource is declared before the
settings are valid, and nothing here branches on the stack's name."""

from __future__ import annotations

from collections.abc import Callable

import pulumi

from components.alerts import Alerts, AlertsArgs
from components.app_secrets import AppSecrets, AppSecretsArgs, PostgresLogin
from components.app_servers import AppHostTags, AppHostTagsArgs, AppServers, AppServersArgs
from components.app_source import SourceError, app_source, engine_is_mocked, ensure_checkout
from components.backups import Backups, BackupsArgs
from components.cache import ManagedValkey, ManagedValkeyArgs
from components.database import APP_DATABASE, ManagedPostgres, ManagedPostgresArgs
from components.deploy_key import DeployKey, DeployKeyArgs
from components.dns import SiteDns, SiteDnsArgs
from components.entry import Entry, EntryArgs
from components.firewall import AppFirewall, AppFirewallArgs
from components.host_files import HostFile
from components.host_ssh import HostKeys, HostKeysArgs
from components.images import ReleaseImages, ReleaseImagesArgs
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


def build_stack(settings: Settings, secrets: Secrets) -> dict[str, pulumi.Input[object]]:
    """Declare every component of the stack; return the stack outputs."""
    s, env = settings, settings.environment
    network = Network(
        f"{env}-network", NetworkArgs(environment=env, region=s.region, ip_range=s.vpc_ip_range)
    )
    tags = AppHostTags(f"{env}-tags", AppHostTagsArgs(environment=env))
    # The monitoring host probes and scrapes the data stores: their firewalls trust its tag.
    monitoring_tag = (
        MonitoringHostTag(f"{env}-monitoring-tag", MonitoringHostTagArgs(environment=env))
        if s.monitoring_enabled
        else None
    )
    data_store_clients = (tags.role, *((monitoring_tag.role,) if monitoring_tag else ()))
    deploy_key = DeployKey(f"{env}-deploy-key", DeployKeyArgs())
    database = ManagedPostgres(
        f"{env}-database",
        ManagedPostgresArgs(
            environment=env, region=s.region, version=s.db_version, size=s.db_size,
            node_count=s.db_node_count, vpc_id=network.vpc_id,
            maintenance_day=s.db_maintenance_day, maintenance_hour=s.db_maintenance_hour,
            trusted_tags=data_store_clients, slow_query_ms=s.db_slow_query_ms,
            connection=s.db_connection, pool_size=s.db_pool_size, protect=s.db_protect,
            read_replica=s.db_read_replica, read_replica_size=s.db_read_replica_size,
        ),
    )  # fmt: skip
    cache = ManagedValkey(
        f"{env}-cache",
        ManagedValkeyArgs(
            environment=env, region=s.region, version=s.cache_version, size=s.cache_size,
            node_count=s.cache_node_count, vpc_id=network.vpc_id,
            maintenance_day=s.db_maintenance_day, maintenance_hour=s.db_maintenance_hour,
            trusted_tags=data_store_clients, eviction_policy=s.cache_eviction_policy,
            persistence=s.cache_persistence, tunnel_port=s.cache_tunnel_port,
            protect=s.db_protect,
        ),
    )  # fmt: skip
    app = AppServers(
        f"{env}-app",
        AppServersArgs(
            environment=env, region=s.region, count=s.app_count, size=s.app_size,
            image=s.app_image, vpc_id=network.vpc_id,
            user_data=_app_user_data(s, deploy_key, cache), tags=tags,
            ssh_key_fingerprints=tuple(s.ssh_key_fingerprints), ipv6=s.app_ipv6,
            backups=s.app_backups, backup_plan=s.app_backup_plan,
            backup_weekday=s.app_backup_weekday, backup_hour=s.app_backup_hour,
            replace_on_user_data_change=s.app_replace_on_user_data_change,
        ),
    )  # fmt: skip
    # The first droplet's deploy (given after the Release below): with a reserved IP, the
    # address and the AAAA record move to a new droplet only once it serves.
    first_deploy, resolve_first_deploy = _deferred_resource()
    entry = Entry(
        f"{env}-entry",
        EntryArgs(
            environment=env, region=s.region, domain=s.domain, mode=s.edge_entry,
            vpc_id=network.vpc_id, droplet_tag=tags.role,
            droplet_ids=[d.id for d in app.droplets], droplet_ipv6=app.droplets[0].public_ipv6,
            move_after=first_deploy,
            ipv6=s.app_ipv6, lb_size_unit=s.lb_size_unit,
            websocket_idle_seconds=s.websocket_read_timeout_seconds,
        ),
    )  # fmt: skip
    firewall = AppFirewall(
        f"{env}-firewall",
        AppFirewallArgs(
            environment=env, droplet_tag=tags.role, admin_cidrs=tuple(s.admin_cidrs),
            vpc_ip_range=s.vpc_ip_range, load_balancer_id=entry.load_balancer_id,
        ),
    )  # fmt: skip
    db = database
    secret = AppSecrets(
        f"{env}-app-secrets",
        AppSecretsArgs(
            settings=s, secrets=secrets, cache_password=cache.password,
            app_database=PostgresLogin(
                db.app_host, db.app_port, db.app_user, db.app_password, db.app_database
            ),
            admin_database=PostgresLogin(
                db.host, db.port, db.admin_user, db.admin_password, db.database
            ),
        ),
    )  # fmt: skip
    # Each app droplet's SSH host key, trusted on first use and pinned from then on.
    host_keys = HostKeys(
        f"{env}-host-keys",
        HostKeysArgs(
            hosts={f"app-{n}": (d.id, d.public_ipv4) for n, d in enumerate(app.droplets, 1)},
            private_key=deploy_key.private_key_openssh, depends_on=(firewall,),
        ),
    )  # fmt: skip
    app_hosts = [
        AppHost(f"app-{n}", d.id, d.public_ipv4, host_keys.keys[f"app-{n}"])
        for n, d in enumerate(app.droplets, 1)
    ]
    source = app_source(s)
    if s.images_to_build and not engine_is_mocked():
        ensure_checkout(source)  # pulumi-docker hashes the build contexts at preview
    images = ReleaseImages(f"{env}-images", ReleaseImagesArgs(settings=s, source=source))
    release = Release(
        f"{env}-release",
        ReleaseArgs(
            settings=s, ssh_private_key=deploy_key.private_key_openssh,
            images=images.pinned, registry_docker_config=images.pull_docker_config,
            hosts=app_hosts,
            backend_env_file=secret.backend_env_file, db_admin_env_file=secret.db_admin_env_file,
            env_sha256=secret.env_sha256, depends_on=(database, cache, firewall),
        ),
    )  # fmt: skip
    resolve_first_deploy(pulumi.Output.from_input(release.deploys[app_hosts[0].name]))
    backups = Backups(
        f"{env}-backups",
        BackupsArgs(
            environment=env, domain=s.domain, bucket_region=s.effective_backup_region,
            retention_days=s.backup_retention_days, schedule=s.backup_schedule,
            database=APP_DATABASE, postgres_major=s.db_version,
            host=app_hosts[0],
            ssh_private_key=deploy_key.private_key_openssh, protect=s.db_protect,
            depends_on=(release,),
        ),
    )  # fmt: skip
    project_urns: list[pulumi.Input[str]] = [
        *app.droplet_urns, entry.resource_urn, database.cluster_urn, cache.cluster_urn,
        backups.bucket_urn,
    ]  # fmt: skip
    if s.dns_manage_domain:
        dns = SiteDns(
            f"{env}-dns",
            SiteDnsArgs(
                domain=s.domain, ipv4=entry.ipv4, ipv6=entry.ipv6, ttl=s.dns_ttl,
                contact_email=s.acme_email,
                address_after=() if s.uses_load_balancer else (first_deploy,),
            ),
        )  # fmt: skip
        project_urns.append(dns.domain_urn)
    Alerts(
        f"{env}-alerts",
        AlertsArgs(
            environment=env, site_url=s.site_url, droplet_tag=tags.role,
            database_cluster_ids=[database.cluster_id, cache.cluster_id],
            emails=tuple(s.alert_emails), cpu_percent=s.alert_cpu_percent,
            memory_percent=s.alert_memory_percent, disk_percent=s.alert_disk_percent,
            slack_channel=s.alert_slack_channel, slack_webhook_url=secrets.alert_slack_webhook_url,
        ),
    )  # fmt: skip
    outputs: dict[str, pulumi.Input[object]] = {}
    # What `python -m components ops` reaches (components/fleet): every host by role, plain.
    fleet_roles: dict[str, list[dict[str, pulumi.Input[object]]]] = {
        "app": [
            {"name": h.name, "droplet": d.name, "publicAddress": d.public_ipv4,
             "privateAddress": d.private_ipv4, "backups": n == 1,
             # The key each remote command pins: the fleet command pins the same one.
             "hostKey": h.host_key}
            for n, (h, d) in enumerate(zip(app_hosts, app.droplets, strict=True), 1)
        ]
    }  # fmt: skip
    if monitoring_tag is not None:
        if secrets.alert_smtp_password is None:
            raise SettingsError(env, ["alertSmtpPassword is required when monitoring is on"])
        monitoring = Monitoring(
            f"{env}-monitoring",
            MonitoringArgs(
                settings=s, vpc_id=network.vpc_id, tag=monitoring_tag,
                environment_tag=tags.environment, app_tag=tags.role,
                deploy_public_key=deploy_key.public_key_openssh,
                ssh_private_key=deploy_key.private_key_openssh,
                app_hosts=[
                    MonitoredAppHost(
                        h.name, d.name, d.id, d.public_ipv4, d.private_ipv4, h.host_key
                    )
                    for h, d in zip(app_hosts, app.droplets, strict=True)
                ],
                database=database, cache=cache, smtp_password=secrets.alert_smtp_password,
                slack_webhook_url=secrets.alert_slack_webhook_url,
            ),
        )  # fmt: skip
        project_urns += [monitoring.droplet_urn, monitoring.volume_urn]
        fleet_roles["monitoring"] = [
            {"name": "monitoring", "droplet": f"clipper-{env}-monitoring",
             "publicAddress": monitoring.public_ipv4, "privateAddress": monitoring.private_ipv4}
        ]  # fmt: skip
        outputs = {
            "monitoringAddress": monitoring.public_ipv4,
            "monitoringTunnel": monitoring.tunnel_command,
            "grafanaAdminPassword": monitoring.grafana_admin_password,
        }
    DigitalOceanProject(f"{env}-project", ProjectArgs(environment=env, resource_urns=project_urns))
    return {
        **outputs,
        "vpcId": network.vpc_id,
        "siteUrl": s.site_url,
        "publicAddress": entry.ipv4,
        "dropletPublicAddresses": app.public_ipv4s,
        "dropletPrivateAddresses": app.private_ipv4s,
        "databaseHost": database.host,
        "cacheHost": cache.host,
        "databaseUri": database.app_uri,
        "cacheUri": cache.uri,
        "releaseImages": release.images,
        "registryEndpoint": images.registry_endpoint,
        "releaseDeployLogs": release.deploy_logs,
        "backupBucket": backups.bucket_name,
        "backupEndpoint": backups.bucket_endpoint,
        "fleetHosts": fleet_roles,
        # A secret output: the fleet command's SSH key (`--show-secrets`); never printed plain.
        "deployPrivateKey": deploy_key.private_key_openssh,
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
