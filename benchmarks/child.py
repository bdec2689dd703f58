"""Benchmark work in a process of its own: a child takes JSON commands on stdin and
answers each with one JSON line on stdout.

Baselines and forwarding clients run in children so that they share neither the GIL nor
the client threads of the kes store in the harness process. A child does its start-up
(connections, producer ids, group joins) before it says it is ready, and warms up per
command before its clock starts, as the kes side does.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import traceback
from collections.abc import Callable
from typing import Any

from benchmarks.common import ROOT


class ChildError(RuntimeError):
    """A child failed, or answered with an error."""


class Child:
    """``python -m MODULE ARGS``, talked to one command at a time."""

    def __init__(self, module: str, *args: str, ready_timeout: float = 120.0) -> None:
        self.module = module
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.hello = self._read(ready_timeout)

    def call(self, timeout: float = 600.0, **command: Any) -> dict[str, Any]:
        """Send ``command``; its answer, or ChildError (with the child's message)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        answer = self._read(timeout)
        if "error" in answer:
            raise ChildError(f"{self.module} {command.get('op')}: {answer['error']}")
        return answer

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            code = self.proc.poll()
            why = f"exited with {code}" if code is not None else f"silent for {timeout:.0f}s"
            raise ChildError(f"child {self.module} {why}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(handle: Callable[[dict[str, Any]], dict[str, Any]], hello: dict[str, Any]) -> None:
    """The child's side: say ``hello`` (ready), then answer commands until ``quit``."""
    print(json.dumps({"ready": True, **hello}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("op") == "quit":
            return
        try:
            answer = handle(command)
        except Exception as exc:
            traceback.print_exc()
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)
