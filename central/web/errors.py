"""The centre's refusals in the shared shape (`common.asgi.error_body`); domain errors mapped once."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.asgi import ApiError as ApiError
from common.asgi import error_body
from common.errors import StoreError, ValidationError
from common.login import LoginRefused
from common.passwords import CredentialError

log = logging.getLogger(__name__)


def respond(
    status: int, detail: str, code: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(error_body(status, detail, code, **extra), status_code=status, headers=headers)


def _location(loc: Any) -> str:
    return (
        ".".join(str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")) or "request"
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return respond(exc.status, exc.detail, exc.code, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return respond(exc.status_code, detail, headers=dict(exc.headers) if exc.headers else None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _location(e.get("loc", ())),
                "message": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]) or "invalid request"
        code = "bad_json" if any(e["type"] == "json_invalid" for e in errors) else "invalid_request"
        return respond(422, summary, code, errors=errors)

    @app.exception_handler(LoginRefused)
    async def _login(_: Request, exc: LoginRefused) -> JSONResponse:
        if exc.retry_after_s is None:
            return respond(exc.status, str(exc), exc.code)
        retry = {"Retry-After": str(max(1, round(exc.retry_after_s + 0.5)))}
        return respond(exc.status, str(exc), exc.code, retry, retry_after_s=round(exc.retry_after_s, 1))

    @app.exception_handler(CredentialError)
    async def _credential(_: Request, exc: CredentialError) -> JSONResponse:
        return respond(422, str(exc), "invalid_value")

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        if isinstance(exc, ValidationError):
            status = 404 if isinstance(exc, LookupError) else 422
            return respond(status, str(exc), "invalid_value" if status == 422 else "not_found")
        log.error("stored data unusable", extra={"fields": {"error": str(exc)}})
        return respond(503, f"stored data cannot be used: {exc}", "store_unusable")
