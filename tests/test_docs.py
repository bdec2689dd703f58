"""The docs stand alone and say what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

from kes.cli import cli
from kes.kafka.topics import kinds_table

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "benchmarks" / "README.md",
]


def test_the_topics_table_is_the_catalogue() -> None:
    """docs/operations.md holds exactly the table `kes topics --kinds` prints."""
    text = (ROOT / "docs" / "operations.md").read_text()
    assert kinds_table() in text
    result = CliRunner().invoke(cli, ["topics", "--kinds"])
    assert result.exit_code == 0 and result.output.strip() == kinds_table()


def test_docs_point_at_nothing_outside_the_repository() -> None:
    for doc in DOCS:
        text = doc.read_text()
        assert "../shared" not in text, doc
        for target in re.findall(
            r"`((?:docs|benchmarks|examples|src|tests|scripts)/[\w./-]+)`", text
        ):
            path = ROOT / target.rstrip(".")
            assert path.exists() or any(ROOT.glob(target)), f"{doc.name} names {target}"
