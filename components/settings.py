"""Stack settings: the only code that reads `pulumi.Config`.

Every difference between staging and production is a setting here; no other code branches on
the stack's name. `parse_settings` is pure (raw config in, a frozen `Settings` out, or a
`SettingsError` listing every problem at once); `load_settings` feeds it from the Pulumi
runtime and also collects the secret values as Pulumi secrets.

Config keys are flat camelCase keys in the `clipper-infra` namespace (`pulumi config set appCount
2`), declared with a description and a default in `Pulumi.yaml`; a test keeps that file and
this model in step.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from components import image_rules, provider_rules, slugs

if TYPE_CHECKING:
    import pulumi

PROJECT = "clipper-infra"
# Where Pulumi.yaml lives: the working directory of `pulumi up`, and the root of relative paths.
PROJECT_DIR = Path(__file__).resolve().parents[1]

# PostgreSQL extensions the app's migrations need; created with the admin user before migrating.
DATABASE_EXTENSIONS: tuple[str, ...] = ("pgcrypto", "pg_trgm", "vector", "ltree")


class SettingsError(Exception):
    """Invalid stack settings: one line per problem, each naming the key, the value and the rule."""

    def __init__(self, stack: str, problems: list[str]) -> None:
        self.stack = stack
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"stack '{stack}' has {len(problems)} invalid setting(s); nothing was created:\n{lines}"
        )


# ---------------------------------------------------------------- value checks (pure functions)


def _one_of(allowed: frozenset[str] | tuple[str, ...], what: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in allowed:
            near = difflib.get_close_matches(value, list(allowed), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            raise ValueError(f"not a known {what}{hint}; allowed: {', '.join(sorted(allowed))}")
        return value

    return AfterValidator(check)


_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)(?!-)([a-z0-9-]{1,63}(?<!-)\.)+[a-z]{2,63}$")
_EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]+@([a-z0-9-]+\.)+[a-z]{2,63}$")
_HOUR_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_FINGERPRINT_RE = re.compile(r"^([0-9a-f]{2}:){15}[0-9a-f]{2}$")
_PUBLIC_KEY_RE = re.compile(
    r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}( \S.*)?$"
)


def _domain(value: str) -> str:
    if not _DOMAIN_RE.match(value):
        raise ValueError("not a lower-case DNS name such as clipper.example.com")
    return value


def _email(value: str) -> str:
    if not _EMAIL_RE.match(value):
        raise ValueError("not an email address such as ops@example.com")
    return value


def _admin_cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise ValueError(f"not a CIDR network such as 203.0.113.0/24 ({err})") from None
    if network.prefixlen == 0:
        raise ValueError("opens SSH to the whole internet; allowed: a specific admin network")
    return value


def _vpc_range(value: str) -> str:
    problem = provider_rules.vpc_range_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _hour(value: str) -> str:
    if not _HOUR_RE.match(value):
        raise ValueError("allowed: a UTC time of day as HH:MM, such as 04:00")
    return value


def _fingerprint(value: str) -> str:
    if not _FINGERPRINT_RE.match(value):
        raise ValueError("allowed: an MD5 key fingerprint as shown by DigitalOcean (aa:bb:...:ff)")
    return value


def _public_key(value: str) -> str:
    if not _PUBLIC_KEY_RE.match(value.strip()):
        raise ValueError("allowed: an OpenSSH public key line (ssh-ed25519, ecdsa-sha2-*, ssh-rsa)")
    return value.strip()


_WEEKDAY = r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_CALENDAR_RE = re.compile(
    rf"^(?:(?P<weekdays>{_WEEKDAY}((,|\.\.){_WEEKDAY})*) )?"
    r"(?P<year>[^ :-]+)-(?P<month>[^ :-]+)-(?P<day>[^ :-]+) "
    r"(?P<hour>[^ :-]+):(?P<minute>[^ :-]+)(?::(?P<second>[^ :-]+))?(?: UTC)?$"
)
_CALENDAR_PART_RE = re.compile(r"^(\*|\d+(\.\.\d+)?)(/\d+)?$")
_CALENDAR_BOUNDS = {
    "year": (1970, 2199), "month": (1, 12), "day": (1, 31),
    "hour": (0, 23), "minute": (0, 59), "second": (0, 59),
}  # fmt: skip


def _calendar_field(name: str, text: str) -> str | None:
    """The problem with one field of an OnCalendar time, or None."""
    low, high = _CALENDAR_BOUNDS[name]
    for part in text.split(","):
        match = _CALENDAR_PART_RE.match(part)
        if not match:
            return f"the {name} field {text!r} is not '*', a number, a range a..b or a list"
        numbers = [int(n) for n in re.findall(r"\d+", match[1])]
        if any(not low <= n <= high for n in numbers):
            return f"the {name} field {text!r} is outside {low}..{high}"
    return None


def _calendar(value: str) -> str:
    """A systemd OnCalendar expression in its explicit form, run at most hourly."""
    match = _CALENDAR_RE.match(value)
    if not match:
        raise ValueError(
            "not a systemd OnCalendar time such as '*-*-* 03:15:00 UTC' (optional weekdays"
            " first, then year-month-day hour:minute[:second], optional UTC)"
        )
    for name in _CALENDAR_BOUNDS:
        problem = match[name] is not None and _calendar_field(name, match[name])
        if problem:
            raise ValueError(problem)
    if "*" in match["minute"] or "/" in match["minute"] or "," in match["minute"]:
        raise ValueError("runs more than once an hour; allowed: one fixed minute")
    return value


def _spaces_region(value: str) -> str:
    if value and value not in slugs.SPACES_REGIONS:
        raise ValueError(
            "has no Spaces object storage; allowed: empty (the stack's region) or "
            + ", ".join(sorted(slugs.SPACES_REGIONS))
        )
    return value


def _optional_email(value: str) -> str:
    return _email(value) if value else value


def _smarthost(value: str) -> str:
    if not re.match(r"^[a-z0-9.-]+\.[a-z]{2,63}:[0-9]{1,5}$", value):
        raise ValueError("allowed: an SMTP relay as host:port, such as smtp.sendgrid.net:587")
    return value


def _https_origin(value: str) -> str:
    if not re.match(r"^https://[a-z0-9.-]+(:[0-9]{1,5})?$", value):
        raise ValueError(
            "allowed: an https origin with no path, such as https://clipper.example.com"
        )
    return value


Region = Annotated[str, _one_of(slugs.REGIONS, "DigitalOcean region")]
DropletSize = Annotated[str, _one_of(slugs.DROPLET_SIZES, "droplet size")]
DropletImage = Annotated[str, _one_of(slugs.DROPLET_IMAGES, "Ubuntu LTS image")]
DatabaseSize = Annotated[str, _one_of(slugs.DATABASE_SIZES, "database size")]
Weekday = Annotated[str, _one_of(slugs.WEEKDAYS, "weekday")]
Domain = Annotated[str, AfterValidator(_domain)]
Email = Annotated[str, AfterValidator(_email)]
AdminCidr = Annotated[str, AfterValidator(_admin_cidr)]
Hour = Annotated[str, AfterValidator(_hour)]
PinnedImage = Annotated[str, AfterValidator(image_rules.pinned_image)]
ImageSource = Annotated[str, AfterValidator(image_rules.image_source)]
Origin = Annotated[str, AfterValidator(_https_origin)]


class Settings(BaseModel):
    """Every non-secret setting of one stack, validated. Field docs are the operators' docs."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )

    # --- where and what
    environment: Literal["staging", "production"] = Field(
        description="Sent to the app as ENVIRONMENT and names the DigitalOcean project."
    )
    region: Region = Field(description="DigitalOcean region for every resource of the stack.")
    domain: Domain = Field(description="The site's domain; the app is served at https://<domain>.")
    vpc_ip_range: Annotated[str, AfterValidator(_vpc_range)] = Field(
        description="Private range of the stack's VPC; must not overlap another stack's."
    )
    admin_cidrs: list[AdminCidr] = Field(
        min_length=1, description="Networks allowed to reach SSH (port 22)."
    )
    ssh_admin_public_keys: list[Annotated[str, AfterValidator(_public_key)]] = Field(
        min_length=1, description="OpenSSH public keys of the operators, for the deploy user."
    )
    ssh_key_fingerprints: list[Annotated[str, AfterValidator(_fingerprint)]] = Field(
        description="DigitalOcean account SSH keys attached when a droplet is created."
    )

    # --- app servers
    app_count: int = Field(ge=1, le=10, description="Number of app droplets.")
    app_size: DropletSize = Field(description="Droplet size slug of each app server.")
    app_image: DropletImage = Field(description="Ubuntu LTS image slug of the app servers.")
    app_swap_mb: int = Field(ge=0, le=16384, description="Swap file size in MiB (0: none).")
    app_ipv6: bool = Field(description="Give droplets IPv6 and publish an AAAA record.")
    app_backups: bool = Field(description="Turn on DigitalOcean droplet backups.")
    app_backup_plan: Annotated[str, _one_of(slugs.BACKUP_PLANS, "backup plan")] = Field(
        description="Droplet backup plan: daily (kept 7 days) or weekly (kept 4 weeks)."
    )
    app_backup_weekday: Annotated[str, _one_of(slugs.BACKUP_WEEKDAYS, "backup weekday")] = Field(
        description="Day of a weekly droplet backup (SUN..SAT)."
    )
    app_backup_hour: int = Field(description="UTC start hour of the backup window (0,4,...,20).")
    app_replace_on_user_data_change: bool = Field(
        description="false: a change of what droplets are built from (cloud-init, image, account"
        " SSH keys) leaves existing droplets alone (roll them one at a time, README); true: it"
        " replaces them on the next `pulumi up`."
    )

    # --- release
    image_backend: ImageSource = Field(
        description="Backend image: 'build' (the app's backend/Dockerfile at appSourceRef) or a"
        " prebuilt reference with a version tag or digest."
    )
    image_frontend: ImageSource = Field(
        description="Frontend image: 'build' (images/frontend.Dockerfile, with this stack's API"
        " URL baked in) or a prebuilt reference built for this domain."
    )
    image_migrations: ImageSource = Field(
        description="Migrations image (the release's SQL files under /migrations): 'build'"
        " (images/migrations.Dockerfile at appSourceRef) or a prebuilt reference (same tag)."
    )
    image_migrate: Annotated[str, AfterValidator(image_rules.digest_pinned_image)] = Field(
        description="golang-migrate image, pinned by digest."
    )
    app_source_git_url: Annotated[str, AfterValidator(image_rules.git_url)] = Field(
        description="Git repository of the app, for the images set to 'build'."
    )
    app_source_ref: Annotated[str, AfterValidator(image_rules.git_ref)] = Field(
        description="Tag or commit of the app to build from (the built images carry it as"
        " their tag); needed when an image is 'build' and appSourcePath is empty."
    )
    app_source_path: str = Field(
        description="A local checkout of the app to build from instead of git (development"
        " only); empty: build from appSourceGitUrl at appSourceRef."
    )
    registry_name: Annotated[str, AfterValidator(image_rules.registry_name)] = Field(
        description="Name of the account's DigitalOcean Container Registry; empty: clipper."
        " DigitalOcean allows one registry per account, so the stacks of one account share it."
    )
    registry_create: bool = Field(
        description="Whether this stack creates the registry (exactly one stack per account"
        " does, protected and kept on delete; the others find it by name)."
    )
    registry_tier: Annotated[
        str, _one_of(tuple(image_rules.REGISTRY_TIER_REPOSITORIES), "registry subscription tier")
    ] = Field(
        description="Registry subscription tier: starter (1 repository), basic, professional."
    )
    registry_region: Annotated[str, AfterValidator(image_rules.registry_region)] = Field(
        description="Region of the registry; empty: the stack's region (or the nearest one"
        " offering a registry)."
    )
    release_keep: int = Field(ge=1, le=10, description="Old releases kept for rollback.")
    release_drain_seconds: int = Field(
        ge=0, le=300, description="Seconds the old colour keeps serving after the switch."
    )
    release_ready_timeout_seconds: int = Field(
        ge=10, le=900, description="Seconds a new colour may take to become ready."
    )

    # --- app environment (non-secret)
    twitch_client_id: str = Field(min_length=1, description="Twitch OAuth client id.")
    cors_allowed_origins: list[Origin] = Field(
        description="CORS origins; empty means https://<domain>. First gets OAuth."
    )
    websocket_allowed_origins: list[Origin] = Field(
        description="WebSocket origins; empty means https://<domain>."
    )
    opensearch_url: str = Field(description="OpenSearch URL; empty: search uses SQL.")
    opensearch_username: str = Field(description="OpenSearch user name.")
    stripe_pro_monthly_price_id: Annotated[str, AfterValidator(image_rules.stripe_price_id)] = (
        Field(description="Stripe price id of the monthly Pro plan (needs stripeSecretKey).")
    )
    stripe_pro_yearly_price_id: Annotated[str, AfterValidator(image_rules.stripe_price_id)] = Field(
        description="Stripe price id of the yearly Pro plan (needs stripeSecretKey)."
    )

    # --- database
    db_version: Annotated[str, _one_of(slugs.POSTGRES_VERSIONS, "PostgreSQL version")] = Field(
        description="Managed PostgreSQL major version."
    )
    db_size: DatabaseSize = Field(description="Database node size slug.")
    db_node_count: int = Field(ge=1, le=3, description="Nodes: 1 primary plus standbys.")
    db_maintenance_day: Weekday = Field(description="Weekly maintenance day (lower case).")
    db_maintenance_hour: Hour = Field(description="Maintenance start, UTC, HH:MM.")
    db_protect: bool = Field(description="Protect the cluster from deletion and retain on delete.")
    db_read_replica: bool = Field(description="Add a read-only replica.")
    db_read_replica_size: DatabaseSize = Field(description="Size slug of the read replica.")
    db_slow_query_ms: int = Field(
        ge=0, le=600000, description="Log statements slower than this (0 logs all)."
    )
    db_connection: Literal["session-pool", "direct"] = Field(
        description="How the app connects: a PgBouncer pool in session mode, or directly."
    )
    db_pool_size: int = Field(ge=1, le=1000, description="Server connections of the pool.")

    # --- cache
    cache_version: Annotated[str, _one_of(slugs.VALKEY_VERSIONS, "Valkey version")] = Field(
        description="Managed Valkey major version."
    )
    cache_size: DatabaseSize = Field(description="Valkey node size slug.")
    cache_node_count: int = Field(ge=1, le=3, description="Valkey nodes.")
    cache_eviction_policy: Annotated[
        str, _one_of(slugs.VALKEY_EVICTION_POLICIES, "eviction policy")
    ] = Field(description="Valkey maxmemory policy.")
    cache_persistence: Annotated[str, _one_of(slugs.VALKEY_PERSISTENCE, "persistence mode")] = (
        Field(description="Valkey persistence: rdb or off.")
    )
    cache_tunnel_port: int = Field(
        ge=1024, le=65535, description="Loopback port of the TLS tunnel the app uses as Redis."
    )

    # --- edge
    edge_entry: Literal["reserved-ip", "load-balancer"] = Field(
        description="reserved-ip: one droplet, TLS by certbot on the host; load-balancer: a"
        " DigitalOcean load balancer ends TLS with a managed certificate."
    )
    acme_email: Email = Field(description="Let's Encrypt account email (certbot).")
    csp_mode: Literal["report-only", "enforce"] = Field(
        description="Send CSP as Content-Security-Policy-Report-Only or enforce it."
    )
    csp_connect_src_extra: list[str] = Field(
        description="Extra CSP connect-src sources beyond self and the Twitch API."
    )
    api_rate_limit_rps: int = Field(ge=1, le=10000, description="Per-client API requests/s.")
    api_rate_burst: int = Field(ge=0, le=10000, description="API burst above the rate.")
    general_rate_limit_rps: int = Field(ge=1, le=10000, description="Per-client requests/s.")
    general_rate_burst: int = Field(ge=0, le=10000, description="General burst above the rate.")
    client_max_body_mb: int = Field(ge=1, le=100, description="Request body limit in MiB.")
    api_read_timeout_seconds: int = Field(ge=5, le=600, description="API proxy read timeout.")
    websocket_read_timeout_seconds: int = Field(
        ge=60, le=86400, description="WebSocket proxy read timeout."
    )
    hsts_max_age_seconds: int = Field(
        ge=31536000, le=63072000, description="HSTS max-age (preload needs at least a year)."
    )
    lb_size_unit: int = Field(ge=1, le=100, description="Load balancer size units.")

    # --- DNS
    dns_manage_domain: bool = Field(description="Create the domain in DigitalOcean DNS.")
    dns_ttl: int = Field(ge=30, le=86400, description="TTL of the records, in seconds.")

    # --- alerts
    alert_emails: list[Email] = Field(min_length=1, description="Who receives alerts.")
    alert_slack_channel: str = Field(
        description="Slack channel for alerts (needs secret alertSlackWebhookUrl)."
    )
    alert_cpu_percent: int = Field(ge=1, le=100, description="CPU alert threshold, %.")
    alert_memory_percent: int = Field(ge=1, le=100, description="Memory alert threshold, %.")
    alert_disk_percent: int = Field(ge=1, le=100, description="Disk-used alert threshold, %.")
    alert_smtp_smarthost: Annotated[str, AfterValidator(_smarthost)] = Field(
        description="SMTP relay (host:port, STARTTLS) that Alertmanager sends alert email through."
    )
    alert_smtp_from: Annotated[str, AfterValidator(_optional_email)] = Field(
        description="Sender of alert email; empty means alerts@<domain>."
    )
    alert_smtp_username: str = Field(
        min_length=1, description="SMTP user name (password: secret alertSmtpPassword)."
    )

    # --- self-hosted monitoring (components/monitoring.py)
    monitoring_enabled: bool = Field(
        description="Run the monitoring droplet: Prometheus, Alertmanager, Grafana, Loki, probes."
    )
    monitoring_size: DropletSize = Field(description="Droplet size slug of the monitoring host.")
    monitoring_volume_gb: int = Field(
        ge=10, le=16000, description="GiB of the volume that keeps metrics and logs."
    )
    metrics_retention_days: int = Field(ge=1, le=3650, description="Days Prometheus keeps metrics.")
    log_retention_days: int = Field(ge=1, le=3650, description="Days Loki keeps logs.")
    # Monitoring images: an exact version tag, deployed by the digest the preview resolves.
    image_prometheus: PinnedImage = Field(
        description="Prometheus image, the 3.5 long-term-support line; deployed by digest."
    )
    image_alertmanager: PinnedImage = Field(
        description="Alertmanager image, exact version; deployed by digest."
    )
    image_grafana: PinnedImage = Field(
        description="Grafana image, exact version; deployed by digest."
    )
    image_loki: PinnedImage = Field(
        description="Loki image (tsdb index, schema v13), exact version; deployed by digest."
    )
    image_alloy: PinnedImage = Field(
        description="Grafana Alloy image (log shipper on each app host); deployed by digest."
    )
    image_node_exporter: PinnedImage = Field(
        description="node_exporter image (host metrics and the textfile collector, every host);"
        " deployed by digest."
    )
    image_blackbox_exporter: PinnedImage = Field(
        description="blackbox_exporter image (HTTPS and TLS probes); deployed by digest."
    )

    # --- backups (components/backups.py)
    backup_schedule: Annotated[str, AfterValidator(_calendar)] = Field(
        description="When the daily PostgreSQL backup runs: a systemd OnCalendar time, UTC."
    )
    backup_retention_days: int = Field(
        ge=7, le=3650, description="Days the backup bucket keeps each backup (lifecycle rule)."
    )
    backup_region: Annotated[str, AfterValidator(_spaces_region)] = Field(
        description="Spaces region of the backup bucket; empty: the stack's region. Another"
        " region keeps the backups through a regional outage."
    )

    # ------------------------------------------------------------------ derived values

    @property
    def site_url(self) -> str:
        return f"https://{self.domain}"

    @property
    def effective_cors_origins(self) -> list[str]:
        return list(self.cors_allowed_origins) or [self.site_url]

    @property
    def effective_websocket_origins(self) -> list[str]:
        return list(self.websocket_allowed_origins) or [self.site_url]

    @property
    def twitch_redirect_uri(self) -> str:
        return f"{self.site_url}/api/v1/auth/twitch/callback"

    @property
    def uses_load_balancer(self) -> bool:
        return self.edge_entry == "load-balancer"

    @property
    def api_base_url(self) -> str:
        """What the frontend calls (baked into a built frontend as VITE_API_BASE_URL)."""
        return f"{self.site_url}/api/v1"

    @property
    def images_to_build(self) -> tuple[str, ...]:
        """The release's images this stack builds from the app's source, in a fixed order."""
        chosen = {
            "backend": self.image_backend,
            "frontend": self.image_frontend,
            "migrations": self.image_migrations,
        }
        return tuple(n for n in image_rules.BUILDABLE_IMAGES if chosen[n] == image_rules.BUILD)

    @property
    def effective_registry_name(self) -> str:
        return self.registry_name or "clipper"

    @property
    def effective_registry_region(self) -> str:
        if self.registry_region:
            return self.registry_region
        return image_rules.REGISTRY_NEAREST_REGION.get(self.region, self.region)

    @property
    def effective_backup_region(self) -> str:
        return self.backup_region or self.region

    @property
    def effective_alert_smtp_from(self) -> str:
        return self.alert_smtp_from or f"alerts@{self.domain}"


# Secret settings: set with `pulumi config set --secret KEY VALUE -s STACK`. Value: required?
SECRET_KEYS: dict[str, bool] = {
    "twitchClientSecret": True,
    "jwtPrivateKey": False,  # with jwtPublicKey; generated by pulumi-tls when both are unset
    "jwtPublicKey": False,
    "stripeSecretKey": False,
    "stripeWebhookSecret": False,
    "sendgridApiKey": False,
    "openaiApiKey": False,
    "sentryDsn": False,
    "opensearchPassword": False,
    "stripeWebhookSecretAlt": False,  # a second signing secret, for rotation
    "stripeWebhookSecrets": False,  # more, comma-separated (STRIPE_WEBHOOK_SECRETS)
    "sendgridWebhookPublicKey": False,  # required with sendgridApiKey (signed event webhook)
    "alertSlackWebhookUrl": False,  # required when alertSlackChannel is set
    "alertSmtpPassword": False,  # required when monitoringEnabled is true
}


def config_keys() -> list[str]:
    """The non-secret config keys, as operators type them (camelCase)."""
    return [field.alias or name for name, field in Settings.model_fields.items()]


def _decode(key: str, raw: Any) -> Any:
    """Config values arrive as strings; lists (and numbers) as JSON text."""
    field = Settings.model_fields.get(_snake(key))
    if isinstance(raw, str) and field is not None and field.annotation is not str:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _describe_error(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    key = f"{PROJECT}:{loc[0]}" + "".join(f"[{p}]" for p in loc[1:])
    if error["type"] == "missing":
        return f"{key} is not set; allowed: see its description in Pulumi.yaml"
    value = json.dumps(error.get("input"), default=str)
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key} = {value}: {message}"


def _cross_checks(s: Settings) -> list[str]:
    """Rules that tie several settings together; run only when each value is valid on its own."""
    problems: list[str] = []
    if s.app_count > 1 and not s.uses_load_balancer:
        problems.append(
            f'{PROJECT}:edgeEntry = "{s.edge_entry}": appCount is {s.app_count}; more than one'
            ' droplet needs edgeEntry "load-balancer"'
        )
    if s.environment == "production" and not s.db_protect:
        problems.append(
            f"{PROJECT}:dbProtect = false: a production environment must protect its database"
        )
    if s.cors_allowed_origins and s.cors_allowed_origins[0] != s.site_url:
        problems.append(
            f"{PROJECT}:corsAllowedOrigins = {json.dumps(s.cors_allowed_origins)}: the first"
            f" origin receives the Twitch OAuth redirect and must be the site, {s.site_url}"
        )
    if bool(s.opensearch_url) != bool(s.opensearch_username):
        problems.append(
            f'{PROJECT}:opensearchUsername = "{s.opensearch_username}": set it together with'
            " opensearchUrl, or leave both empty"
        )
    if s.api_rate_burst < s.api_rate_limit_rps or s.general_rate_burst < s.general_rate_limit_rps:
        problems.append(
            f"{PROJECT}:apiRateBurst/generalRateBurst = {s.api_rate_burst}/{s.general_rate_burst}:"
            " a burst below its rate rejects ordinary page loads; allowed: at least the rate"
        )
    problems.extend(provider_rules.problems(s))
    return problems


def _image_checks(s: Settings) -> list[str]:
    """Where built images come from and go to: a source to build from, a registry that fits."""
    problems: list[str] = []
    built = s.images_to_build
    if built and not (s.app_source_ref or s.app_source_path):
        problems.append(
            f'{PROJECT}:appSourceRef = "": {", ".join(built)} set to "build" need the app\'s'
            " source: allowed: a tag or commit of appSourceGitUrl (or appSourcePath for"
            " development)"
        )
    if s.app_source_path and not (PROJECT_DIR / s.app_source_path).is_dir():
        problems.append(
            f'{PROJECT}:appSourcePath = "{s.app_source_path}": no such directory (relative paths'
            f" start at {PROJECT_DIR}); allowed: a checkout of the app with backend/ and frontend/"
        )
    if s.app_source_ref and s.app_source_path:
        problems.append(
            f'{PROJECT}:appSourcePath = "{s.app_source_path}": set either appSourcePath or'
            f' appSourceRef ("{s.app_source_ref}"), not both: which source to build is ambiguous'
        )
    limit = image_rules.REGISTRY_TIER_REPOSITORIES[s.registry_tier]
    if s.registry_create and limit is not None and len(built) > limit:
        problems.append(
            f'{PROJECT}:registryTier = "{s.registry_tier}": holds {limit} repository, and this'
            f" stack builds {len(built)} images ({', '.join(built)}); allowed: basic or"
            " professional"
        )
    if s.registry_create and s.effective_registry_region not in image_rules.REGISTRY_REGIONS:
        problems.append(
            f'{PROJECT}:registryRegion = "{s.registry_region}": region {s.region} has no'
            " DigitalOcean Container Registry; allowed: one of "
            + ", ".join(sorted(image_rules.REGISTRY_REGIONS))
        )
    return problems


def _integration_checks(s: Settings, present: set[str], stack: str) -> list[str]:
    """Optional integrations are all-or-nothing: a half-configured one fails at runtime."""
    problems: list[str] = []

    def secret(key: str) -> str:
        return f"`pulumi config set --secret {key} <value> -s {stack}`"

    stripe = "stripeSecretKey" in present
    prices = {
        "stripeProMonthlyPriceId": s.stripe_pro_monthly_price_id,
        "stripeProYearlyPriceId": s.stripe_pro_yearly_price_id,
    }
    for key, value in prices.items():
        if stripe and not value:
            problems.append(
                f'{PROJECT}:{key} = "": stripeSecretKey turns on premium subscriptions, whose'
                " checkout needs the plan's Stripe price id (price_...)"
            )
        if value and not stripe:
            problems.append(
                f'{PROJECT}:{key} = "{value}": needs the Stripe secret key: run'
                f" {secret('stripeSecretKey')}"
            )
    if stripe and "stripeWebhookSecret" not in present:
        problems.append(
            f"{PROJECT}:stripeSecretKey is set without stripeWebhookSecret: Stripe's events"
            f" (paid, cancelled) would be refused; run {secret('stripeWebhookSecret')}"
        )
    for key in ("stripeWebhookSecretAlt", "stripeWebhookSecrets"):
        if key in present and "stripeWebhookSecret" not in present:
            problems.append(
                f"{PROJECT}:{key} is an extra Stripe signing secret (for rotation); set the"
                f" primary one first: run {secret('stripeWebhookSecret')}"
            )
    # Refused, not warned: without the key the app accepts unsigned posts to its SendGrid
    # webhook, so anyone could mark addresses bounced or unsubscribed while email is on.
    if "sendgridApiKey" in present and "sendgridWebhookPublicKey" not in present:
        problems.append(
            f"{PROJECT}:sendgridApiKey is set without sendgridWebhookPublicKey: the app would"
            " accept unsigned posts to /api/v1/webhooks/sendgrid; run"
            f" {secret('sendgridWebhookPublicKey')} (SendGrid's Signed Event Webhook key)"
        )
    return problems


def parse_settings(
    stack: str,
    raw: dict[str, Any],
    secret_keys_set: set[str] | frozenset[str] = frozenset(),
    plain_keys_set: set[str] | frozenset[str] = frozenset(),
    other_vpc_ranges: Mapping[str, str] | None = None,
) -> Settings:
    """Validate one stack's raw config (keys without the namespace) into `Settings`.

    `secret_keys_set` names the secret keys present as secrets; `plain_keys_set` names secret
    keys that were (wrongly) set in plain text; `other_vpc_ranges` maps the project's other
    stacks to their vpcIpRange (one account: they must not overlap). Raises `SettingsError`
    with every problem found.
    """
    problems: list[str] = []
    known = set(config_keys())
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECRET_KEYS:
            continue
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known | set(SECRET_KEYS)), n=1)
            hint = f"did you mean '{near[0]}'? " if near else ""
            problems.append(
                f"{PROJECT}:{key} = {json.dumps(value)}: unknown key; {hint}"
                "allowed keys are listed in Pulumi.yaml"
            )
            continue
        values[key] = _decode(key, value)

    for key in sorted(plain_keys_set):
        problems.append(
            f"{PROJECT}:{key} is stored in plain text; it is a secret: run"
            f" `pulumi config set --secret {key} <value> -s {stack}`"
        )
    present = set(secret_keys_set) | set(plain_keys_set)
    for key, required in SECRET_KEYS.items():
        if required and key not in present:
            problems.append(
                f"{PROJECT}:{key} is not set; it is a required secret: run"
                f" `pulumi config set --secret {key} <value> -s {stack}`"
            )
    if ("jwtPrivateKey" in present) != ("jwtPublicKey" in present):
        problems.append(
            f"{PROJECT}:jwtPrivateKey/jwtPublicKey: set both (a PEM key pair) or neither"
            " (the program then generates one)"
        )

    settings: Settings | None = None
    try:
        settings = Settings.model_validate(values)
    except ValidationError as err:
        problems.extend(_describe_error(e) for e in err.errors())

    if settings is not None:
        problems.extend(_cross_checks(settings))
        problems.extend(
            provider_rules.vpc_overlaps(stack, settings.vpc_ip_range, other_vpc_ranges or {})
        )
        if settings.alert_slack_channel and "alertSlackWebhookUrl" not in present:
            problems.append(
                f'{PROJECT}:alertSlackChannel = "{settings.alert_slack_channel}": needs the'
                f" secret: run `pulumi config set --secret alertSlackWebhookUrl <url> -s {stack}`"
            )
        if settings.monitoring_enabled and "alertSmtpPassword" not in present:
            problems.append(
                f"{PROJECT}:monitoringEnabled = true: Alertmanager needs the SMTP password: run"
                f" `pulumi config set --secret alertSmtpPassword <password> -s {stack}`"
            )
        problems.extend(_image_checks(settings))
        problems.extend(_integration_checks(settings, present, stack))
    if problems:
        raise SettingsError(stack, problems)
    assert settings is not None
    return settings


@dataclass(frozen=True)
class Secrets:
    """Secret settings as Pulumi secrets; absent optional ones are None."""

    twitch_client_secret: pulumi.Output[str]
    jwt_private_key: pulumi.Output[str] | None
    jwt_public_key: pulumi.Output[str] | None
    stripe_secret_key: pulumi.Output[str] | None
    stripe_webhook_secret: pulumi.Output[str] | None
    sendgrid_api_key: pulumi.Output[str] | None
    openai_api_key: pulumi.Output[str] | None
    sentry_dsn: pulumi.Output[str] | None
    opensearch_password: pulumi.Output[str] | None
    alert_slack_webhook_url: pulumi.Output[str] | None
    alert_smtp_password: pulumi.Output[str] | None = None
    stripe_webhook_secret_alt: pulumi.Output[str] | None = None
    stripe_webhook_secrets: pulumi.Output[str] | None = None
    sendgrid_webhook_public_key: pulumi.Output[str] | None = None


def _runtime_config() -> tuple[dict[str, Any], set[str]]:
    """All of this project's config from the Pulumi runtime, and which keys are secret."""
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = {}
    merged.update(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    secret = set(runtime_config.get_config_secret_keys_env()) | set(
        runtime_config._SECRET_KEYS.get()
    )
    prefix = f"{PROJECT}:"
    raw = {k[len(prefix) :]: v for k, v in merged.items() if k.startswith(prefix)}
    return raw, {k[len(prefix) :] for k in secret if k.startswith(prefix)}


def sibling_vpc_ranges(project_dir: Path, stack: str) -> dict[str, str]:
    """The vpcIpRange of every other `Pulumi.<stack>.yaml` in the project (one account)."""
    import yaml

    ranges: dict[str, str] = {}
    for path in sorted(project_dir.glob("Pulumi.*.yaml")):
        other = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        values = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
        value = values.get(f"{PROJECT}:vpcIpRange")
        if other != stack and isinstance(value, str):
            ranges[other] = value
    return ranges


def load_settings() -> tuple[Settings, Secrets]:
    """Read and validate the running stack's config; raise `SettingsError` before any resource.

    The program runs in the project directory (the Pulumi CLI's working directory for it), so
    the other stack files are read from there for the cross-stack VPC check.
    """
    import pulumi

    stack = pulumi.get_stack()
    raw, secret = _runtime_config()
    secret_present = {k for k in SECRET_KEYS if k in raw and k in secret}
    plain_present = {k for k in SECRET_KEYS if k in raw and k not in secret}
    others = sibling_vpc_ranges(Path.cwd(), stack)
    settings = parse_settings(stack, raw, secret_present, plain_present, others)

    config = pulumi.Config(PROJECT)

    def optional(key: str) -> pulumi.Output[str] | None:
        return config.require_secret(key) if key in secret_present else None

    secrets = Secrets(
        twitch_client_secret=config.require_secret("twitchClientSecret"),
        jwt_private_key=optional("jwtPrivateKey"),
        jwt_public_key=optional("jwtPublicKey"),
        stripe_secret_key=optional("stripeSecretKey"),
        stripe_webhook_secret=optional("stripeWebhookSecret"),
        sendgrid_api_key=optional("sendgridApiKey"),
        openai_api_key=optional("openaiApiKey"),
        sentry_dsn=optional("sentryDsn"),
        opensearch_password=optional("opensearchPassword"),
        alert_slack_webhook_url=optional("alertSlackWebhookUrl"),
        alert_smtp_password=optional("alertSmtpPassword"),
        stripe_webhook_secret_alt=optional("stripeWebhookSecretAlt"),
        stripe_webhook_secrets=optional("stripeWebhookSecrets"),
        sendgrid_webhook_public_key=optional("sendgridWebhookPublicKey"),
    )
    return settings, secrets
