"""Who is calling, and how much they may send.

A token arrives as ``Authorization: Bearer <token>``, as the password of
``Authorization: Basic`` (what Confluent's schema registry clients send), or, for GET
only, in the ``kes_token`` cookie the web browser sets (EventSource cannot send headers;
the cookie is ``SameSite=Strict`` and never authorises a change).
"""

from __future__ import annotations

import base64
import binascii

from starlette.requests import Request

from kes.serve.problems import Problem
from kes.serve.settings import Role, ServeSettings, Token

__all__ = ["authorize", "read_body"]

COOKIE = "kes_token"


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    if request.method in ("GET", "HEAD"):
        return request.cookies.get(COOKIE)
    return None


def authorize(request: Request, settings: ServeSettings, role: Role) -> Token | None:
    """The caller's token if it may act as ``role``; raises a 401 or 403 Problem."""
    if not settings.auth_required:
        return None
    secret = _presented(request)
    if secret is None:
        raise Problem(
            401,
            "Authentication required",
            f"{request.method} {request.url.path} needs a token with the {role!r} role; send "
            "'Authorization: Bearer <token>'.",
            code="unauthenticated",
            headers={"WWW-Authenticate": 'Bearer realm="kes"'},
        )
    token = settings.token(secret)
    if token is None:
        raise Problem(
            401,
            "Unknown token",
            "the token sent is not one this server knows; check it, or ask for a new one.",
            code="unauthenticated",
            headers={"WWW-Authenticate": 'Bearer realm="kes", error="invalid_token"'},
        )
    if not token.allows(role):
        raise Problem(
            403,
            "Forbidden",
            f"token {token.name!r} has the role(s) {', '.join(sorted(token.roles))}; "
            f"{request.method} {request.url.path} needs {role!r}. Nothing was done.",
            code="forbidden",
        )
    return token


async def read_body(request: Request, limit: int, json_only: bool = True) -> bytes:
    """The request body, refused with 415 when it is not JSON and 413 past ``limit``
    bytes (checked on Content-Length first, then while reading)."""
    if json_only:
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise Problem(
                415,
                "Unsupported media type",
                f"the body must be JSON (Content-Type: application/json), got "
                f"{media or 'no Content-Type'!r}.",
                code="unsupported_media_type",
                field="Content-Type",
            )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> Problem:
    return Problem(
        413,
        "Request body too large",
        f"the body is {size} bytes or more; this server accepts at most {limit} "
        "(--max-body-bytes). Split the events over several appends. Nothing was written.",
        code="body_too_large",
        field="body",
        limit=limit,
    )
