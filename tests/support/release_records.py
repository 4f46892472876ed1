"""A release as the host package records it (images by reference, the backend's runtime), for
the host package's own tests (tests/hostscripts): example values, not any stack's."""

from __future__ import annotations

IMAGES = {
    "backend": "ghcr.io/org/clipper/backend:v1.4.0",
    "frontend": "ghcr.io/org/clipper/frontend:v1.4.0",
    "migrations": "ghcr.io/org/clipper/migrations:v1.4.0",
    "migrate": "migrate/migrate:v4.17.0@sha256:" + "a" * 64,
}
RUNTIME = {"backend_run_args": ["--network", "host"], "port_env": "PORT"}
