"""A small stand-in for the app's source tree (subculture-collective/clipper), for real builds of
the project's Dockerfiles on the test engine, and the stand-in build tools they need.

STAND-INS, each replacing something no registry here can provide:
- `backend/Dockerfile`: the app's is Go on golang:1.24-alpine + alpine; this one is a few lines
  of Python on the local base image (`FROM` the base given), answering /health on $PORT.
- the `node:20-alpine` base of images/frontend.Dockerfile's builder stage: the local base image
  with an `npm` script whose `run build` does what Vite does to `import.meta.env.VITE_*` (replace
  it with the build-time value as a string literal) and copies `public/` into `dist/`.
- the `nginx:alpine` base of its final stage: the local base image (the test reads the files).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .docker import DockerEngine, cache_dir, file_lock

# Migration files as the app names them, and what else lives in that folder (not migrations).
MIGRATIONS = {
    "000001_initial_schema.up.sql": "CREATE TABLE clips (id bigint PRIMARY KEY);\n",
    "000001_initial_schema.down.sql": "DROP TABLE clips;\n",
    "000002_add_clip_views.up.sql": "ALTER TABLE clips ADD COLUMN views bigint DEFAULT 0;\n",
    "000002_add_clip_views.down.sql": "ALTER TABLE clips DROP COLUMN views;\n",
}
NOT_MIGRATIONS = {
    "seed.sql": "INSERT INTO clips VALUES (1);\n",
    "seed_moderation_perf_test.sql": "INSERT INTO clips VALUES (2);\n",
    "000003_draft.sql": "-- neither .up.sql nor .down.sql\n",
    "README.md": "How to write migrations.\n",
}
# What the app's src/lib/api.ts and hooks read at build time.
FRONTEND_SOURCE = """\
export const API_BASE_URL = import.meta.env.VITE_API_BASE_URL || "http://localhost:8080/api/v1";
export const WS_HOST = import.meta.env.VITE_WS_HOST || window.location.host;
export const PRICE_MONTHLY = import.meta.env.VITE_STRIPE_PRO_MONTHLY_PRICE_ID || "";
export const E2E_LOGIN = import.meta.env.VITE_E2E_TEST_LOGIN === "true";
"""

_BACKEND_DOCKERFILE = """\
# STAND-IN for the app's Go backend/Dockerfile (see tests/support/app_source.py).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY app.py /app/app.py
ENV PORT=8080
CMD ["python3", "/app/app.py"]
"""
_BACKEND_APP = """\
import http.server, json, os
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "healthy"}).encode()
        self.send_response(200 if self.path.startswith("/health") else 404)
        self.end_headers()
        self.wfile.write(body)
http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), Health).serve_forever()
"""
_NPM = """\
#!/bin/sh
# STAND-IN for npm (see tests/support/app_source.py): `ci` checks the lock file, `run build`
# runs the stand-in for Vite.
set -eu
case "$1 ${2:-}" in
  "ci ") test -f package-lock.json ;;
  "run build") exec python3 /usr/local/lib/standin-vite.py ;;
  *) echo "stand-in npm: unsupported: $*" >&2; exit 1 ;;
esac
"""
_VITE = """\
# STAND-IN for Vite's build: import.meta.env.VITE_X becomes the build-time value as a string;
# like Vite, the environment wins and .env / .env.production fill in what it lacks.
import json, os, pathlib, re, shutil
env = {}
for name in (".env", ".env.production"):
    if pathlib.Path(name).exists():
        for line in pathlib.Path(name).read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.startswith("VITE_"):
                env[key] = value
env.update({k: v for k, v in os.environ.items() if k.startswith("VITE_")})
dist = pathlib.Path("dist")
(dist / "assets").mkdir(parents=True, exist_ok=True)
for src in pathlib.Path("src").glob("*.js"):
    text = re.sub(r"import\\.meta\\.env\\.(VITE_[A-Z0-9_]+)",
                  lambda m: json.dumps(env.get(m.group(1), "")), src.read_text())
    (dist / "assets" / src.name).write_text(text)
shutil.copytree("public", dist, dirs_exist_ok=True)
(dist / "index.html").write_text('<script src="/assets/main.js"></script>\\n')
"""
_NODE_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY npm /usr/local/bin/npm
COPY standin-vite.py /usr/local/lib/standin-vite.py
RUN chmod 0755 /usr/local/bin/npm
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def make_app_source(root: Path) -> Path:
    """The stand-in tree: backend/ (Dockerfile, migrations/) and frontend/ like the app's."""
    _write(
        root,
        {
            "backend/Dockerfile": _BACKEND_DOCKERFILE,
            "backend/app.py": _BACKEND_APP,
            **{f"backend/migrations/{n}": t for n, t in {**MIGRATIONS, **NOT_MIGRATIONS}.items()},
            "frontend/package.json": '{"name": "clipper-frontend-standin", "private": true}\n',
            "frontend/package-lock.json": '{"lockfileVersion": 3}\n',
            "frontend/nginx.conf": "# STAND-IN for the app's frontend/nginx.conf\n",
            "frontend/src/main.js": FRONTEND_SOURCE,
            "frontend/public/health.html": "healthy\n",
            # A developer's leftover that must not reach the build (the app's .dockerignore lets
            # .env.production through): it would turn on the e2e auto-login.
            "frontend/.env.production": "VITE_E2E_TEST_LOGIN=true\n",
        },
    )
    return root


def standin_node_image(engine: DockerEngine, base_image: str) -> str:
    """The node:20-alpine stand-in, built once per content (tag keyed by its files)."""
    files = {"Dockerfile": _NODE_DOCKERFILE, "npm": _NPM, "standin-vite.py": _VITE}
    key = hashlib.sha256(json_of(files, base_image).encode()).hexdigest()[:12]
    tag = f"local/clipper-standin-node:{key}"
    if engine.image_exists(tag):
        return tag
    with file_lock(cache_dir() / "standin-node.lock"):
        if not engine.image_exists(tag):
            context = cache_dir() / f"standin-node-{key}"
            _write(context, files)
            engine.run(["build", "-q", "--build-arg", f"BASE_IMAGE={base_image}", "-t", tag,
                        str(context)], timeout=600)  # fmt: skip
    return tag


def json_of(files: dict[str, str], base_image: str) -> str:
    return "\n".join(f"{k}\n{v}" for k, v in sorted(files.items())) + base_image
