"""Every code block of docs/streams.md runs, in order, against the test broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.doc_blocks import check_languages, run_doc_against

DOC = Path(__file__).resolve().parent.parent / "docs" / "streams.md"


def test_every_block_is_python_or_kes_commands() -> None:
    check_languages(DOC)


@pytest.mark.kafka
def test_doc_blocks_run(
    bootstrap_servers: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_doc_against(DOC, "signups", bootstrap_servers, unique, tmp_path, monkeypatch)
