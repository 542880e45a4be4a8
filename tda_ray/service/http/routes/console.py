"""The web console: ``GET /`` (the page) and ``GET /console/{path}`` (its modules, styles and libraries).

Static files only, served without the API key: they hold no data, and the page asks for the key when
``/v1`` answers 401. The libraries (``console/vendor/``) are copied from npm by ``make setup``
(mk/console.mk); without them ``GET /`` says so instead of serving a page that cannot start.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse
from starlette.staticfiles import StaticFiles

__all__ = ["CONSOLE_DIR", "VENDOR_FILES", "router"]

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
# What mk/console.mk copies into console/vendor/ (the import map of index.html names them).
VENDOR_FILES = ("echarts.js", "preact.js", "hooks.js", "htm.js")

router = APIRouter(include_in_schema=False)
_files = StaticFiles(directory=CONSOLE_DIR, check_dir=False)


def _security_policy(index: Path) -> str:
    """Same-origin scripts only; the inline import map is allowed by its hash, nothing else inline."""
    sources = ["'self'"]
    if index.is_file():
        for script in re.findall(r'<script type="importmap">(.*?)</script>', index.read_text(), flags=re.S):
            digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
            sources.append(f"'sha256-{digest}'")
    return (
        f"default-src 'self'; script-src {' '.join(sources)}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


_POLICY = _security_policy(CONSOLE_DIR / "index.html")

_MISSING = """<!doctype html><html lang="en"><meta charset="utf-8"><title>tda-ray console</title>
<body><h1>tda-ray console</h1><p>The console's libraries are missing ({missing}): run <code>make setup</code>
(it fetches them from npm into tda_ray/service/http/console/vendor/). The API itself works: see
<a href="docs">/docs</a>.</p></body></html>"""


@router.get("/")
def index() -> Response:
    missing = [f for f in VENDOR_FILES if not (CONSOLE_DIR / "vendor" / f).is_file()]
    if missing:
        return HTMLResponse(_MISSING.format(missing=", ".join(missing)), status_code=503)
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": _POLICY, "X-Content-Type-Options": "nosniff"}
    return FileResponse(CONSOLE_DIR / "index.html", headers=headers)


@router.get("/console/{path:path}")
async def asset(path: str, request: Request) -> Response:
    # StaticFiles refuses paths that leave the folder (404) and answers 304 to a matching If-None-Match.
    response = await _files.get_response(os.path.normpath(path), request.scope)
    response.headers["Cache-Control"] = "no-cache"  # revalidate by ETag: a new `make setup` shows at once
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
