"""The release's images: the account's registry, what the stack builds, and every image by digest.

- The account's DigitalOcean Container Registry (`registryName`, `registryTier`,
  `registryRegion`). DigitalOcean allows one registry per account, so the stacks of an account
  share it: the one with `registryCreate` creates it (protected, and kept when that stack is
  destroyed, since the other stacks pull from it); the others look it up by name. Repositories
  are shared too (basic holds 5: backend, frontend, migrations), the tag says the stack:
  `<registry>/<image>:<environment>-<source tag>`. Two credentials for it: a read-only one
  that each app host's Docker uses for every pull
  (delivered over SSH as /etc/clipper/registry/config.json, mode 0600, by the release), and,
  when the stack builds images, a push credential that only the Pulumi engine uses.
- Each image set to `build` is built by pulumi-docker from the app's source (components/
  images/source.py) and pushed as `<registry>/<image>:<environment>-<source tag>`; its pinned
  reference carries the digest the push returned.
- Each prebuilt reference is resolved to its digest at preview (components/images/digest.py).

So `pinned` holds `name:tag@sha256:...` for backend, frontend, migrations and migrate: what the
deploy's triggers and deploy.json carry, and what the hosts pull. A prebuilt image's digest is
known at preview; a built one's only once `pulumi up` has pushed it (pulumi-docker builds on
`up`), but the preview shows that image changing whenever its context, Dockerfile or build args
do, and the deploy runs exactly the digest that push returned.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_digitalocean as do
import pulumi_docker as docker

from components.images.digest import pinned_reference
from components.images.source import AppSource
from components.settings import PROJECT_DIR, Settings
from components.settings.image_rules import BUILD, REGISTRY_SERVER

IMAGES_DIR = PROJECT_DIR / "images"
# DigitalOcean droplets are x86-64; a build on an ARM laptop must still produce that.
BUILD_PLATFORM = "linux/amd64"


@dataclass(frozen=True)
class BuildSpec:
    """One `docker build`: context directory, Dockerfile and build arguments."""

    context: Path
    dockerfile: Path
    args: dict[str, str]


def frontend_build_args(settings: Settings) -> dict[str, str]:
    """What Vite bakes into the frontend: this stack's API, WebSocket host, site and prices."""
    return {
        "VITE_API_BASE_URL": settings.api_base_url,
        "VITE_WS_HOST": settings.domain,
        "VITE_BASE_URL": settings.site_url,
        "VITE_STRIPE_PRO_MONTHLY_PRICE_ID": settings.stripe_pro_monthly_price_id,
        "VITE_STRIPE_PRO_YEARLY_PRICE_ID": settings.stripe_pro_yearly_price_id,
    }


def build_specs(settings: Settings, source: AppSource) -> dict[str, BuildSpec]:
    """The builds of the images `settings` sets to `build` (pure)."""
    specs = {
        # The app's own Dockerfile: it takes no build-time settings.
        "backend": BuildSpec(source.backend_context, source.backend_context / "Dockerfile", {}),
        # The app's Dockerfile has no ARG for the API URL: the project's takes it.
        "frontend": BuildSpec(
            source.frontend_context,
            IMAGES_DIR / "frontend.Dockerfile",
            frontend_build_args(settings),
        ),
        # The context is the migrations folder alone; the Dockerfile picks the migration files.
        "migrations": BuildSpec(
            source.migrations_context, IMAGES_DIR / "migrations.Dockerfile", {}
        ),
    }
    return {name: specs[name] for name in settings.images_to_build}


def docker_login(docker_config_json: str) -> tuple[str, str]:
    """(user, password) of the registry's entry in a Docker config file (DigitalOcean's
    credentials are `{"auths": {"registry.digitalocean.com": {"auth": base64(user:pass)}}}`)."""
    auths = json.loads(docker_config_json).get("auths", {})
    entry = auths.get(REGISTRY_SERVER) or next(iter(auths.values()), None)
    if not entry or "auth" not in entry:
        raise ValueError(f"the registry credential has no auth entry for {REGISTRY_SERVER}")
    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
    return user, password


def with_digest(image_name: str, repo_digest: str) -> str:
    """`name:tag@sha256:...` from the pushed `name:tag` and the `repo@sha256:...` it got."""
    digest = repo_digest.rpartition("@")[2]
    if not digest.startswith("sha256:"):
        raise ValueError(f"the push of {image_name} returned {repo_digest!r}, not a digest")
    return f"{image_name}@{digest}"


def _project_relative(path: Path) -> str:
    """`path` relative to the project (the working directory of `pulumi up`) when inside it,
    so the plan and the image's inputs are the same on every machine."""
    return str(path.relative_to(PROJECT_DIR)) if path.is_relative_to(PROJECT_DIR) else str(path)


def _image_name(image: str, tag: str) -> Callable[[str], str]:
    """`<endpoint>/<image>:<tag>` once the registry's endpoint is known."""
    return lambda endpoint: f"{endpoint}/{image}:{tag}"


@dataclass(frozen=True)
class RegistryRef:
    """What the stack needs of the registry, whether it created it or found it."""

    name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    server_url: pulumi.Output[str]


def _account_registry(name: str, settings: Settings, child: pulumi.ResourceOptions) -> RegistryRef:
    """The account's one registry: created by the stack with `registryCreate`, else looked up."""
    if settings.registry_create:
        created = do.ContainerRegistry(
            f"{name}-registry",
            name=settings.effective_registry_name,
            subscription_tier_slug=settings.registry_tier,
            region=settings.effective_registry_region,
            # The other stacks of the account pull from it: never deleted with this one.
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(protect=True, retain_on_delete=True)
            ),
        )
        return RegistryRef(created.name, created.endpoint, created.server_url)
    found = do.get_container_registry_output(name=settings.effective_registry_name)
    return RegistryRef(found.name, found.endpoint, found.server_url)


@dataclass(frozen=True)
class ReleaseImagesArgs:
    """The stack's settings and the app source its built images come from."""

    settings: Settings
    source: AppSource


class ReleaseImages(pulumi.ComponentResource):
    """The registry, its credentials, the built images and every release image by digest."""

    pinned: pulumi.Output[dict[str, str]]
    registry_endpoint: pulumi.Output[str]
    pull_docker_config: pulumi.Output[str]

    def __init__(
        self, name: str, args: ReleaseImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("clipper:images:ReleaseImages", name, None, opts)
        settings = args.settings
        child = pulumi.ResourceOptions(parent=self)
        registry = _account_registry(name, settings, child)
        # Read-only: a host that leaks it can pull the app, never replace it.
        pull = do.ContainerRegistryDockerCredentials(
            f"{name}-pull-credential", registry_name=registry.name, write=False, opts=child
        )
        pinned: dict[str, pulumi.Output[str]] = {}
        specs = build_specs(settings, args.source)
        if specs:
            push = do.ContainerRegistryDockerCredentials(
                f"{name}-push-credential", registry_name=registry.name, write=True, opts=child
            )
            login = pulumi.Output.secret(push.docker_credentials.apply(docker_login))
            # Repositories are shared by the account's stacks; the tag says which stack's build.
            tag = f"{settings.environment}-{args.source.tag}"
            for image, spec in specs.items():
                image_name = registry.endpoint.apply(_image_name(image, tag))
                built = docker.Image(
                    f"{name}-{image}",
                    image_name=image_name,
                    build=docker.DockerBuildArgs(
                        context=_project_relative(spec.context),
                        dockerfile=_project_relative(spec.dockerfile),
                        args=spec.args or None,
                        platform=BUILD_PLATFORM,
                    ),
                    registry=docker.RegistryArgs(
                        server=registry.server_url,
                        username=login.apply(lambda up: up[0]),
                        password=pulumi.Output.secret(login.apply(lambda up: up[1])),
                    ),
                    opts=child,
                )
                pinned[image] = pulumi.Output.all(image_name, built.repo_digest).apply(
                    lambda v: with_digest(v[0], v[1])
                )
        prebuilt = {
            "backend": settings.image_backend,
            "frontend": settings.image_frontend,
            "migrations": settings.image_migrations,
            "migrate": settings.image_migrate,
        }
        for image, reference in prebuilt.items():
            if reference != BUILD:
                pinned[image] = pinned_reference(image, reference)

        self.pinned = pulumi.Output.all(**{k: pinned[k] for k in prebuilt})
        self.registry_endpoint = registry.endpoint
        self.pull_docker_config = pulumi.Output.secret(pull.docker_credentials)
        self.register_outputs({"pinned": self.pinned, "registry_endpoint": self.registry_endpoint})
