"""Sentiric Studio: one developer page, served from files in the package (no CDN, no fetch).

The page holds no data of its own, so it is served without an API key; everything it shows
comes from the API (/v1/models, /v1/chat/completions) with the key the user types in. A
Content-Security-Policy lets it talk to this server only: clusters are often air-gapped, and
a page that may not load anything from elsewhere cannot break there or leak prompts.
"""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from sentiric_inference.http.errors import ApiError

router = APIRouter(include_in_schema=False)

# The files under static/studio/ that are served, and their types; nothing else is.
_ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "studio.js": "text/javascript; charset=utf-8",
    "studio.css": "text/css; charset=utf-8",
}
# Paths an API-key check must let through: a browser cannot send a key when it opens a page,
# and the page then asks for one and sends it on every API call.
PUBLIC_PATHS = frozenset(
    {"/studio", "/studio/", *(f"/studio/{name}" for name in _ASSETS if name != "index.html")}
)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # A new server version must not run with an old script from the browser's cache.
    "Cache-Control": "no-cache",
}


@functools.cache
def _asset(name: str) -> bytes:
    return (
        resources.files("sentiric_inference.http").joinpath("static", "studio", name).read_bytes()
    )


def _serve(name: str) -> Response:
    return Response(_asset(name), media_type=_ASSETS[name], headers=_HEADERS)


@router.get("/studio")
async def studio_redirect() -> RedirectResponse:
    # Relative, so the page also works behind a proxy that mounts the server under a prefix;
    # the page then reaches the API relative to itself (../v1/...).
    return RedirectResponse("studio/", status_code=307)


@router.get("/studio/")
async def studio_page() -> Response:
    return _serve("index.html")


@router.get("/studio/{name}")
async def studio_asset(name: str) -> Response:
    if name not in _ASSETS or name == "index.html":
        raise ApiError(
            404,
            "Sentiric Studio has no such file; open /studio/.",
            type="not_found_error",
            param=None,
            code="not_found",
        )
    return _serve(name)
