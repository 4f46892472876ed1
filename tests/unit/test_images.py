"""The release's images under mocks: the registry the stack owns and its credentials, the
images it builds with pulumi-docker, prebuilt ones resolved to digests, and a deploy whose
triggers and deploy.json carry those digests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.host import layout as host_layout
from components.images.release_images import (
    ReleaseImages,
    ReleaseImagesArgs,
    docker_login,
    with_digest,
)
from components.images.source import app_source, checkout_commands
from components.offline.mocks import ClipperMocks, mock_registry_digest
from components.offline.runner import ProgramRun
from components.settings import SettingsError
from tests.support.app_source import make_app_source
from tests.support.program import (
    custom_run,
    default_secrets,
    is_secret,
    of_role,
    plain,
    settings_for,
    stack_run,
)

STACKS = ["staging", "production"]
IMAGE = "docker:index/image:Image"
REGISTRY = "digitalocean:index/containerRegistry:ContainerRegistry"
CREDENTIALS = (
    "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials"
)
PINNED = re.compile(r"^[a-z0-9./:-]+:[A-Za-z0-9_.-]+@sha256:[0-9a-f]{64}$")
GHCR = "ghcr.io/subculture-collective/clipper"
PREBUILT = {
    "imageBackend": f"{GHCR}/backend:v1.5.0",
    "imageFrontend": f"{GHCR}/frontend:v1.5.0",
    "imageMigrations": f"{GHCR}/migrations:v1.5.0",
}


def _command(run: ProgramRun, step: str, host: str = "app-1") -> Any:
    suffix = "-install" if step in ("scripts", "env") else ""
    return run.named(f"{run.stack}-release-{host}-{step}{suffix}")


def _bundle(run: ProgramRun, step: str) -> dict[str, dict[str, str]]:
    stdin = plain(_command(run, step).inputs["stdin"])
    return {f["path"]: f for f in json.loads(stdin)["files"]}


def _deploy_json(run: ProgramRun) -> dict[str, Any]:
    return dict(json.loads(_bundle(run, "scripts")[host_layout.DEPLOY_CONFIG_FILE]["content"]))


# ------------------------------------------------------------------------------ the registry


def test_staging_creates_the_accounts_one_registry_protected_and_kept_on_delete() -> None:
    # DigitalOcean allows one registry per account: staging creates it, production uses it.
    (registry,) = stack_run("staging").of_type(REGISTRY)
    assert plain(registry.inputs) == {
        "name": "clipper",
        "subscriptionTierSlug": "basic",
        "region": "nyc3",
    }
    # Production pulls from it: destroying staging must neither fail on it nor delete it.
    assert registry.protect and registry.retain_on_delete


def test_production_finds_the_registry_by_name_and_creates_none() -> None:
    run = stack_run("production")
    assert run.of_type(REGISTRY) == []
    images = _deploy_json(run)["images"]
    assert images["backend"].startswith("registry.digitalocean.com/clipper/backend:production-")


def test_a_second_stack_creating_the_registry_would_be_a_second_registry() -> None:
    # Both stack files of this repo are one account's stacks: exactly one creates it.
    created = [s for s in STACKS if settings_for(s).registry_create]
    assert created == ["staging"]


def test_registry_settings_reach_the_resource() -> None:
    run = custom_run(
        "staging",
        overrides={"registryName": "acme-clipper", "registryTier": "professional",
                   "registryRegion": "fra1"},
    )  # fmt: skip
    (registry,) = run.of_type(REGISTRY)
    assert plain(registry.inputs) == {
        "name": "acme-clipper",
        "subscriptionTierSlug": "professional",
        "region": "fra1",
    }


@pytest.mark.parametrize("stack", STACKS)
def test_hosts_get_a_read_only_credential_and_only_the_engine_a_push_one(stack: str) -> None:
    run = stack_run(stack)
    by_name = {r.name.rsplit("-", 2)[-2]: r for r in run.of_type(CREDENTIALS)}
    assert plain(by_name["pull"].inputs) == {"registryName": "clipper", "write": False}
    assert plain(by_name["push"].inputs)["write"] is True
    # Both tokens are secrets in state (the provider marks them), as the mocks mirror.
    assert all(is_secret(r.outputs["dockerCredentials"]) for r in by_name.values())


def test_without_builds_no_push_credential_exists() -> None:
    run = custom_run("staging", overrides=PREBUILT)
    assert [plain(r.inputs)["write"] for r in run.of_type(CREDENTIALS)] == [False]
    assert run.of_type(IMAGE) == []


@pytest.mark.parametrize("stack", STACKS)
def test_each_host_gets_the_pull_credential_over_ssh_as_a_0600_secret_file(stack: str) -> None:
    run = stack_run(stack)
    pull = next(r for r in run.of_type(CREDENTIALS) if r.name.endswith("-pull-credential"))
    token = plain(pull.outputs["dockerCredentials"])
    for host in [r.name.split("-release-")[1].rsplit("-", 1)[0]
                 for r in run.registrations if r.name.endswith("-deploy")]:  # fmt: skip
        env = _command(run, "env", host)
        assert is_secret(env.inputs["stdin"])
        files = {f["path"]: f for f in json.loads(plain(env.inputs["stdin"]))["files"]}
        entry = files[host_layout.REGISTRY_DOCKER_CONFIG_FILE]
        assert (entry["mode"], entry["content"]) == ("0600", token)
    # ... and never in user data or the plain scripts bundle.
    for droplet in of_role(run, "digitalocean:index/droplet:Droplet"):
        assert token not in json.dumps(plain(droplet.inputs))
    assert token not in json.dumps(_bundle(run, "scripts"))


@pytest.mark.parametrize("stack", STACKS)
def test_every_docker_call_on_a_host_uses_the_registry_credential(stack: str) -> None:
    config = _deploy_json(stack_run(stack))
    assert config["commands"]["docker"] == ["docker", "--config", "/etc/clipper/registry"]
    assert Path(host_layout.REGISTRY_DOCKER_CONFIG_FILE).parent == Path(
        host_layout.REGISTRY_DOCKER_CONFIG_DIR
    )


# ------------------------------------------------------------------------------ builds


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_builds_and_pushes_the_three_images_from_the_apps_source(stack: str) -> None:
    run = stack_run(stack)
    settings = settings_for(stack)
    source = app_source(settings)
    images = {r.name.removeprefix(f"{stack}-images-"): r for r in run.of_type(IMAGE)}
    assert set(images) == {"backend", "frontend", "migrations"}
    root = str(source.root.relative_to(Path(__file__).resolve().parents[2]))
    expected = {
        "backend": (f"{root}/backend", f"{root}/backend/Dockerfile"),
        "frontend": (f"{root}/frontend", "images/frontend.Dockerfile"),
        "migrations": (f"{root}/backend/migrations", "images/migrations.Dockerfile"),
    }
    for name, image in images.items():
        build = plain(image.inputs["build"])
        assert (build["context"], build["dockerfile"]) == expected[name]
        assert build["platform"] == "linux/amd64"
        assert plain(image.inputs["imageName"]) == (
            f"registry.digitalocean.com/clipper/{name}:{stack}-{settings.app_source_ref}"
        )
        assert image.inputs["skipPush"] is False
        # The push login (the write token) stays secret.
        registry = image.inputs["registry"]
        assert is_secret(registry) or is_secret(registry["password"])


@pytest.mark.parametrize(("stack", "domain"), [("staging", "staging.clipper.example.com"),
                                              ("production", "clipper.example.com")])  # fmt: skip
def test_the_frontend_is_built_with_the_stacks_api_url_and_websocket_host(
    stack: str, domain: str
) -> None:
    frontend = stack_run(stack).named(f"{stack}-images-frontend")
    args = plain(frontend.inputs["build"])["args"]
    assert args["VITE_API_BASE_URL"] == f"https://{domain}/api/v1"
    assert args["VITE_WS_HOST"] == domain
    assert args["VITE_BASE_URL"] == f"https://{domain}"


def test_stripe_prices_reach_the_frontend_build() -> None:
    run = custom_run(
        "staging",
        overrides={"stripeProMonthlyPriceId": "price_1Monthly0000", "stripeProYearlyPriceId":
                   "price_1Yearly00000"},
        secrets={**default_secrets("staging"), "stripeSecretKey": "sk", "stripeWebhookSecret": "w"},
    )  # fmt: skip
    args = plain(run.named("staging-images-frontend").inputs["build"])["args"]
    assert args["VITE_STRIPE_PRO_MONTHLY_PRICE_ID"] == "price_1Monthly0000"
    assert args["VITE_STRIPE_PRO_YEARLY_PRICE_ID"] == "price_1Yearly00000"


def test_a_local_checkout_builds_with_the_dev_tag(tmp_path: Path) -> None:
    source = make_app_source(tmp_path / "clipper")
    run = custom_run("staging", overrides={"appSourcePath": str(source), "appSourceRef": ""})
    backend = run.named("staging-images-backend")
    assert plain(backend.inputs["build"])["context"] == str(source / "backend")
    assert plain(backend.inputs["imageName"]).endswith("/backend:staging-dev")


def test_a_git_source_is_fetched_at_its_ref_into_a_clean_detached_checkout() -> None:
    commands = checkout_commands("https://github.com/o/app.git", "v1.4.0", Path("/src/x"))
    assert commands == [
        ["git", "init", "--quiet", "/src/x"],
        ["git", "-C", "/src/x", "fetch", "--quiet", "--depth", "1", "--no-tags",
         "https://github.com/o/app.git", "v1.4.0"],
        ["git", "-C", "/src/x", "checkout", "--quiet", "--force", "--detach", "FETCH_HEAD"],
        ["git", "-C", "/src/x", "clean", "--quiet", "-ffdx"],
    ]  # fmt: skip


def test_a_git_source_checks_out_the_real_ref(tmp_path: Path) -> None:
    """The checkout commands against a real (local) git repository: the tag's files, no more."""
    import subprocess

    from components.images.source import AppSource, ensure_checkout

    repo = tmp_path / "upstream"
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "backend").mkdir()
    (repo / "backend" / "v").write_text("one\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    subprocess.run([*git, "tag", "v1"], check=True)
    (repo / "backend" / "v").write_text("two\n")
    subprocess.run([*git, "commit", "-qam", "two"], check=True)
    target = tmp_path / "checkout"
    source = AppSource(target, "v1", (str(repo), "v1"))
    ensure_checkout(source)
    (target / "stray").write_text("left by a build\n")
    ensure_checkout(source)  # re-runnable, and cleans what a build left
    assert (target / "backend" / "v").read_text() == "one\n"
    assert not (target / "stray").exists()
    with pytest.raises(Exception, match="at no-such-tag failed at `git -C"):
        ensure_checkout(AppSource(target, "x", (str(repo), "no-such-tag")))


# ------------------------------------------------------------------------------ digests


@pytest.mark.parametrize("stack", STACKS)
def test_the_deploy_ships_and_triggers_on_pinned_digests_only(stack: str) -> None:
    run = stack_run(stack)
    images = _deploy_json(run)["images"]
    assert set(images) == {"backend", "frontend", "migrations", "migrate"}
    assert all(PINNED.match(ref) for ref in images.values()), images
    triggers = [str(t) for t in plain(_command(run, "deploy").inputs["triggers"])]
    for ref in images.values():
        assert ref in triggers
    assert run.outputs["releaseImages"].value == images


def test_a_prebuilt_tag_is_shipped_with_the_digest_the_registry_lookup_answered() -> None:
    run = custom_run("staging", overrides=PREBUILT)
    images = _deploy_json(run)["images"]
    ref = PREBUILT["imageBackend"]
    assert images["backend"] == f"{ref}@{mock_registry_digest(ref)}"


def _pinned_under(mocks: ClipperMocks, overrides: dict[str, str]) -> dict[str, str]:
    """ReleaseImages alone, under `mocks` (a registry whose tags a test can move)."""
    settings = settings_for("staging", **overrides)
    pulumi.runtime.set_mocks(mocks, project="clipper-infra", stack="staging", preview=True)
    seen: list[dict[str, str]] = []

    @pulumi.runtime.test
    def program() -> pulumi.Output[None]:
        images = ReleaseImages("t", ReleaseImagesArgs(settings, app_source(settings)))
        return images.pinned.apply(seen.append)

    program()
    return seen[0]


def test_a_moved_tag_changes_what_the_preview_shows_and_ships() -> None:
    ref = PREBUILT["imageBackend"]
    before = _pinned_under(ClipperMocks(), PREBUILT)
    moved = "sha256:" + "7" * 64
    after = _pinned_under(ClipperMocks(registry_digests={ref: moved}), PREBUILT)
    assert before["backend"] != after["backend"] == f"{ref}@{moved}"
    assert before["frontend"] == after["frontend"]


def test_another_source_ref_rebuilds_and_changes_the_deploy_trigger() -> None:
    base = stack_run("staging")
    moved = custom_run("staging", overrides={"appSourceRef": "a" * 40})
    old = plain(_command(base, "deploy").inputs["triggers"])
    new = plain(_command(moved, "deploy").inputs["triggers"])
    assert old != new
    assert any(str(t).startswith("registry.digitalocean.com/clipper/backend:staging-aaaa")
               for t in new)  # fmt: skip


def test_docker_logins_and_digests_are_read_from_what_the_providers_return() -> None:
    config = '{"auths":{"registry.digitalocean.com":{"auth":"dG9rOnRvaw=="}}}'
    assert docker_login(config) == ("tok", "tok")
    digest = "sha256:" + "1" * 64
    assert with_digest("r/a:v1", f"r/a@{digest}") == f"r/a:v1@{digest}"
    with pytest.raises(ValueError, match="not a digest"):
        with_digest("r/a:v1", "r/a:v1")


# ------------------------------------------------------------------------------ settings


def _problems(**overrides: str) -> list[str]:
    try:
        settings_for("staging", **overrides)
    except SettingsError as err:
        return err.problems
    return []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"imageBackend": "bulid"}, 'imageBackend = "bulid": has no tag or digest'),
        ({"imageBackend": "bulid"}, "or 'build' to build it from the app's source"),
        ({"appSourceRef": ""}, 'appSourceRef = "": backend, frontend, migrations set to'),
        ({"appSourcePath": "/no/such/dir"}, 'appSourcePath = "/no/such/dir": no such directory'),
        ({"appSourcePath": "."}, "set either appSourcePath or appSourceRef"),
        ({"appSourceRef": "v1..2"}, 'appSourceRef = "v1..2": allowed: empty, a git tag'),
        ({"appSourceGitUrl": "https://tok@github.com/o/r"}, "appSourceGitUrl"),
        ({"registryTier": "starter"}, "holds 1 repository, and this stack builds 3 images"),
        ({"registryTier": "premium"}, "not a known registry subscription tier"),
        ({"registryName": "Clipper_Prod"}, 'registryName = "Clipper_Prod": not a registry name'),
        ({"registryRegion": "nyc1"}, 'registryRegion = "nyc1": has no DigitalOcean Container'),
    ],
)
def test_bad_image_settings_are_refused_naming_key_value_and_rule(
    overrides: dict[str, str], expected: str
) -> None:
    problems = _problems(**overrides)
    assert any(expected in p for p in problems), problems


def test_prebuilt_images_need_no_source_and_a_starter_registry_is_enough_for_one_build() -> None:
    assert _problems(**PREBUILT, appSourceRef="") == []
    one_build = {**PREBUILT, "imageMigrations": "build"}
    assert _problems(**one_build, registryTier="starter") == []


def test_a_region_without_a_registry_uses_the_nearest_one() -> None:
    settings = settings_for("staging", region="nyc1", backupRegion="nyc3")
    assert settings.effective_registry_region == "nyc3"


def _release_inputs(run: ProgramRun) -> dict[str, Any]:
    (release,) = run.of_type("clipper:release:Release")
    return dict(plain(release.inputs))


def test_the_plan_shows_each_images_digest_on_the_release() -> None:
    run = stack_run("production")
    inputs = _release_inputs(run)
    assert inputs["images"] == _deploy_json(run)["images"]
    assert inputs["digests"] == {k: v.rpartition("@")[2] for k, v in inputs["images"].items()}


def test_a_moved_tag_shows_up_in_the_stacks_plan_as_a_new_digest_and_deploy() -> None:
    from components.offline.runner import run_program

    ref = PREBUILT["imageFrontend"]
    moved = "sha256:" + "9" * 64
    before = run_program("staging", overrides=PREBUILT)
    after = run_program(
        "staging", overrides=PREBUILT, mocks=ClipperMocks(registry_digests={ref: moved})
    )
    assert _release_inputs(before)["digests"]["frontend"] == mock_registry_digest(ref)
    assert _release_inputs(after)["digests"]["frontend"] == moved
    assert _deploy_json(after)["images"]["frontend"] == f"{ref}@{moved}"
    assert plain(_command(after, "deploy").inputs["triggers"]) != plain(
        _command(before, "deploy").inputs["triggers"]
    )
