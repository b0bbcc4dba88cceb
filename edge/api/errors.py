"""One error shape for every refusal: `{"detail": <sentence>, "code": <stable word>, ...}`.

`detail` is English for the log and for scripts; `code` is what the page translates (zh-CN first).
The domain's own exceptions are mapped here once, so routes raise or let through what the station
raises and never build error responses by hand.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.asgi import ApiError as ApiError
from common.asgi import error_body
from common.login import LoginRefused
from edge.api.auth import InstallerError
from edge.api.retry import database_locked
from edge.station import RefusedError
from models.database import StoreError, ValidationError
from models.members import DuplicateMemberError, MemberNotFoundError
from recognizer.images import ImageError

log = logging.getLogger(__name__)


class ErrorItem(BaseModel):
    """One field a request was refused for."""

    field: str = Field(description="Where: a body field, a query or path parameter.")
    message: str
    type: str = Field(description="pydantic's error type (missing, string_too_long, json_invalid, ...).")


class ErrorBody(BaseModel):
    """Every error response: a sentence, a stable code, and per-case extras (all optional)."""

    model_config = ConfigDict(extra="allow")

    detail: str = Field(description="What went wrong, in English (for logs and scripts).")
    code: str = Field(description="Stable word the page translates (invalid_request, bad_json, ...).")
    errors: list[ErrorItem] | None = Field(None, description="Request validation: one entry per field.")
    problems: list[Any] | None = Field(None, description="An enrolment refusal: the reasons, per photo.")


def document_error_bodies(app: FastAPI) -> None:
    """Make the OpenAPI schema describe the error body the API really sends.

    FastAPI documents every 422 as `HTTPValidationError` (`{"detail": [ ... ]}`), but the handlers
    below answer `ErrorBody` (`{"detail": "...", "code": "...", "errors": [...]}`): a client
    generated from the schema, or schemathesis' conformance check, would reject every refusal.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body.pop("$defs", {}))
        components["ErrorBody"] = body
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for response in operation.get("responses", {}).values():
                    content = response.get("content", {}).get("application/json", {})
                    if str(content.get("schema", {}).get("$ref", "")).endswith("/HTTPValidationError"):
                        content["schema"] = {"$ref": "#/components/schemas/ErrorBody"}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _respond(
    status: int, detail: str, code: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(error_body(status, detail, code, **extra), status_code=status, headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or "request"


def install_error_handlers(app: FastAPI) -> None:
    document_error_bodies(app)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _respond(exc.status, exc.detail, exc.code, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        code = None
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail, code = "the body could not be parsed (malformed, or nested too deeply)", "bad_body"
        return _respond(exc.status_code, detail, code, headers=dict(exc.headers) if exc.headers else None)

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
        if any(e["type"] == "json_invalid" for e in errors):
            return _respond(422, f"the body is not valid JSON ({summary})", "bad_json", errors=errors)
        return _respond(422, summary, "invalid_request", errors=errors)

    @app.exception_handler(RefusedError)
    async def _refused(_: Request, exc: RefusedError) -> JSONResponse:
        return _respond(422, str(exc), "refused", problems=exc.problems)

    @app.exception_handler(ImageError)
    async def _bad_image(_: Request, exc: ImageError) -> JSONResponse:
        return _respond(422, str(exc), "bad_image")

    @app.exception_handler(InstallerError)
    async def _installer(_: Request, exc: InstallerError) -> JSONResponse:
        return _respond(422, str(exc), "invalid_value")

    @app.exception_handler(LoginRefused)
    async def _login(_: Request, exc: LoginRefused) -> JSONResponse:
        headers = None
        extra: dict[str, Any] = {}
        if exc.retry_after_s is not None:
            headers = {"Retry-After": str(max(1, round(exc.retry_after_s + 0.5)))}
            extra["retry_after_s"] = round(exc.retry_after_s, 1)
        return _respond(exc.status, str(exc), exc.code, headers, **extra)

    @app.exception_handler(OperationalError)
    async def _database(_: Request, exc: OperationalError) -> JSONResponse:
        if database_locked(exc):
            return _respond(503, "the station's database is busy: try again", "busy", {"Retry-After": "1"})
        raise exc  # anything else is a real server error (500, logged with its traceback)

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        if isinstance(exc, DuplicateMemberError):
            return _respond(409, str(exc), "member_exists")
        if isinstance(exc, MemberNotFoundError):
            return _respond(404, str(exc), "member_not_found")
        if isinstance(exc, ValidationError):
            return _respond(422, str(exc), "invalid_value")
        log.error("stored data unusable", extra={"fields": {"error": str(exc)}})
        return _respond(503, f"stored data cannot be used: {exc}", "store_unusable")
