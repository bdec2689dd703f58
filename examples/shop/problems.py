"""Problem details (RFC 9457): every error the shop answers is ``application/problem+json``
with ``type``, ``title``, ``status``, ``detail``, ``instance``, and a stable ``code``;
version conflicts add ``actualVersion`` (and the current ``ETag``)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from examples.shop.domain import OrderError
from kes import (
    AggregateNotFoundError,
    ConcurrencyError,
    InvalidInputError,
    KesError,
    StreamExistsError,
    TransientError,
)

log = logging.getLogger("examples.shop")
MEDIA_TYPE = "application/problem+json"


class ProblemDetails(BaseModel):
    """RFC 9457 problem details, with this service's extensions."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    type: str = Field(description="a URI reference naming the kind of problem")
    title: str
    status: int
    detail: str
    instance: str | None = None
    code: str = Field(description="a stable machine-readable name of the problem")
    actual_version: int | None = Field(
        None, description="the order's version now (version conflicts)"
    )
    errors: list[dict[str, Any]] | None = Field(None, description="invalid fields (422)")


class Problem(Exception):
    """An error answered as problem details."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        code: str,
        actual_version: int | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.details = ProblemDetails(
            type=f"/problems/{code.replace('_', '-')}",
            title=title,
            status=status,
            detail=detail,
            code=code,
            actual_version=actual_version,
            errors=errors,
        )

    def response(self, request: Request) -> JSONResponse:
        details = self.details.model_copy(update={"instance": request.url.path})
        headers = {}
        if details.actual_version is not None:
            headers["ETag"] = f'"{details.actual_version}"'
        if details.status == 503:
            headers["Retry-After"] = "1"
        return JSONResponse(
            details.model_dump(by_alias=True, exclude_none=True),
            status_code=details.status,
            media_type=MEDIA_TYPE,
            headers=headers,
        )


def from_kes(exc: KesError) -> Problem:
    """The problem a kes error is, for this service."""
    if isinstance(exc, StreamExistsError):
        return Problem(409, "Order exists", str(exc), code="exists", actual_version=exc.actual)
    if isinstance(exc, ConcurrencyError):
        return Problem(
            412, "Precondition failed", str(exc), code="stale_version", actual_version=exc.actual
        )
    if isinstance(exc, OrderError):
        title = type(exc).__name__.removesuffix("Error")
        return Problem(exc.http_status, title, str(exc), code=exc.code)
    if isinstance(exc, AggregateNotFoundError):
        return Problem(404, "No such order", str(exc), code="not_found")
    if isinstance(exc, InvalidInputError):
        return Problem(422, "Invalid input", str(exc), code=exc.code)
    if isinstance(exc, TransientError):
        return Problem(503, "Try again", str(exc), code=exc.code)
    return Problem(500, "Internal error", str(exc), code=exc.code)


def install(api: FastAPI) -> None:
    """Answer every error of ``api`` as problem details."""

    async def problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return exc.response(request)

    async def kes_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KesError)
        return from_kes(exc).response(request)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors)
        return Problem(
            422, "Invalid request", f"invalid fields: {fields}", code="invalid", errors=errors
        ).response(request)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s", request.url.path, exc_info=exc)
        return Problem(500, "Internal error", repr(exc), code="internal").response(request)

    api.add_exception_handler(Problem, problem)
    api.add_exception_handler(KesError, kes_error)
    api.add_exception_handler(RequestValidationError, invalid)
    api.add_exception_handler(Exception, unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries: these statuses answer problem details."""
    return {
        status: {"model": ProblemDetails, "content": {MEDIA_TYPE: {}}, "description": "problem"}
        for status in statuses
    }
