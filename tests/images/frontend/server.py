"""Stand-in for Clipper's frontend image (nginx:alpine serving the built SPA on port 80).

`/health.html` answers 200 "healthy" like the real image; every other path gets the SPA's
index page, which names the version baked in at build time. SIGTERM drains like nginx's
graceful quit.
"""

from __future__ import annotations

import os

from graceful_http import GracefulServer, Handler, log, serve

VERSION = os.environ.get("CLIPPER_STANDIN_VERSION", "dev")
DRAIN_SECONDS = 5.0
INDEX = (
    '<!doctype html>\n<html><head><meta charset="utf-8"><title>Clipper</title>'
    f'<meta name="clipper-version" content="{VERSION}"></head>'
    f'<body><div id="root">Clipper frontend {VERSION}</div></body></html>\n'
).encode()


def health_page(_: Handler) -> tuple[int, str, bytes]:
    return 200, "text/html", b"healthy\n"


def index(_: Handler) -> tuple[int, str, bytes]:
    return 200, "text/html; charset=utf-8", INDEX


def main() -> None:
    port = int(os.environ.get("FRONTEND_LISTEN_PORT", "80"))
    Handler.routes = {"/health.html": health_page, "*": index}
    Handler.extra_headers = {"X-Clipper-Version": VERSION}
    server = GracefulServer(("0.0.0.0", port), Handler)  # noqa: S104 (inside its own netns)
    log(f"clipper stand-in frontend {VERSION} listening on :{port}")
    serve(server, DRAIN_SECONDS, "frontend")


if __name__ == "__main__":
    main()
