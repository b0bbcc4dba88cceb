"""Walking a FastAPI app's routes (for the "every /api/v1 route needs credentials" tests)."""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute


def app_routes(app: Any) -> list[tuple[str, set[str]]]:
    """(path, methods) of every HTTP route, whether FastAPI keeps included routers flat or not."""
    try:
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined]  # FastAPI >= 0.165 nests
    except ImportError:
        return [(r.path, set(r.methods)) for r in app.routes if isinstance(r, APIRoute)]
    return [(c.path, set(c.methods)) for c in iter_route_contexts(app.routes) if c.path and c.methods]
