"""Every ```python block of README.md runs, against the test broker."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parent.parent
README = Path(os.environ.get("KES_README", ROOT / "README.md"))
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
# ``print(...)  # what it prints``: the README promises that output.
SHOWN = re.compile(r"^\s*print\(.*\)\s*#\s*(.*?)\s*$", re.MULTILINE)


def python_blocks(text: str) -> list[str]:
    return [m.group(1) for m in BLOCK.finditer(text)]


def shown_output(code: str) -> list[str]:
    """The outputs a block's comments promise, in order."""
    return SHOWN.findall(code)


def run_block(code: str, name: str) -> list[str]:
    """Run a block; the lines it printed."""
    out = io.StringIO()
    namespace: dict[str, object] = {"__name__": name}
    with contextlib.redirect_stdout(out):
        exec(compile(code, name, "exec"), namespace)
    return out.getvalue().splitlines()


def test_blocks_are_found() -> None:
    text = "intro\n```python\nx = 1\n```\n\n```bash\nls\n```\n```python\ny = 2\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = 2\n"]


def test_a_block_printing_other_than_it_shows_is_caught() -> None:
    code = "print(1 + 1)  # 2\nprint('a' * 2)  # aa\n"
    assert run_block(code, "ok") == shown_output(code) == ["2", "aa"]
    wrong = "print(1 + 2)  # 2\n"
    assert run_block(wrong, "wrong") != shown_output(wrong)


def test_readme_python_blocks_run(
    bootstrap_servers: str, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not README.exists():
        pytest.skip(f"{README} does not exist yet")
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip(f"{README} has no ```python block yet")
    monkeypatch.setenv("KES_BOOTSTRAP_SERVERS", bootstrap_servers)
    monkeypatch.setenv("KES_TOPIC_PREFIX", f"{unique}.events.")
    monkeypatch.setenv("KES_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("KES_PARTITIONS", "4")
    monkeypatch.setenv("KES_KEK", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.chdir(tmp_path)
    promised = 0
    for i, code in enumerate(blocks, 1):
        printed = run_block(code, f"{README.name} python block {i}")
        shown = shown_output(code)
        if shown:
            assert printed == shown, f"block {i} printed {printed}, the README shows {shown}"
            promised += len(shown)
    assert promised >= 2, "the README shows printed values: they must be checked"
