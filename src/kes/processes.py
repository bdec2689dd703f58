"""Loading user code by name (``package.module:name``) and running it in several
processes: what ``kes project run`` and ``kes stream run`` share."""

from __future__ import annotations

import importlib
import multiprocessing
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kes.errors import KesError

__all__ = ["import_attribute", "run_members"]


def import_attribute(spec: str, example: str, error: type[KesError]) -> Any:
    """``package.module:name`` to that object (the current directory is importable);
    ``error`` names what is wrong, with ``example`` as what to write."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise error(f"{spec!r} is not MODULE:NAME; write e.g. {example}.")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"cannot import {module_name!r} (from {spec!r}): {exc}") from exc
    if not hasattr(module, attr):
        raise error(f"{spec!r}: module {module_name} has no {attr!r}.")
    return getattr(module, attr)


def run_members(target: Callable[..., None], args: list[tuple[Any, ...]], name: str) -> int:
    """Run ``target(*a)`` for each ``a`` of ``args`` in its own (spawned) process until all
    end; SIGTERM/SIGINT are passed on to them. Returns the worst exit code."""
    ctx = multiprocessing.get_context("spawn")
    children = [ctx.Process(target=target, args=a, name=f"{name}-{i}") for i, a in enumerate(args)]
    for c in children:
        c.start()

    def forward(signum: int, _frame: Any) -> None:
        for c in children:
            if c.pid is not None and c.is_alive():
                c.terminate()

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for c in children:
        c.join()
    return max(abs(c.exitcode or 0) for c in children)
