"""This app host as clipper-release acts on it: thin actions that run what `commands` builds."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .commands import colors as color_commands
from .commands import docker, nginx
from .commands import postgres as pg_commands
from .containers import LABEL_ROLE, ColorState, ContainerState, parse_inspect
from .decisions import color_of_include
from .envfile import read_env_file
from .errors import ConfigError, HostError
from .files import atomic_write, read_text
from .migrations import MigrateLogin, database_setup_sql, migrate_environment, migrate_login
from .probes import probe
from .release_config import COLORS, ROLES, Config
from .runner import run

ADMIN_ENV_KEYS: tuple[str, ...] = ("PGHOST", "PGUSER", "PGPASSWORD", "PGDATABASE")
LOG_TAIL_LINES = 20
POLL_SECONDS = 0.25


def say(message: str) -> None:
    """One progress line on stdout (the Pulumi command shows it to the operator)."""
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())}] {message}", flush=True)


class Host:
    """This app host: its containers, nginx include and database, through the docker CLI."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def docker(
        self, argv: Sequence[str], what: str, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        return run(argv, what=what, **kwargs)

    # -- looking

    def inspect(self, names: Sequence[str]) -> dict[str, ContainerState]:
        proc = run(
            docker.inspect_containers(self.config.docker, names),
            check=False,
            timeout=60,
            what="docker container inspect",
        )
        if proc.returncode != 0 and not proc.stdout.strip() and "No such" not in proc.stderr:
            raise HostError(f"docker container inspect failed: {proc.stderr.strip()}")
        return parse_inspect(names, proc.stdout)

    def colors(self) -> dict[str, ColorState]:
        names = [self.config.container(color, role) for color in COLORS for role in ROLES]
        found = self.inspect(names)
        return {
            color: ColorState(
                color,
                found[self.config.container(color, "backend")],
                found[self.config.container(color, "frontend")],
            )
            for color in COLORS
        }

    def probes(self, color: str) -> dict[str, tuple[bool, str]]:
        conf = self.config.colors[color]
        return {
            "backend": probe(conf.backend_port, self.config.backend_health_path),
            "frontend": probe(conf.frontend_port, self.config.frontend_health_path),
        }

    def is_ready(self, state: ColorState) -> bool:
        return state.running and all(ok for ok, _ in self.probes(state.color).values())

    def include_color(self) -> str | None:
        return color_of_include(read_text(self.config.nginx_include), self.config.colors)

    def image_present(self, ref: str) -> bool:
        argv = docker.image_id(self.config.docker, ref)
        return run(argv, check=False, timeout=60, what="docker image inspect").returncode == 0

    def logs_tail(self, name: str, lines: int = LOG_TAIL_LINES) -> str:
        argv = docker.logs_tail(self.config.docker, name, lines)
        proc = run(argv, check=False, timeout=30, what="docker logs")
        return (proc.stdout + proc.stderr).rstrip()

    # -- nginx

    def point_nginx_at(self, color: str) -> None:
        """Atomically swap the include to `color`, check the config, reload. On a failed check
        or reload the previous include is put back, so nginx keeps serving what it served."""
        include = self.config.nginx_include
        previous = read_text(include)
        wanted = self.config.colors[color].upstreams
        if previous != wanted:
            atomic_write(include, wanted)
        test = run(nginx.config_test(self.config.nginx_test), check=False, what="nginx -t")
        if test.returncode != 0:
            self.restore_include(previous)
            raise HostError(
                f"nginx rejected the config with the {color} include; the previous include is"
                f" back in place:\n{(test.stdout + test.stderr).strip()}"
            )
        reload = run(nginx.reload(self.config.nginx_reload), check=False, what="nginx reload")
        if reload.returncode != 0:
            self.restore_include(previous)
            raise HostError(f"nginx reload failed:\n{(reload.stdout + reload.stderr).strip()}")

    def restore_include(self, previous: str | None) -> None:
        if previous is None:
            with contextlib.suppress(FileNotFoundError):
                self.config.nginx_include.unlink()
        else:
            atomic_write(self.config.nginx_include, previous)

    # -- containers

    def start_color(self, color: str, release: Mapping[str, Any], env: Mapping[str, str]) -> None:
        """(Re)create `color`'s backend and frontend for `release` (no restart policy yet)."""
        config = self.config
        run(color_commands.remove(config, color), check=False, timeout=120, what="docker rm")
        names = color_commands.backend_env_names(config, env)
        values = color_commands.backend_environment(config, color, env)
        run(
            color_commands.run_backend(config, color, release, names),
            env={**os.environ, **values},
            timeout=300,
            what=f"docker run {config.container(color, 'backend')}",
        )
        run(
            color_commands.run_frontend(config, color, release),
            timeout=300,
            what=f"docker run {config.container(color, 'frontend')}",
        )

    def resume_color(self, state: ColorState) -> None:
        names = [c.name for c in state.containers if not c.running]
        if names:
            run(docker.start(self.config.docker, *names), timeout=120, what="docker start")

    def stop_color(self, color: str) -> None:
        run(
            color_commands.stop(self.config, color),
            check=False,
            timeout=self.config.stop_timeout + 60,
            what="docker stop",
        )

    def remove_color(self, color: str) -> None:
        run(color_commands.remove(self.config, color), check=False, timeout=120, what="docker rm")

    def keep_running_after_reboot(self, color: str) -> None:
        run(
            color_commands.keep_after_reboot(self.config, color),
            timeout=60,
            what="docker update --restart",
        )

    def forget_after_reboot(self, color: str) -> None:
        run(
            color_commands.forget_after_reboot(self.config, color),
            check=False,
            timeout=60,
            what="docker update --restart no",
        )

    def wait_ready(self, color: str, timeout: float) -> None:
        """Poll both containers' health URLs; fail fast when a container dies, explain why."""
        deadline = time.monotonic() + timeout
        last: dict[str, tuple[bool, str]] = {}
        seen_ready: set[str] = set()
        while True:
            state = self.colors()[color]
            dead = [c for c in state.containers if not c.running]
            if dead:
                raise HostError(self.why_not_ready(color, state, last, "a container stopped"))
            last = self.probes(color)
            if all(ok for ok, _ in last.values()):
                return
            relapsed = sorted(role for role in seen_ready if not last[role][0])
            if relapsed:
                headline = f"its {' and '.join(relapsed)} answered ready, then failed"
                raise HostError(self.why_not_ready(color, state, last, headline))
            seen_ready |= {role for role, (ok, _) in last.items() if ok}
            if time.monotonic() >= deadline:
                raise HostError(
                    self.why_not_ready(color, state, last, f"not ready after {timeout:.0f}s")
                )
            time.sleep(POLL_SECONDS)

    def why_not_ready(
        self, color: str, state: ColorState, probes: Mapping[str, tuple[bool, str]], headline: str
    ) -> str:
        lines = [f"the {color} colour did not become ready: {headline}"]
        paths = {
            "backend": self.config.backend_health_path,
            "frontend": self.config.frontend_health_path,
        }
        for role, container in zip(ROLES, state.containers, strict=True):
            answer = probes.get(role)
            health = f"; {paths[role]} -> {answer[1]}" if answer else ""
            lines.append(f"  {container.name}: {container.describe()}{health}")
        for container in state.containers:
            if not container.exists:
                continue
            ok = probes.get(container.labels.get(LABEL_ROLE, ""), (False, ""))[0]
            if container.running and ok:
                continue
            lines.append(f"  last log lines of {container.name}:")
            tail = self.logs_tail(container.name) or "(no output)"
            lines += [f"    | {line}" for line in tail.splitlines()]
        return "\n".join(lines)

    # -- images, database

    def pull_missing(self, images: Mapping[str, str]) -> None:
        for ref in dict.fromkeys(images.values()):
            if self.image_present(ref):
                continue
            say(f"pulling {ref}")
            run(docker.pull(self.config.docker, ref), timeout=1800, what=f"docker pull {ref}")

    def remove_image(self, ref: str) -> None:
        run(docker.remove_image(self.config.docker, ref), check=False, timeout=120,
            what="docker image rm")  # fmt: skip

    def admin_env(self) -> dict[str, str]:
        """The admin login (libpq variables) of the cluster's direct connection."""
        admin = read_env_file(self.config.db_admin_env_file)
        missing = [key for key in ADMIN_ENV_KEYS if not admin.get(key)]
        if missing:
            raise ConfigError(f"{self.config.db_admin_env_file} lacks {', '.join(missing)}")
        return admin

    def migrate_login(self, env: Mapping[str, str]) -> MigrateLogin:
        return migrate_login(env, self.admin_env())

    def prepare_database(self, env: Mapping[str, str]) -> None:
        """As the admin (psql, the admin env): the extensions, and the app user's rights on
        schema public (see database_setup_sql)."""
        if not env.get("DB_USER"):
            raise ConfigError(f"{self.config.backend_env_file} lacks DB_USER")
        admin = self.admin_env()
        clean = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
        run(
            pg_commands.psql_script(self.config.psql),
            env={**clean, "PGCONNECT_TIMEOUT": "15", **admin},
            input=database_setup_sql(self.config.extensions, env["DB_USER"]),
            timeout=120,
            what="preparing the database (psql as the admin user)",
        )

    def extract_migrations(self, release: Mapping[str, Any]) -> Path:
        """Copy /migrations out of the release's migrations image into the state dir."""
        config = self.config
        rid = release["id"]
        root = config.state_dir / "migrations"
        target = root / rid
        staging = root / f".incoming-{rid}"
        extractor = f"{config.prefix}-{color_commands.MIGRATIONS_COPY}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        run(docker.remove_force(config.docker, extractor), check=False, what="docker rm")
        run(
            color_commands.migrations_copy_create(config, release["images"]["migrations"]),
            what="docker create (migrations image)",
        )
        try:
            run(docker.copy(config.docker, f"{extractor}:/migrations", str(staging)),
                what="docker cp /migrations")  # fmt: skip
        finally:
            run(docker.remove_force(config.docker, extractor), check=False, what="docker rm")
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging / "migrations", target)
        shutil.rmtree(staging, ignore_errors=True)
        return target

    def migrate(
        self, image: str, login: MigrateLogin, source: Path, *command: str
    ) -> subprocess.CompletedProcess[str]:
        """golang-migrate (`image`) with `command`, on the migrations in `source`; the password
        and the session's lock bounds only in its environment. The files are copied into the
        container rather than bind-mounted: a bind mount names a path on the engine's machine."""
        config = self.config
        runner = f"{config.prefix}-{color_commands.MIGRATE_RUNNER}"
        if self.inspect([runner])[runner].running:
            # A killed deploy left golang-migrate running: cutting it short would leave the
            # schema dirty, so let it finish first (the next `up` is then a no-op).
            say("waiting for the migration an interrupted deploy left running")
            run(docker.wait(config.docker, runner), check=False, timeout=3600, what="docker wait")
        run(docker.remove_force(config.docker, runner), check=False, what="docker rm")
        run(
            color_commands.migrate_create(config, image, login.url, command),
            env={**os.environ, **migrate_environment(login)},
            timeout=300,
            what="docker create (golang-migrate)",
        )
        try:
            # `DIR/.`: the directory's contents, into /migrations (which docker cp creates).
            run(
                docker.copy(config.docker, f"{source}/.", f"{runner}:/migrations"),
                timeout=300,
                what="docker cp of the migrations into golang-migrate's container",
            )
            return run(docker.start_attached(config.docker, runner), timeout=3600, check=False,
                       what="golang-migrate")  # fmt: skip
        finally:
            # Without -f: a migration still running (this command was interrupted) is left to
            # finish, and the next run waits for it (above) before removing it.
            run(docker.remove(config.docker, runner), check=False, timeout=60, what="docker rm")
