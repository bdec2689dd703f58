"""Every code block of docs/streams.md runs, in order, against the test broker."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.doc_blocks import check_languages, run_blocks

DOC = Path(__file__).resolve().parent.parent / "docs" / "streams.md"


def test_every_block_is_python_or_kes_commands() -> None:
    check_languages(DOC)


@pytest.mark.kafka
def test_doc_blocks_run(
    bootstrap_servers: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "KES_BOOTSTRAP_SERVERS": bootstrap_servers,
        "KES_NAMESPACE": unique,
        "KES_INDEX_DIR": str(tmp_path / "index"),
        "KES_PARTITIONS": "4",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    try:
        run_blocks(DOC, "signups", env)
    finally:
        sys.modules.pop("signups", None)
