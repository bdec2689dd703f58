"""``kes serve``: the event store over HTTP and Server-Sent Events, the schema registry's
Confluent-compatible API, and a web event browser, in one ASGI app (Starlette, run by
uvicorn). Needs ``pip install 'kes[serve]'``. See docs/serve.md."""

from __future__ import annotations

from kes.serve.app import create_app
from kes.serve.settings import ROLES, ServeSettings, Token, parse_tokens

__all__ = ["ROLES", "ServeSettings", "Token", "create_app", "parse_tokens"]
