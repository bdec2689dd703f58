"""The users demo runs against real Kafka and prints what it promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from examples.users import demo

pytestmark = pytest.mark.kafka


def test_demo_runs_and_shows_the_key_lines(
    bootstrap_servers: str,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KES_BOOTSTRAP_SERVERS", bootstrap_servers)
    monkeypatch.setenv("KES_TOPIC_PREFIX", f"{unique}.events.")
    monkeypatch.setenv("KES_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("KES_PARTITIONS", "4")
    monkeypatch.setenv("COLUMNS", "120")
    for _ in range(2):  # a second run on the same topics works too (fresh ids)
        demo.main()
        out = capsys.readouterr().out
        assert "Registered alice, bob and carol" in out
        assert re.search(r"alice-\w+ +│ alice\.smith +│ alice\.smith@work\.example\.com", out)
        assert re.search(rf"Raw record {unique}\.events\.User\[\d\]@\d+", out)
        assert re.search(r"key: alice-\w+", out)
        assert "eventType=UserCreated" in out and "contentType=application/json" in out
        assert '"eventType": "UserCreated"' in out and '"aggregateType": "User"' in out
        assert "by replaying 4 events" in out
        assert "at version 2: username='alice' email='alice@work.example.com'" in out
        assert re.search(rf"topic {unique}\.events\.User, partition \d, offsets \d+, \d+", out)
        assert "Refused: UserDeactivatedError: cannot change the email of user" in out
        assert re.search(r"bob-\w+ is still at version 2\.", out)
