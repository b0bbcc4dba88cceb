"""`GET /api/v1/metrics`: the centre's Prometheus metrics (ingest, roster, commands), staff only.

Counts and timings, no personal data; behind the staff login like the rest of `/api/v1/` (a
scraper logs in with a viewer account and sends its bearer token)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from central.metrics import CONTENT_TYPE
from central.web.deps import ContextDep, current_staff
from central.web.errors import ApiError

router = APIRouter(prefix="/api/v1", tags=["health"], dependencies=[Depends(current_staff)])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(ctx: ContextDep) -> Response:
    if ctx.metrics is None:
        raise ApiError(503, "no metrics in this process", "metrics_unavailable")
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)
