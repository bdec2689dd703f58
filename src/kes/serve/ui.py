"""The web event browser at ``/ui``: one HTML page, one script and one stylesheet, all
served from this package (no build step, no CDN). The page calls the same JSON and SSE
API as any client; a strict Content-Security-Policy keeps it to this origin."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

__all__ = ["ui_routes"]

_FILES = {
    "": ("index.html", "text/html; charset=utf-8"),
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
}
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    return resources.files("kes.serve").joinpath("static", name).read_bytes()


def ui_routes() -> list[BaseRoute]:
    cache = {path: (_read(name), media) for path, (name, media) in _FILES.items()}

    def serve(path: str) -> Route:
        body, media = cache[path]

        async def endpoint(request: Request) -> Response:
            return Response(body, media_type=media, headers=_HEADERS)

        return Route("/" + path, endpoint)

    return [serve(path) for path in cache]
