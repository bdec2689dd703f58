"""Helpers for the `kes serve` tests: a real uvicorn server on a thread or in its own
process, free ports in 18000-18999, tokens, and a small SSE reader."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from kes.cli.serve import HTTP_IMPL
from kes.kafka.config import KafkaConfig

READ = "read-token-0123456789abcdef"
APPEND = "append-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
TOKENS = f"{READ} read reader\n{APPEND} append writer\n{ADMIN} admin ops\n"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A free port in 18000-18999 (the range these tests may bind)."""
    for _ in range(200):
        port = random.randint(18000, 18999)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18000-18999")


@contextlib.contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """Run ``app`` under uvicorn on a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", http=HTTP_IMPL
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


@contextlib.contextmanager
def serve_process(config: KafkaConfig, *args: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``kes serve`` in its own process (for RSS and load figures); yields (url, process)."""
    port = free_port()
    env = dict(
        os.environ,
        KES_BOOTSTRAP_SERVERS=config.bootstrap_servers,
        KES_NAMESPACE=config.ns,
        KES_INDEX_DIR=config.index_dir,
        KES_PARTITIONS=str(config.partitions),
        PYTHONPATH=os.pathsep.join(
            [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")]
        ),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kes.cli",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            *args,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (
                f"kes serve exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
            assert time.monotonic() < deadline, "kes serve did not start"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def sse_events(text: str) -> list[dict[str, Any]]:
    """Parse an SSE body into messages: {"id", "event", "data"} (comments skipped)."""
    out: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        msg: dict[str, Any] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            msg[name] = value[1:] if value.startswith(" ") else value
        if "data" in msg or "event" in msg:
            out.append(msg)
    return out
