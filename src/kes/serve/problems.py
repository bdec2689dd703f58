"""Errors as RFC 9457 problem details (``application/problem+json``).

Every refusal names what was wrong: ``field`` is the JSON path of the offending input
(``events[2].eventType``), ``code`` the stable kes error code. Errors of the event store
map to statuses by what the caller can do: fix the input (400, 413), reload and decide
again (409), retry the same request (503, with ``outcome``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from kes.errors import (
    AccessDeniedError,
    AggregateNotFoundError,
    ConcurrencyError,
    EventTooLargeError,
    InvalidInputError,
    KesError,
    TransientError,
)

PROBLEM_JSON = "application/problem+json"

__all__ = ["PROBLEM_JSON", "Problem", "from_kes_error", "problem_response"]


class Problem(Exception):
    """An HTTP error answered as problem+json; ``extra`` members are added to the body."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        code: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.code = code
        self.field = field
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": f"urn:kes:problem:{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            out["instance"] = instance
        if self.field is not None:
            out["field"] = self.field
        out.update(self.extra)
        return out


def bad_field(field: str, detail: str) -> Problem:
    """400: the request's ``field`` is missing, of the wrong type or out of range."""
    return Problem(400, "Invalid request field", detail, code="invalid_input", field=field)


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    return Response(
        msgspec.json.encode(problem.body(instance)),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def from_kes_error(exc: KesError, field: str | None = None) -> Problem:
    """The problem a store error means for an HTTP caller."""
    if isinstance(exc, ConcurrencyError):
        return Problem(
            409,
            "Wrong expected version",
            str(exc),
            code=exc.code,
            field="expectedVersion",
            actualVersion=exc.actual,
            expectedVersion=_expected_json(exc.expected),
        )
    if isinstance(exc, EventTooLargeError):
        return Problem(413, "Event too large", str(exc), code=exc.code, field=field or "events")
    if isinstance(exc, InvalidInputError):
        return Problem(400, "Invalid input", str(exc), code=exc.code, field=field)
    if isinstance(exc, AggregateNotFoundError):
        return Problem(404, "Not found", str(exc), code=exc.code)
    if isinstance(exc, TransientError):
        return Problem(
            503,
            "Event store unavailable; retry",
            str(exc),
            code=exc.code,
            headers={"Retry-After": "1"},
            outcome=exc.outcome,
        )
    if isinstance(exc, AccessDeniedError):
        return Problem(502, "Kafka refused the gateway", str(exc), code=exc.code)
    return Problem(500, "Event store error", str(exc), code=exc.code)


def _expected_json(expected: object) -> object:
    name = getattr(expected, "name", None)
    if name == "NO_STREAM":
        return 0
    if name == "ANY":
        return "any"
    return expected
