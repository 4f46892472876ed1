"""Benchmark: blue-green deploys and rollbacks under steady load, on this machine.

    .venv/bin/python bench/deploy_under_load.py [--clients both] [--min-requests 10000]
        [--threads 16] [--drain-seconds 1] [--script PATH]

Sets up what the release tests use, from scratch if needed: the Debian packages
(scripts/install-test-deps.sh when a tool is missing), a Docker engine with the registry-free
base image and the stand-in app images, PostgreSQL 17 and Valkey 8 (containers from the trixie
services image) and nginx on loopback, and one app host with release v1 live
(tests/support/release_host.py). Then, once per kind of client
(`fresh`: a new connection per request; `keep-alive`: each client reuses its connection as a
browser does, retrying once when nginx closed it while idle), it drives steady load at the site
through nginx, deploys v2 with the real hostscripts/clipper-release, rolls back to v1, and keeps
the load on until at least --min-requests were sent. Every request goes to 127.0.0.1.
`--script` runs another build of clipper-release (for a before/after comparison).

One line per run: `clients=K sent=N failed=N retried=N deploy_s=X rollback_s=Y`: requests sent
and failed during the run (retried: keep-alive connections found closed and retried), and the
wall time of the deploy and rollback commands (each includes the drain and the checks through
nginx before the old colour stops).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_DIR))

TOOLS = ("nginx", "dockerd", "containerd", "debootstrap", "psql", "openssl")


def ensure_tools() -> None:
    """Install the Debian packages the setup runs, unless they are all there already."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        print(f"missing {', '.join(missing)}: running scripts/install-test-deps.sh", flush=True)
        subprocess.run(["bash", str(PROJECT_DIR / "scripts" / "install-test-deps.sh")], check=True)


def one_run(host: Any, keep_alive: bool, args: argparse.Namespace) -> tuple[str, bool]:
    """Deploy v2 and roll back to v1 under one kind of load; the result line and success."""
    host.use_images("v2", "v2", "v2")
    load = host.load(threads=args.threads, max_seconds=600, keep_alive=keep_alive)
    with load:
        time.sleep(args.settle_seconds)
        t0 = time.monotonic()
        deploy = host.release("deploy")
        deploy_s = time.monotonic() - t0
        time.sleep(args.settle_seconds)
        t0 = time.monotonic()
        rollback = host.release("rollback")
        rollback_s = time.monotonic() - t0
        while load.snapshot()[0] < args.min_requests:
            time.sleep(0.2)
    result = load.result
    for name, proc in (("deploy", deploy), ("rollback", rollback)):
        if proc.returncode != 0:
            print(f"--- {name} (exit {proc.returncode})\n{proc.stdout}{proc.stderr}", flush=True)
    print(f"load: {result.summary()}", flush=True)
    clients = "keep-alive" if keep_alive else "fresh"
    line = (
        f"clients={clients} sent={result.sent} failed={result.failed} retried={result.retried}"
        f" deploy_s={deploy_s:.1f} rollback_s={rollback_s:.1f}"
    )
    ok = deploy.returncode == 0 and rollback.returncode == 0
    return line, ok and host.served_version()["version"] == "v1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16, help="load threads (default 16)")
    parser.add_argument(
        "--drain-seconds", type=float, default=1.0, help="deploy.json drain_seconds (default 1)"
    )
    parser.add_argument(
        "--settle-seconds", type=float, default=2.0, help="load before/after each step"
    )
    parser.add_argument("--min-requests", type=int, default=10_000, help="per run (default 10000)")
    parser.add_argument("--clients", choices=("fresh", "keep-alive", "both"), default="both")
    parser.add_argument("--script", type=Path, help="another clipper-release to measure")
    args = parser.parse_args()
    if args.script:
        os.environ["CLIPPER_TEST_RELEASE_SCRIPT"] = str(args.script.resolve())
    ensure_tools()

    from tests.support.data_stores import PostgresServer, ValkeyServer
    from tests.support.docker import DockerEngine, build_base_image
    from tests.support.release_host import RELEASE_SCRIPT, AppHost, build_release_images

    kinds = {"fresh": [False], "keep-alive": [True], "both": [True, False]}[args.clients]
    started = time.monotonic()
    lines: list[str] = []
    ok = True
    with (
        DockerEngine() as engine,
        PostgresServer(engine) as postgres,
        ValkeyServer(engine) as redis,
    ):
        images = build_release_images(engine, build_base_image(engine))
        with AppHost(engine, postgres, redis, images) as host:
            host.write_config(drain_seconds=args.drain_seconds)
            first = host.release("deploy")
            if first.returncode != 0 or not host.wait_stable("v1"):
                print(first.stdout + first.stderr, file=sys.stderr)
                return 1
            print(f"setup done in {time.monotonic() - started:.1f}s; v1 live", flush=True)
            for keep_alive in kinds:
                line, passed = one_run(host, keep_alive, args)
                lines.append(line)
                ok = ok and passed
    print(f"script: {RELEASE_SCRIPT}; total {time.monotonic() - started:.1f}s")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
