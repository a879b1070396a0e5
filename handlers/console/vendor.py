"""Serves the npm-installed front-end libraries (node_modules is installed by ./dev, never committed)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

ROOT = Path(__file__).resolve().parents[2] / "node_modules"
# Only these files are exposed, by a short stable name.
FILES = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "htmx-sse.js": "htmx-ext-sse/dist/sse.min.js",
    "chart.umd.js": "chart.js/dist/chart.umd.js",
}

router = APIRouter(include_in_schema=False)


@router.get("/static/vendor/{name}")
async def vendor_file(name: str) -> FileResponse:
    """One whitelisted library file; 404 with a hint when npm assets are not installed."""
    rel = FILES.get(name)
    if rel is None:
        raise HTTPException(404, "unknown asset")
    path = ROOT / rel
    if not path.is_file():
        raise HTTPException(404, "front-end assets are not installed: run `npm ci` (./dev does it)")
    return FileResponse(
        path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )
