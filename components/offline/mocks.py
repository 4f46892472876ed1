"""Pulumi mocks that answer like DigitalOcean, shared by the offline engine and the unit tests.

Addresses come from documentation ranges (203.0.113.0/24, 2001:db8::/32) or the stack's own VPC
range; ids, URNs and host names have DigitalOcean's shapes. Outputs that the real providers mark
secret (`additional_secret_outputs`: database passwords and URIs, random bytes, private keys) are
returned as secrets here too, because the stock mock monitor does not do it (see
`RecordingMonitor`).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import itertools
import json
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.sync_await import _ensure_event_loop, _sync_await

from components.host.keys import read_host_key_command

# A fixed, obviously fake PEM body: the offline engine never needs a working key.
FAKE_PEM_BODY = "MOCKKEYMATERIALxOFFLINEPLANxNOTAREALKEYxxxxxxxxxxxxxxxxxxxxxxxxxx"
FAKE_CA_PEM = f"-----BEGIN CERTIFICATE-----\n{FAKE_PEM_BODY}\n-----END CERTIFICATE-----\n"


def fake_host_key(seed: str) -> str:
    """A well-formed, fake `ssh-ed25519` public key line (RFC 8709 blob), fixed per seed."""
    kind = b"ssh-ed25519"
    point = hashlib.sha256(seed.encode()).digest()
    blob = struct.pack(">I", len(kind)) + kind + struct.pack(">I", len(point)) + point
    return f"ssh-ed25519 {base64.b64encode(blob).decode()}"


def _uuid(seed: str) -> str:
    return str(uuid.UUID(hashlib.sha256(seed.encode()).hexdigest()[:32]))


def _digits(seed: str, n: int = 9) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:n]


REGISTRY_IMAGE_LOOKUP = "docker:index/getRegistryImage:getRegistryImage"


def mock_registry_digest(tagged: str) -> str:
    """The digest the offline registry answers for `name:tag` (stable per reference)."""
    return "sha256:" + hashlib.sha256(f"mock-registry/{tagged}".encode()).hexdigest()


REGISTRY_SERVER = "registry.digitalocean.com"
REGISTRY_CREDENTIALS = (
    "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials"
)


def mock_docker_credentials(name: str, write: bool) -> str:
    """A Docker config file like DigitalOcean's: one token as user and password."""
    token = f"mock-registry-token-{'rw' if write else 'ro'}-{_digits(name, 8)}"
    auth = base64.b64encode(f"{token}:{token}".encode()).decode()
    return json.dumps({"auths": {REGISTRY_SERVER: {"auth": auth}}})


def mock_pushed_digest(image: str, inputs: dict[str, Any]) -> str:
    """`repo@sha256:...` a push of `image` would return: stable per name and build inputs, so
    another source ref or other build args show another digest in the plan."""
    build = json.dumps(inputs.get("build", {}), sort_keys=True)
    repo = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repo}@sha256:{hashlib.sha256((image + build).encode()).hexdigest()}"


@dataclass
class ClipperMocks(Mocks):
    """Realistic outputs per resource type; deterministic for a given program.

    `registry_digests` overrides what the registry lookup answers for a `name:tag` (a test moves
    a tag by changing it); any other reference gets `mock_registry_digest`.
    """

    vpc_ranges: dict[str, str] = field(default_factory=dict)
    registry_digests: dict[str, str] = field(default_factory=dict)
    _public_hosts: itertools.count[int] = field(default_factory=lambda: itertools.count(10))
    _private_hosts: dict[str, itertools.count[int]] = field(default_factory=dict)

    def _private_ip(self, vpc_id: str | None) -> str:
        network = ipaddress.ip_network(self.vpc_ranges.get(vpc_id or "", "10.10.0.0/20"))
        counter = self._private_hosts.setdefault(str(network), itertools.count(2))
        return str(network.network_address + next(counter))

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        typ, name, inputs = args.typ, args.name, dict(args.inputs)
        if not args.custom:
            return f"{name}-component", {}
        rid = _uuid(f"{typ}/{name}")
        mock = MOCK_OUTPUTS.get(typ)
        if mock is None and typ.startswith("command:remote:"):
            mock = _remote_command
        if mock is None:
            return rid, inputs
        # Each mock answers the id and the outputs the provider adds to (or sets over) the inputs.
        rid, added = mock(self, rid, name, inputs)
        return rid, {**inputs, **added}

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        if args.token == "digitalocean:index/getContainerRegistry:getContainerRegistry":
            # The account's registry, created by another stack (registryCreate false here).
            rname = str(args.args.get("name", ""))
            return {"id": rname, "name": rname, "serverUrl": REGISTRY_SERVER,
                    "endpoint": f"{REGISTRY_SERVER}/{rname}", "region": "nyc3",
                    "subscriptionTierSlug": "basic", "storageUsageBytes": 0,
                    "createdAt": "2026-01-01T00:00:00Z"}, []  # fmt: skip
        if args.token == REGISTRY_IMAGE_LOOKUP:
            name = str(args.args.get("name", ""))
            digest = self.registry_digests.get(name) or mock_registry_digest(name)
            return {"id": name, "name": name, "sha256Digest": digest,
                    "insecureSkipVerify": False}, []  # fmt: skip
        if args.token == "digitalocean:index/getDatabaseCa:getDatabaseCa":
            return {"id": args.args.get("clusterId", ""), "certificate": FAKE_CA_PEM}, []
        if (
            args.token
            == "digitalocean:index/getDatabaseMetricsCredentials:getDatabaseMetricsCredentials"
        ):
            return {"id": "metrics", "username": "mock-metrics-user",
                    "password": "mock-metrics-password-0451"}, []  # fmt: skip
        # The stock MockMonitor iterates the failures: an empty list, never None.
        return {}, []


# One resource type's mock: (mocks, default id, name, inputs) -> (id, outputs added to the inputs).
Outputs = tuple[str, dict[str, Any]]
MockOutputs = Callable[[ClipperMocks, str, str, dict[str, Any]], Outputs]


def _db_host(name: str, private: bool) -> str:
    prefix = "private-" if private else ""
    return f"{prefix}{name}-do-user-{_digits(name, 7)}-0.k.db.ondigitalocean.com"


def _vpc(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    mocks.vpc_ranges[rid] = inputs.get("ipRange", "10.10.0.0/20")
    return rid, {"urn": f"do:vpc:{rid}", "vpcUrn": f"do:vpc:{rid}"}


def _droplet(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    rid = _digits(name)
    host_number = next(mocks._public_hosts)
    out: dict[str, Any] = dict(
        urn=f"do:droplet:{rid}",
        dropletUrn=f"do:droplet:{rid}",
        ipv4Address=f"203.0.113.{host_number}",
        ipv4AddressPrivate=mocks._private_ip(inputs.get("vpcUuid")),
        status="active",
    )
    if inputs.get("ipv6"):
        out["ipv6Address"] = f"2001:db8::{host_number:x}"
    return rid, out


def _reserved_ip(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    ip = f"203.0.113.{200 + int(_digits(name, 2)) % 50}"
    urn = f"do:floatingip:{ip}"
    return ip, {"ipAddress": ip, "urn": urn, "reservedIpUrn": urn}


def _load_balancer(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    urn = f"do:loadbalancer:{rid}"
    out: dict[str, Any] = dict(urn=urn, ip="203.0.113.250", status="active", loadBalancerUrn=urn)
    if inputs.get("networkStack") == "DUALSTACK":
        out["ipv6"] = "2001:db8::fa"
    return rid, out


def _database_cluster(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    engine = inputs.get("engine", "pg")
    port = 25060 if engine == "pg" else 25061
    user = "doadmin" if engine == "pg" else "default"
    password = f"mock-{engine}-admin-password-{_digits(name, 6)}"
    host, private_host = _db_host(name, False), _db_host(name, True)
    scheme = "postgresql" if engine == "pg" else "rediss"
    db = "/defaultdb?sslmode=require" if engine == "pg" else ""
    return rid, dict(
        urn=f"do:dbaas:{rid}", host=host, privateHost=private_host, port=port,
        user=user, password=password, database="defaultdb" if engine == "pg" else "",
        uri=f"{scheme}://{user}:{password}@{host}:{port}{db}",
        privateUri=f"{scheme}://{user}:{password}@{private_host}:{port}{db}",
        clusterUrn=f"do:dbaas:{rid}",
    )  # fmt: skip


def _database_user(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    return rid, {"password": f"mock-user-password-{_digits(name, 6)}"}


def _connection_pool(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    password = f"mock-pool-password-{_digits(name, 6)}"
    host, private_host = _db_host(name, False), _db_host(name, True)
    pool = inputs.get("name", name)
    return rid, dict(
        host=host, privateHost=private_host, port=25061, password=password,
        uri=f"postgresql://{inputs.get('user', 'doadmin')}:{password}@{host}:25061/{pool}?sslmode=require",
        privateUri=f"postgresql://{inputs.get('user', 'doadmin')}:{password}@{private_host}:25061/{pool}?sslmode=require",
    )  # fmt: skip


def _database_replica(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    host, private_host = _db_host(name, False), _db_host(name, True)
    password = f"mock-replica-password-{_digits(name, 6)}"
    return rid, dict(
        uuid=rid, host=host, privateHost=private_host, port=25060, user="doadmin",
        password=password, database="defaultdb",
        uri=f"postgresql://doadmin:{password}@{host}:25060/defaultdb?sslmode=require",
        privateUri=f"postgresql://doadmin:{password}@{private_host}:25060/defaultdb?sslmode=require",
    )  # fmt: skip


def _domain(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    rid = inputs.get("name", name)
    return rid, {"urn": f"do:domain:{rid}", "domainUrn": f"do:domain:{rid}"}


def _dns_record(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    record = inputs.get("name", "@")
    domain = inputs.get("domain", "example.com")
    return _digits(name), {"fqdn": domain if record == "@" else f"{record}.{domain}"}


def _project(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    return rid, {"ownerUuid": _uuid("owner"), "createdAt": "2026-01-01T00:00:00Z"}


def _ssh_key(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    digest = hashlib.md5(str(inputs.get("publicKey", name)).encode()).hexdigest()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 32, 2))
    return _digits(name, 8), {"fingerprint": fingerprint}


def _tag(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    return inputs.get("name", name), {}


def _certificate(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    sha1 = hashlib.sha1(name.encode()).hexdigest()
    return rid, {"uuid": rid, "state": "verified", "sha1Fingerprint": sha1}


def _volume(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    return rid, dict(
        urn=f"do:volume:{rid}", volumeUrn=f"do:volume:{rid}", dropletIds=[],
        filesystemLabel=inputs.get("initialFilesystemLabel", ""),
    )  # fmt: skip


def _random_bytes(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    raw = hashlib.sha256(name.encode()).digest()[: int(inputs.get("length", 32))]
    return rid, {"base64": base64.b64encode(raw).decode(), "hex": raw.hex()}


def _random_password(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    return rid, {"result": f"mock-random-password-{_digits(name, 12)}"}


def _private_key(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    return rid, dict(
        privateKeyPem=f"-----BEGIN PRIVATE KEY-----\n{FAKE_PEM_BODY}\n-----END PRIVATE KEY-----\n",
        privateKeyOpenssh=f"-----BEGIN OPENSSH PRIVATE KEY-----\n{FAKE_PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----\n",
        publicKeyPem=f"-----BEGIN PUBLIC KEY-----\n{FAKE_PEM_BODY}\n-----END PUBLIC KEY-----\n",
        publicKeyOpenssh=f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{_digits(name, 20)}mock\n",
    )  # fmt: skip


def _spaces_bucket(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    bucket, region = inputs.get("name", name), inputs.get("region", "nyc3")
    return bucket, dict(
        urn=f"do:space:{bucket}", bucketUrn=f"do:space:{bucket}",
        bucketDomainName=f"{bucket}.{region}.digitaloceanspaces.com",
        endpoint=f"{region}.digitaloceanspaces.com",
    )  # fmt: skip


def _spaces_key(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    rid = "DO00" + _digits(name, 16)
    return rid, dict(
        accessKey=rid, secretKey=f"mock-spaces-secret-key-{_digits(name, 12)}",
        createdAt="2026-01-01T00:00:00Z",
    )  # fmt: skip


def _container_registry(
    mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]
) -> Outputs:
    rid = inputs.get("name", name)
    return rid, {"serverUrl": REGISTRY_SERVER, "endpoint": f"{REGISTRY_SERVER}/{rid}"}


def _registry_credentials(
    mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]
) -> Outputs:
    return rid, {"dockerCredentials": mock_docker_credentials(name, bool(inputs.get("write")))}


def _docker_image(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    image = str(inputs.get("imageName", name))
    return rid, {"baseImageName": image, "repoDigest": mock_pushed_digest(image, inputs)}


def _remote_command(mocks: ClipperMocks, rid: str, name: str, inputs: dict[str, Any]) -> Outputs:
    # The host-key read answers with a well-formed ed25519 key, as a droplet would.
    reads_key = inputs.get("create") == read_host_key_command()
    return rid, {"stdout": fake_host_key(name) + "\n" if reads_key else "", "stderr": ""}


# The outputs DigitalOcean (and the random, tls, docker providers) add, per resource type; a type
# not listed answers its inputs. Every `command:remote:*` type answers like `_remote_command`.
MOCK_OUTPUTS: dict[str, MockOutputs] = {
    "digitalocean:index/vpc:Vpc": _vpc,
    "digitalocean:index/droplet:Droplet": _droplet,
    "digitalocean:index/reservedIp:ReservedIp": _reserved_ip,
    "digitalocean:index/loadBalancer:LoadBalancer": _load_balancer,
    "digitalocean:index/databaseCluster:DatabaseCluster": _database_cluster,
    "digitalocean:index/databaseUser:DatabaseUser": _database_user,
    "digitalocean:index/databaseConnectionPool:DatabaseConnectionPool": _connection_pool,
    "digitalocean:index/databaseReplica:DatabaseReplica": _database_replica,
    "digitalocean:index/domain:Domain": _domain,
    "digitalocean:index/dnsRecord:DnsRecord": _dns_record,
    "digitalocean:index/project:Project": _project,
    "digitalocean:index/sshKey:SshKey": _ssh_key,
    "digitalocean:index/tag:Tag": _tag,
    "digitalocean:index/certificate:Certificate": _certificate,
    "digitalocean:index/volume:Volume": _volume,
    "random:index/randomBytes:RandomBytes": _random_bytes,
    "random:index/randomPassword:RandomPassword": _random_password,
    "tls:index/privateKey:PrivateKey": _private_key,
    "digitalocean:index/spacesBucket:SpacesBucket": _spaces_bucket,
    "digitalocean:index/spacesKey:SpacesKey": _spaces_key,
    "digitalocean:index/containerRegistry:ContainerRegistry": _container_registry,
    REGISTRY_CREDENTIALS: _registry_credentials,
    "docker:index/image:Image": _docker_image,
}


@dataclass(frozen=True)
class Registration:
    """One resource as the program declared it."""

    urn: str
    type: str
    name: str
    custom: bool
    parent_urn: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    protect: bool
    retain_on_delete: bool
    ignore_changes: tuple[str, ...]
    replace_on_changes: tuple[str, ...]
    depends_on: tuple[str, ...]
    delete_before_replace: bool
    # Per input, the resources its value came from (an input waits only on those at preview).
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The types this resource was known by before (Pulumi `aliases`): the engine then finds its
    # state under the old URN and moves it, instead of creating it anew and deleting the old.
    alias_types: tuple[str, ...] = ()


class RecordingMonitor(MockMonitor):
    """A mock monitor that records each registration in order, with its parent and options.

    It also applies `additional_secret_outputs` the way the real engine does, so a test of
    secretness checks what a real deployment would hold.
    """

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self.stack_outputs: dict[str, Any] = {}
        self.stack_urn = ""

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        if request.type == "pulumi:pulumi:Stack":
            self.stack_urn = self.make_urn(request.parent, request.type, request.name)
            return super().RegisterResource(request)
        urn = self.make_urn(request.parent, request.type, request.name)
        _ensure_event_loop()
        inputs = rpc.deserialize_properties(request.object)
        args = MockResourceArgs(
            typ=request.type, name=request.name, inputs=unwrap_secrets(inputs),
            provider=request.provider, resource_id=request.importId, custom=request.custom or False,
        )  # fmt: skip
        rid, state = self.mocks.new_resource(args)
        rid = rid or ""
        secret_names = set(request.additionalSecretOutputs)
        wrapped = {
            k: (rpc.wrap_rpc_secret(v) if k in secret_names else v) for k, v in state.items()
        }
        obj = _sync_await(rpc.serialize_properties(wrapped, {}))
        self.resources[urn] = MockMonitor.ResourceRegistration(urn, rid, state)
        self.registrations.append(
            Registration(
                urn=urn, type=request.type, name=request.name, custom=bool(request.custom),
                parent_urn=request.parent, inputs=inputs,
                outputs={k: (rpc.wrap_rpc_secret(v) if k in secret_names else v) for k, v in state.items()},
                protect=bool(request.protect), retain_on_delete=bool(request.retainOnDelete),
                ignore_changes=tuple(request.ignoreChanges),
                replace_on_changes=tuple(request.replaceOnChanges),
                depends_on=tuple(request.dependencies),
                delete_before_replace=bool(request.deleteBeforeReplace),
                property_dependencies={
                    k: tuple(v.urns) for k, v in request.propertyDependencies.items()
                },
                alias_types=tuple(a.spec.type for a in request.aliases if a.spec.type),
            )
        )  # fmt: skip
        return resource_pb2.RegisterResourceResponse(urn=urn, id=rid, object=obj)

    def RegisterResourceOutputs(self, request: Any) -> Any:  # noqa: N802
        if request.urn == self.stack_urn:
            self.stack_outputs = rpc.deserialize_properties(request.outputs, keep_unknowns=True)
        return super().RegisterResourceOutputs(request)


def unwrap_secrets(value: Any) -> Any:
    """Plain values for the mocks (secrets unwrapped); the recorded inputs keep the markers."""
    if rpc.is_rpc_secret(value):
        return unwrap_secrets(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value
