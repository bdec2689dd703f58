"""What ``kes serve`` is allowed to do: who may call it (tokens and roles) and how much
one request or one client may take (body size, events per append, SSE connections and
buffers)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from kes.errors import InvalidInputError

Role = Literal["read", "append", "admin"]
ROLES: Final[tuple[Role, ...]] = ("read", "append", "admin")

__all__ = ["ROLES", "Role", "ServeSettings", "Token", "is_loopback", "parse_tokens"]


@dataclass(frozen=True)
class Token:
    """A bearer token and what it may do. ``admin`` may do everything."""

    secret: str = field(repr=False)
    roles: frozenset[Role]
    name: str = ""

    def allows(self, role: Role) -> bool:
        return role in self.roles or "admin" in self.roles


def parse_tokens(text: str, source: str) -> list[Token]:
    """Tokens from ``token roles [name]`` lines (roles comma-separated; ``#`` comments;
    ``;`` also separates entries, for an environment variable)."""
    tokens: list[Token] = []
    for n, line in enumerate(text.replace(";", "\n").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2:
            raise InvalidInputError(
                f"{source}, entry {n}: expected 'TOKEN ROLES [NAME]' (roles among "
                f"{', '.join(ROLES)}, comma-separated), got {len(parts)} field(s)."
            )
        secret, roles_text = parts[0], parts[1]
        if len(secret) < 16:
            raise InvalidInputError(
                f"{source}, entry {n}: a token must be at least 16 characters long "
                f"(got {len(secret)}); make one with `python -c 'import secrets; "
                "print(secrets.token_urlsafe(24))'`."
            )
        roles = {r.strip() for r in roles_text.split(",") if r.strip()}
        unknown = sorted(roles - set(ROLES))
        if unknown or not roles:
            raise InvalidInputError(
                f"{source}, entry {n}: unknown role(s) {unknown or roles_text!r}; "
                f"roles are {', '.join(ROLES)}."
            )
        name = parts[2] if len(parts) > 2 else f"token{n}"
        tokens.append(Token(secret, frozenset(roles), name))  # type: ignore[arg-type]
    return tokens


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeSettings:
    """Limits and access rules of one ``kes serve`` process.

    ``tokens`` empty means no authentication, which is allowed on a loopback address only
    (:meth:`check_listen`).
    """

    tokens: tuple[Token, ...] = ()
    max_body_bytes: int = 4 * 1024 * 1024
    max_events_per_append: int = 1000
    max_page_events: int = 1000
    max_sse_connections: int = 256
    # One SSE write at most this big; a client whose writes stay blocked longer than
    # sse_send_timeout_s (it stopped reading) is cut off.
    sse_chunk_bytes: int = 256 * 1024
    sse_send_timeout_s: float = 30.0
    sse_heartbeat_s: float = 15.0
    # The live tail of each aggregate type kept in memory, shared by all its subscribers.
    tail_events: int = 50_000
    tail_bytes: int = 32 * 1024 * 1024
    store_threads: int = 64  # concurrent calls into the (sync) event store
    catch_up_threads: int = 16  # subscribers reading history at the same time
    cors_origins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_events_per_append",
            "max_page_events",
            "max_sse_connections",
            "sse_chunk_bytes",
            "tail_events",
            "tail_bytes",
            "store_threads",
            "catch_up_threads",
        ):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be >= 1, got {getattr(self, name)}.")

    @property
    def auth_required(self) -> bool:
        return bool(self.tokens)

    def token(self, secret: str) -> Token | None:
        for token in self.tokens:
            if secrets.compare_digest(token.secret.encode(), secret.encode()):
                return token
        return None

    def check_listen(self, host: str) -> None:
        """Refuse to serve a non-loopback address with no authentication configured."""
        if not is_loopback(host) and not self.auth_required:
            raise InvalidInputError(
                f"refusing to listen on {host}: it is reachable from other machines and no "
                "tokens are configured, so anyone could append and read. Give tokens "
                "(--tokens FILE or KES_SERVE_TOKENS), or listen on 127.0.0.1."
            )

    @staticmethod
    def load_tokens(path: str | None = None) -> tuple[Token, ...]:
        """Tokens from ``path`` and from env ``KES_SERVE_TOKENS`` (both may be given)."""
        tokens: list[Token] = []
        if path:
            try:
                text = Path(path).read_text()
            except OSError as exc:
                raise InvalidInputError(f"cannot read the tokens file {path}: {exc}.") from exc
            tokens += parse_tokens(text, path)
        env = os.environ.get("KES_SERVE_TOKENS")
        if env:
            tokens += parse_tokens(env, "KES_SERVE_TOKENS")
        return tuple(tokens)
