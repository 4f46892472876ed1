"""The release's images: built from the app's source or prebuilt, and the account's registry."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from components.settings import image_rules
from components.settings.checks import one_of
from components.settings.concern import Concern

ImageSource = Annotated[str, AfterValidator(image_rules.image_source)]


class ImageSettings(Concern):
    """Where each release image comes from, the app source to build from, and the registry."""

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
        str, one_of(tuple(image_rules.REGISTRY_TIER_REPOSITORIES), "registry subscription tier")
    ] = Field(
        description="Registry subscription tier: starter (1 repository), basic, professional."
    )
    registry_region: Annotated[str, AfterValidator(image_rules.registry_region)] = Field(
        description="Region of the registry; empty: the stack's region (or the nearest one"
        " offering a registry)."
    )

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
