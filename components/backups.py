"""Backups beyond what DigitalOcean keeps: daily logical dumps of the app database in a Spaces
bucket of the stack, kept `backupRetentionDays`, and a weekly restore drill.

DigitalOcean already keeps daily cluster backups with 7 days of point-in-time recovery (and
droplet backups where `appBackups` is on). Those live and die with the cluster and its account
settings; a logical dump in object storage is restorable into any PostgreSQL (another cluster,
another region, a laptop), survives deleting the cluster, and is kept 30 days as the operators
asked. What this component declares:

- a private Spaces bucket, versioned, with one lifecycle rule: objects expire after the retention
  days, overwritten or deleted versions after `NONCURRENT_VERSION_DAYS`, and abandoned multipart
  uploads after a day; `protect`ed (and retained on delete) when the database is;
- a Spaces access key whose only grant is read-write on that bucket;
- on the FIRST app droplet only, over SSH as the `deploy` user (like the release): the
  `clipper-backup` launcher, the `clipper` host package, its config and systemd units (a
  RemoteFiles bundle), the key as a 0600 env file (a second, secret bundle), and one command
  that installs rclone and a `pg_dump` as new as the server, and starts the timers.

Why the first app droplet: it always exists (appCount >= 1), the database firewall already trusts
it, it holds the admin login the release writes (host_layout.DB_ADMIN_ENV_FILE), and one host
must run the job, or every droplet would dump the same database. A dump is light work for the
host (one connection, mostly the server's I/O) and runs at night with low CPU and I/O priority.
If that droplet is replaced, the new one gets everything again (the droplet id is a trigger).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_command as command
import pulumi_digitalocean as do

from components.database import APP_DATABASE
from components.host import layout as host_layout
from components.host.connection import AppHost, deploy_ssh
from components.host.files import HostFile
from components.host.remote_files import RemoteFile, host_package_files
from components.host.setup import Activation, Bundle, set_up_host
from components.renderers.backup_units import (
    TIMERS,
    BackupTarget,
    backup_host_files,
    render_backup_credentials,
)
from components.settings import BackupSettings, DatabaseSettings, IdentitySettings

BACKUP_SCRIPT_SOURCE = Path(__file__).resolve().parents[1] / "hostscripts" / "clipper-backup"

# A deleted or overwritten backup stays recoverable this long (versioning), then goes.
NONCURRENT_VERSION_DAYS = 7
ABORT_MULTIPART_DAYS = 1
PGDG_SETUP = "/usr/share/postgresql-common/pgdg/apt.postgresql.org.sh"
_BUCKET_MAX = 63


def bucket_name(domain: str) -> str:
    """A bucket name unique to the stack: Spaces names are global, and each stack has its own
    domain. Lower-case letters, digits and dashes, at most 63 characters."""
    base = re.sub(r"[^a-z0-9-]", "-", domain.lower()).strip("-")
    name = f"{base}-backups"
    if len(name) > _BUCKET_MAX:
        digest = hashlib.sha256(domain.encode()).hexdigest()[:8]
        name = f"{base[: _BUCKET_MAX - len('-backups') - 9].rstrip('-')}-{digest}-backups"
    return name


def enable_command(postgres_major: str) -> str:
    """Install rclone and `postgresql-client-<major>` when missing, then (re)load the units and
    start both timers. Idempotent; prints the timers' next runs.

    pg_dump must be at least the server's major version and Ubuntu's own client is older than
    DigitalOcean's PostgreSQL 17, so the PGDG repository is added with the script Ubuntu's
    postgresql-common ships for exactly that. rclone is Ubuntu's package.
    """
    apt = "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=600"
    client = f"postgresql-client-{postgres_major}"
    timers = " ".join(TIMERS)
    return "\n".join(
        [
            "set -eu",
            f"if [ ! -x /usr/lib/postgresql/{postgres_major}/bin/pg_dump ]; then",
            f"  if [ ! -x {PGDG_SETUP} ]; then",
            f'    echo "{PGDG_SETUP} is missing: cannot install {client}" >&2; exit 1',
            "  fi",
            f"  sudo -n {PGDG_SETUP} -y >/dev/null",
            f"  {apt} install -y --no-install-recommends {client}",
            "fi",
            "if ! command -v rclone >/dev/null; then",
            f"  {apt} update && {apt} install -y --no-install-recommends rclone",
            "fi",
            "sudo -n systemctl daemon-reload",
            f"sudo -n systemctl enable --now {timers}",
            f"systemctl list-timers --no-pager {timers}",
        ]
    )


@dataclass(frozen=True)
class BackupsArgs:
    """The stack, its backup and database settings, the bucket's region; which host runs them."""

    identity: IdentitySettings
    backups: BackupSettings
    database: DatabaseSettings  # its major version (pg_dump's) and its protect switch
    bucket_region: str  # resolved: backupRegion, or the stack's region (Settings)
    host: AppHost  # the first app droplet
    # The deploy user's private key (OpenSSH PEM), a secret.
    ssh_private_key: pulumi.Input[str]
    # What must be on the host first: the release (it writes the admin env file).
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)


class Backups(pulumi.ComponentResource):
    """The stack's backup bucket, its scoped key, and the backup job on the first app host.

    Attributes: `bucket_name`, `bucket_urn` (for the project), `bucket_region`,
    `bucket_endpoint` (plain), `backup_host` (the droplet's short name), `timers` (the install
    command's report of the next runs).
    """

    bucket_name: pulumi.Output[str]
    bucket_urn: pulumi.Output[str]
    bucket_region: pulumi.Output[str]
    bucket_endpoint: pulumi.Output[str]
    backup_host: str
    timers: pulumi.Output[str]

    def __init__(
        self, name: str, args: BackupsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clipper:backups:Backups", name, None, opts)
        bucket = self._bucket(name, args)
        key = do.SpacesKey(
            f"{name}-key",
            name=f"clipper-{args.identity.environment}-backup",
            grants=[do.SpacesKeyGrantArgs(bucket=bucket.name, permission="readwrite")],
            opts=pulumi.ResourceOptions(parent=self),
        )
        target = BackupTarget(
            environment=args.identity.environment,
            database=APP_DATABASE,
            bucket=bucket_name(args.identity.domain),
            region=args.bucket_region,
        )
        enable = self._set_up_backup_host(name, args, target, key)

        self.bucket_name = bucket.name
        self.bucket_urn = bucket.bucket_urn
        self.bucket_region = pulumi.Output.from_input(args.bucket_region)
        self.bucket_endpoint = pulumi.Output.from_input(target.endpoint)
        self.backup_host = args.host.name
        self.timers = enable.stdout
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_endpoint": self.bucket_endpoint,
                "backup_host": self.backup_host,
            }
        )

    def _bucket(self, name: str, args: BackupsArgs) -> do.SpacesBucket:
        """The private, versioned bucket whose lifecycle rule keeps each backup its days."""
        return do.SpacesBucket(
            f"{name}-bucket",
            name=bucket_name(args.identity.domain),
            region=args.bucket_region,
            acl="private",
            force_destroy=False,
            versioning=do.SpacesBucketVersioningArgs(enabled=True),
            lifecycle_rules=[
                do.SpacesBucketLifecycleRuleArgs(
                    id="backup-retention",
                    enabled=True,
                    expiration=do.SpacesBucketLifecycleRuleExpirationArgs(
                        days=args.backups.backup_retention_days
                    ),
                    noncurrent_version_expiration=(
                        do.SpacesBucketLifecycleRuleNoncurrentVersionExpirationArgs(
                            days=NONCURRENT_VERSION_DAYS
                        )
                    ),
                    abort_incomplete_multipart_upload_days=ABORT_MULTIPART_DAYS,
                )
            ],
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.database.db_protect,
                retain_on_delete=args.database.db_protect,
            ),
        )

    def _set_up_backup_host(
        self, name: str, args: BackupsArgs, target: BackupTarget, key: do.SpacesKey
    ) -> command.remote.Command:
        """The job on the backup host: its files, the key as a 0600 env file, and the command
        that installs the clients and starts the timers (the host setup's activation)."""
        host_files = [
            HostFile(host_layout.BACKUP_SCRIPT, BACKUP_SCRIPT_SOURCE.read_text(), "0755"),
            *host_package_files(),
            *backup_host_files(target, args.backups.backup_schedule),
        ]
        # Built inside apply from a secret, and wrapped again: it never becomes plain state.
        credential_text: pulumi.Output[str] = pulumi.Output.all(
            key.access_key, key.secret_key
        ).apply(lambda v: render_backup_credentials(str(v[0]), str(v[1])))
        credentials: pulumi.Output[str] = pulumi.Output.secret(credential_text)
        # Re-run when the host, the units or the client version change (file changes re-run
        # the bundles themselves; the timers pick up new unit text only after daemon-reload).
        units_digest = hashlib.sha256(
            "".join(f.path + f.mode + f.content for f in host_files).encode()
        ).hexdigest()
        setup = set_up_host(
            name,
            parent=self,
            connection=deploy_ssh(args.host.address, args.ssh_private_key, args.host.host_key),
            droplet_id=args.host.droplet_id,
            bundles=[
                Bundle("files", "app", [RemoteFile(f.path, f.content, f.mode) for f in host_files]),
                Bundle(
                    "credentials",
                    "app",
                    [RemoteFile(host_layout.BACKUP_CREDENTIALS_FILE, credentials, "0600")],
                    secret=True,
                ),
            ],
            activation=Activation(
                "enable",
                enable_command(args.database.db_version),
                triggers=[args.host.droplet_id, units_digest, args.database.db_version],
            ),
            # The release waited for the host and wrote the admin env file the job reads.
            wait_for_host=False,
            install_after=args.depends_on,
        )
        return setup.activation
