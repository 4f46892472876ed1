"""Benchmark: a blue-green deploy and a rollback under steady load, on this machine.

    .venv/bin/python bench/deploy_under_load.py [--threads 16] [--drain-seconds 1]

Sets up what the release tests use, from scratch if needed: the Debian packages
(scripts/install-test-deps.sh when a tool is missing), a Docker engine with the registry-free
base image and the stand-in app images, PostgreSQL, Redis and nginx on loopback, and one app
host with release v1 live (tests/support/release_host.py). Then it drives steady load at the
site through nginx, deploys v2 with the real hostscripts/clipper-release, rolls back to v1,
stops the load and tears everything down. Every request goes to 127.0.0.1.

The last line is `sent=N failed=N deploy_s=X rollback_s=Y`: requests sent and failed during
the whole run, and the wall time of the deploy and rollback commands (each includes the
drain before the old colour stops); the line before it says when traffic actually moved.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

TOOLS = ("nginx", "dockerd", "containerd", "debootstrap", "redis-server", "psql", "openssl")
INITDB = Path("/usr/lib/postgresql/15/bin/initdb")


def ensure_tools() -> None:
    """Install the Debian packages the setup runs, unless they are all there already."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if not INITDB.exists():
        missing.append(str(INITDB))
    if missing:
        print(f"missing {', '.join(missing)}: running scripts/install-test-deps.sh", flush=True)
        subprocess.run(["bash", str(PROJECT_DIR / "scripts" / "install-test-deps.sh")], check=True)


def switch_seconds(output: str, pattern: str) -> float | None:
    match = re.search(pattern, output)
    return float(match.group(1)) if match else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16, help="load threads (default 16)")
    parser.add_argument(
        "--drain-seconds", type=float, default=1.0, help="deploy.json drain_seconds (default 1)"
    )
    parser.add_argument(
        "--settle-seconds", type=float, default=2.0, help="load before/after each step"
    )
    args = parser.parse_args()
    ensure_tools()

    from tests.support.docker import DockerEngine, build_base_image
    from tests.support.release_host import AppHost, build_release_images
    from tests.support.services import PostgresServer, RedisServer

    started = time.monotonic()
    with DockerEngine() as engine, PostgresServer() as postgres, RedisServer() as redis:
        images = build_release_images(engine, build_base_image(engine))
        with AppHost(engine, postgres, redis, images) as host:
            host.write_config(drain_seconds=args.drain_seconds)
            first = host.release("deploy")
            if first.returncode != 0 or not host.wait_stable("v1"):
                print(first.stdout + first.stderr, file=sys.stderr)
                return 1
            print(f"setup done in {time.monotonic() - started:.1f}s; v1 live", flush=True)

            host.use_images("v2", "v2", "v2")
            with host.load(threads=args.threads) as load:
                time.sleep(args.settle_seconds)
                t0 = time.monotonic()
                deploy = host.release("deploy")
                deploy_s = time.monotonic() - t0
                time.sleep(args.settle_seconds)
                t0 = time.monotonic()
                rollback = host.release("rollback")
                rollback_s = time.monotonic() - t0
                time.sleep(args.settle_seconds)
            result = load.result
            for name, proc in (("deploy", deploy), ("rollback", rollback)):
                print(
                    f"--- {name} (exit {proc.returncode})\n{proc.stdout}{proc.stderr}", flush=True
                )
            ok = deploy.returncode == 0 and rollback.returncode == 0
            serving = host.served_version()["version"]
            moved = switch_seconds(rollback.stdout, r"traffic moved in ([0-9.]+)s")
            print(f"load: {result.summary()}")
            print(
                f"serving after rollback: {serving}; rollback moved traffic after"
                f" {moved if moved is not None else '?'}s; drain {args.drain_seconds:g}s;"
                f" total {time.monotonic() - started:.1f}s",
                flush=True,
            )
    times = f"deploy_s={deploy_s:.1f} rollback_s={rollback_s:.1f}"
    print(f"sent={result.sent} failed={result.failed} {times}")
    return 0 if ok and serving == "v1" else 1


if __name__ == "__main__":
    sys.exit(main())
