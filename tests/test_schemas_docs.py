"""Every code block of docs/schemas.md runs, in order, against the test broker: ```python
blocks share one namespace, ```bash blocks are ``kes`` commands run through the CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from kes.cli import cli

pytestmark = pytest.mark.kafka

DOC = Path(__file__).resolve().parent.parent / "docs" / "schemas.md"
BLOCK = re.compile(r"^```([a-z]*)[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def test_every_block_is_python_or_kes_commands() -> None:
    found = blocks(DOC.read_text(encoding="utf-8"))
    assert {lang for lang, _ in found} == {"python", "bash"}
    for lang, code in found:
        if lang == "bash":
            lines = [ln for ln in code.splitlines() if ln.strip() and not ln.startswith("#")]
            assert all(ln.startswith("kes ") for ln in lines), code


def test_doc_blocks_run(
    bootstrap_servers: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "KES_BOOTSTRAP_SERVERS": bootstrap_servers,
        "KES_SCHEMAS_TOPIC": f"{unique}._kes_schemas",
        "KES_TOPIC_PREFIX": f"{unique}.events.",
        "KES_INDEX_DIR": str(tmp_path / "index"),
        "KES_PARTITIONS": "4",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_schemas"}
    try:
        for i, (lang, code) in enumerate(blocks(DOC.read_text(encoding="utf-8")), 1):
            if lang == "python":
                exec(compile(code, f"{DOC.name} block {i}", "exec"), namespace)
                continue
            for line in code.splitlines():
                if line.strip() and not line.startswith("#"):
                    result = CliRunner().invoke(cli, shlex.split(line)[1:], env=env)
                    assert result.exit_code == 0, f"{line}\n{result.output}"
    finally:
        for name in ("registry", "store"):
            closable = namespace.get(name)
            close = getattr(closable, "close", None)
            if close is not None:
                close()
