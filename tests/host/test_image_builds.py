"""The project's Dockerfiles, built for real on the test engine from a stand-in app source tree
exactly as the program declares them to pulumi-docker, pushed to a loopback registry with a login,
and pulled back by digest with a credential file like the one each app host gets.

The program runs under mocks (`custom_run("staging", appSourcePath=...)`); each `docker.Image`
it declares gives the context, Dockerfile and build args of one `docker build` here. Test
substitutions, each named: the stack's registry host (registry.digitalocean.com/<name>) becomes
the loopback registry's; the Dockerfiles' base-image arguments point at local stand-ins
(tests/support/app_source.py), since no registry is reachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.settings import PROJECT_DIR
from tests.support import DockerEngine
from tests.support.app_source import MIGRATIONS, make_app_source, standin_node_image
from tests.support.program import custom_run, plain
from tests.support.registry import LoopbackRegistry

pytestmark = [pytest.mark.host, pytest.mark.slow]

STAGING_API = "https://staging.clipper.example.com/api/v1"


@dataclass(frozen=True)
class BuiltImage:
    """One image built from the program's declaration and pushed to the loopback registry."""

    name: str
    tag: str  # <loopback registry>/<registry name>/<image>:<source tag>
    pinned: str  # tag@sha256:..., as pushed
    image_id: str
    size_bytes: int


def _declared_builds(source: Path) -> dict[str, dict[str, Any]]:
    """image -> {imageName, build} as the program hands them to pulumi-docker."""
    run = custom_run("staging", overrides={"appSourcePath": str(source), "appSourceRef": ""})
    images = run.of_type("docker:index/image:Image")
    return {
        r.name.removeprefix("staging-images-"): {
            "imageName": plain(r.inputs["imageName"]),
            "build": plain(r.inputs["build"]),
        }
        for r in images
    }


def _build_argv(declared: dict[str, Any], tag: str, base_args: dict[str, str]) -> list[str]:
    build = declared["build"]
    argv = ["build", "-q", "--platform", build["platform"], "-t", tag]
    argv += ["-f", str(PROJECT_DIR / build["dockerfile"])]  # relative to `pulumi up`'s cwd
    for key, value in {**build.get("args", {}), **base_args}.items():
        argv += ["--build-arg", f"{key}={value}"]
    return [*argv, str(PROJECT_DIR / build["context"])]


@pytest.fixture(scope="module")
def registry() -> Iterator[LoopbackRegistry]:
    with LoopbackRegistry() as started:
        yield started


@pytest.fixture(scope="module")
def built(
    docker_engine: DockerEngine,
    base_image: str,
    registry: LoopbackRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, BuiltImage]]:
    work = tmp_path_factory.mktemp("images")
    source = make_app_source(work / "clipper")
    push_config = registry.docker_config(work / "push-config")
    base_args = {
        "BASE_IMAGE": base_image,  # the stand-in backend's own Dockerfile
        "NODE_IMAGE": standin_node_image(docker_engine, base_image),
        "NGINX_IMAGE": base_image,
    }
    images: dict[str, BuiltImage] = {}
    try:
        for name, declared in _declared_builds(source).items():
            tag = declared["imageName"].replace("registry.digitalocean.com", registry.host, 1)
            docker_engine.run(_build_argv(declared, tag, base_args), timeout=600)
            docker_engine.run(["--config", str(push_config), "push", "-q", tag], timeout=300)
            inspect = docker_engine.run(
                ["image", "inspect", "--format", "{{.Id}} {{.Size}} {{index .RepoDigests 0}}", tag]
            ).stdout.split()
            digest = inspect[2].split("@", 1)[1]
            images[name] = BuiltImage(name, tag, f"{tag}@{digest}", inspect[0], int(inspect[1]))
        yield images
    finally:
        refs = [i.tag for i in images.values()] + [i.pinned for i in images.values()]
        docker_engine.run(["image", "rm", *refs], check=False)


def _files_of(engine: DockerEngine, image: str, path: str, into: Path) -> dict[str, str]:
    """`path` of `image` copied out like clipper-release does (create, cp, rm): name -> text."""
    container = f"clipper-imagetest-{abs(hash(image)) % 10**8}"
    engine.run(["rm", "-f", container], check=False)
    engine.run(["create", "--name", container, image, "inspect"])
    try:
        engine.run(["cp", f"{container}:{path}", str(into)])
    finally:
        engine.run(["rm", "-f", container], check=False)
    root = into / Path(path).name
    return {
        str(p.relative_to(root)): p.read_text(errors="replace")
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_program_declares_the_three_builds(built: dict[str, BuiltImage]) -> None:
    assert set(built) == {"backend", "frontend", "migrations"}
    for image in built.values():
        assert image.tag.endswith(f"/clipper/{image.name}:staging-dev")
        print(f"{image.name}: {image.size_bytes} bytes, {image.pinned}")


def test_the_migrations_image_holds_exactly_the_migration_files(
    docker_engine: DockerEngine, built: dict[str, BuiltImage], tmp_path: Path
) -> None:
    files = _files_of(docker_engine, built["migrations"].tag, "/migrations", tmp_path)
    print("migrations image:", sorted(files))
    assert files == MIGRATIONS  # no seed files, no README, no draft without up/down
    # Data only: nothing but /migrations in the image.
    assert built["migrations"].size_bytes < 10_000


def test_the_frontend_is_built_with_the_stacks_api_url_and_websocket_host(
    docker_engine: DockerEngine, built: dict[str, BuiltImage], tmp_path: Path
) -> None:
    files = _files_of(docker_engine, built["frontend"].tag, "/usr/share/nginx/html", tmp_path)
    bundle = files["assets/main.js"]
    print("frontend bundle:", bundle)
    assert f'API_BASE_URL = "{STAGING_API}"' in bundle
    assert 'WS_HOST = "staging.clipper.example.com"' in bundle
    # A developer's leftover .env.production is dropped before the build.
    assert 'E2E_LOGIN = "" === "true"' in bundle
    assert files["health.html"] == "healthy\n"


def test_the_frontend_build_refuses_to_run_without_an_api_url(
    docker_engine: DockerEngine, base_image: str, tmp_path: Path
) -> None:
    source = make_app_source(tmp_path / "clipper")
    proc = docker_engine.run(
        [
            "build", "-q", "-f", str(PROJECT_DIR / "images" / "frontend.Dockerfile"),
            "--build-arg", f"NODE_IMAGE={standin_node_image(docker_engine, base_image)}",
            "--build-arg", f"NGINX_IMAGE={base_image}", str(source / "frontend"),
        ],
        check=False,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "VITE_API_BASE_URL is required" in proc.stdout + proc.stderr


def test_a_pull_by_digest_needs_the_credential_file_and_gets_the_built_image(
    docker_engine: DockerEngine,
    built: dict[str, BuiltImage],
    registry: LoopbackRegistry,
    tmp_path: Path,
) -> None:
    backend = built["backend"]
    docker_engine.run(["image", "rm", backend.tag, backend.pinned], check=False)
    anonymous = docker_engine.run(
        ["--config", str(tmp_path / "empty"), "pull", "-q", backend.pinned], check=False
    )
    assert anonymous.returncode != 0
    assert "no basic auth credentials" in anonymous.stderr or "unauthorized" in anonymous.stderr
    # What a host does: `docker --config /etc/clipper/registry pull` (deploy.json's prefix).
    pull_config = registry.docker_config(tmp_path / "registry")
    assert (pull_config / "config.json").stat().st_mode & 0o777 == 0o600
    docker_engine.run(["--config", str(pull_config), "pull", "-q", backend.pinned], timeout=300)
    pulled = docker_engine.run(["image", "inspect", "--format", "{{.Id}}", backend.pinned])
    assert pulled.stdout.strip() == backend.image_id


def test_the_stand_in_backend_built_from_its_own_dockerfile_serves_health(
    docker_engine: DockerEngine, built: dict[str, BuiltImage]
) -> None:
    name = "clipper-imagetest-backend"
    docker_engine.run(["rm", "-f", name], check=False)
    # By id: the pull test above leaves only the pinned reference.
    docker_engine.run(["run", "-d", "--name", name, "-e", "PORT=8099", built["backend"].image_id])
    try:
        probe = docker_engine.run(
            ["exec", name, "python3", "-c",
             "import urllib.request as u, time\n"
             "for _ in range(50):\n"
             "    try: print(u.urlopen('http://127.0.0.1:8099/health').read().decode()); break\n"
             "    except OSError: time.sleep(0.1)\n"],
        )  # fmt: skip
        assert '"healthy"' in probe.stdout
    finally:
        docker_engine.run(["rm", "-f", name], check=False)
