"""Loading user code by name (``package.module:name``) and running it in several
supervised processes: what ``kes project run`` and ``kes stream run`` share.

The supervisor restarts a member that exits (with backoff, a bounded number of times in
a window), and kills and restarts one that makes no progress for ``stall_s`` while it
has work: a member calls its heartbeat when it handled records or has nothing left to
read, so a process frozen (SIGSTOP, a hung call) or stuck in a loop stops beating. Its
view (members, pids, restarts, last error, stalled since) is written as JSON to
``state_file`` every second, for ``status`` commands and liveness probes.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kes.errors import KesError

__all__ = ["Supervision", "import_attribute", "read_state", "run_members", "state_file"]

log = logging.getLogger("kes.supervisor")


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


@dataclass(frozen=True)
class Supervision:
    """How members are kept running (see the module docstring)."""

    max_restarts: int = 5  # per member within restart_window_s; then everything stops
    restart_window_s: float = 600.0
    backoff_s: float = 1.0  # before a restart; doubled for each recent one, up to 30 s
    stall_s: float = 0.0  # 0: no stall detection
    state_file: Path | None = None


@dataclass
class _Member:
    index: int
    args: tuple[Any, ...]
    # Shared memory without locks: a member killed or stopped while holding a lock would
    # block the supervisor. An aligned double is written and read whole.
    beat: Any  # Value('d'): time.time() of the last heartbeat
    error: Any  # Array('c'): the last error the member reported, UTF-8
    process: Any = None
    restarts: list[float] = field(default_factory=list)  # when (time.time())
    last_exit: int | None = None
    last_error: str | None = None
    stalled_since: float | None = None
    restart_at: float | None = None

    def recent_restarts(self, now: float, window: float) -> int:
        return sum(1 for t in self.restarts if now - t < window)


ERROR_BYTES = 2000


def _member_main(target: Callable[..., None], args: tuple[Any, ...], beat: Any, error: Any) -> None:
    """A member process: ``target(*args, heartbeat)``; an exception is reported to the
    supervisor before the process exits with status 1."""

    def heartbeat() -> None:
        beat.value = time.time()

    try:
        target(*args, heartbeat)
    except KeyboardInterrupt:
        return
    except BaseException as exc:
        text = f"{type(exc).__name__}: {exc}".encode()[: ERROR_BYTES - 1]
        error.value = text
        raise


def run_members(
    target: Callable[..., None],
    args: list[tuple[Any, ...]],
    name: str,
    supervision: Supervision | None = None,
) -> int:
    """Run ``target(*a, heartbeat)`` for each ``a`` of ``args`` in its own (spawned)
    process, supervised, until SIGTERM/SIGINT (passed on to them) or until a member
    fails more often than allowed. Returns the worst exit code of the last members (1
    when supervision gave up)."""
    sup = supervision or Supervision()
    ctx = multiprocessing.get_context("spawn")
    members = [
        _Member(
            i, a, ctx.Value("d", time.time(), lock=False), ctx.Array("c", ERROR_BYTES, lock=False)
        )
        for i, a in enumerate(args)
    ]
    stopping = False

    def start(m: _Member) -> None:
        m.beat.value = time.time()  # starting counts as progress
        m.process = ctx.Process(
            target=_member_main,
            args=(target, m.args, m.beat, m.error),
            name=f"{name}-{m.index}",
        )
        m.process.start()
        m.restart_at = None

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for m in members:
            if m.process is not None and m.process.is_alive():
                m.process.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for m in members:
        start(m)
    gave_up = False
    while True:
        now = time.time()
        for m in members:
            if m.error.value:
                m.last_error = m.error.value.decode(errors="replace")
                m.error.value = b""
            _watch(m, sup, now, stopping)
            if stopping or m.process is None:
                continue
            if m.restart_at is not None and now >= m.restart_at:
                log.warning("%s-%d: starting it again (restart %d)", name, m.index, len(m.restarts))
                start(m)
            elif m.restart_at is None and not m.process.is_alive():
                m.last_exit = m.process.exitcode
                if m.recent_restarts(now, sup.restart_window_s) >= sup.max_restarts:
                    log.error(
                        "%s-%d: exited with %s after %d restarts in %.0f s (last error: %s); "
                        "giving up: stopping every member",
                        name,
                        m.index,
                        m.last_exit,
                        sup.max_restarts,
                        sup.restart_window_s,
                        m.last_error or "none reported",
                    )
                    gave_up = True
                    stop(signal.SIGTERM, None)
                    break
                delay = min(30.0, sup.backoff_s * 2 ** m.recent_restarts(now, sup.restart_window_s))
                m.restarts.append(now)
                m.restart_at = now + delay
                log.warning(
                    "%s-%d: exited with %s (%s); restarting in %.1f s",
                    name,
                    m.index,
                    m.last_exit,
                    m.last_error or "no error reported",
                    delay,
                )
        if sup.state_file is not None:
            _write_state(sup.state_file, name, members, stopping)
        if stopping and all(m.process is None or not m.process.is_alive() for m in members):
            break
        time.sleep(0.25)
    for m in members:
        if m.process is not None:
            m.process.join()
    if sup.state_file is not None:
        _write_state(sup.state_file, name, members, stopping=True)
    if gave_up:
        return 1
    # A member that had died before the stop (its restart was pending) was accounted for.
    last = [m.process.exitcode or 0 for m in members if m.process and m.restart_at is None]
    return max((abs(code) for code in last), default=0)


def _watch(m: _Member, sup: Supervision, now: float, stopping: bool) -> None:
    """Kill ``m`` when it has not beaten for ``stall_s`` (it is then restarted)."""
    if stopping or sup.stall_s <= 0 or m.process is None or m.restart_at is not None:
        return
    if not m.process.is_alive():
        return
    silent = now - m.beat.value
    if silent < sup.stall_s:
        m.stalled_since = None
        return
    m.stalled_since = m.beat.value
    log.error(
        "%s: no progress for %.0f s while it has records to read (frozen or hung); "
        "killing it (SIGKILL) to start a new one",
        m.process.name,
        silent,
    )
    m.last_error = f"stalled: no progress for {silent:.0f} s"
    with contextlib.suppress(ProcessLookupError):
        os.kill(m.process.pid, signal.SIGKILL)
    m.process.join(10)


def _write_state(path: Path, name: str, members: list[_Member], stopping: bool) -> None:
    now = time.time()
    state = {
        "name": name,
        "supervisor_pid": os.getpid(),
        "updated_at": now,
        "stopping": stopping,
        "members": [
            {
                "index": m.index,
                "pid": m.process.pid if m.process is not None else None,
                "alive": bool(m.process is not None and m.process.is_alive()),
                "restarts": len(m.restarts),
                "last_exit": m.last_exit,
                "last_error": m.last_error,
                "stalled_since": m.stalled_since,
                "seconds_since_progress": round(now - m.beat.value, 1),
            }
            for m in members
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def state_file(kind: str, name: str) -> Path:
    """Where the supervisor of ``kes project run`` / ``kes stream run`` of ``name`` keeps
    its state (``KES_STATE_DIR``, default ``.kes/run`` in the current directory)."""
    return Path(os.environ.get("KES_STATE_DIR", ".kes/run")) / f"{kind}-{name}.json"


def read_state(path: Path) -> dict[str, Any] | None:
    """A supervisor's last state (None when there is none)."""
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return state
