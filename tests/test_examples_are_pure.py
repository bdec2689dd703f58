"""The examples' domain code reads like the domain: no offsets, producers or topics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KAFKA_WORDS = re.compile(r"offset|producer|consumer|topic|partition|confluent|kafka", re.I)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/domain.py")), ids=lambda p: p.parent.name)
def test_domain_code_has_no_kafka_in_it(path: Path) -> None:
    hits = [
        f"{path.name}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if KAFKA_WORDS.search(line)
    ]
    assert hits == []
