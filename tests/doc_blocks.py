"""Runs a Markdown page's code blocks in order: ```python blocks as one module (registered
under the name the page gives it, so ``kes ... module:Name`` commands find it), ```bash
blocks as ``kes`` commands through the CLI, in this process."""

from __future__ import annotations

import re
import shlex
import sys
import types
from pathlib import Path

import pytest
from click.testing import CliRunner

from kes.cli import cli

BLOCK = re.compile(r"^```([a-z]*)[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(text)]


def commands(code: str) -> list[str]:
    return [ln for ln in code.splitlines() if ln.strip() and not ln.startswith("#")]


def check_languages(doc: Path) -> None:
    """Every block is Python or ``kes`` commands: nothing on the page goes untested."""
    found = blocks(doc.read_text(encoding="utf-8"))
    assert found and {lang for lang, _ in found} <= {"python", "bash"}
    for lang, code in found:
        if lang == "bash":
            assert all(ln.startswith("kes ") for ln in commands(code)), code


def run_blocks(doc: Path, module_name: str, env: dict[str, str]) -> types.ModuleType:
    """Run every block of ``doc``; returns the module the Python blocks built (the caller
    removes it from ``sys.modules``)."""
    module = types.ModuleType(module_name)
    module.__file__ = str(doc)
    sys.modules[module_name] = module
    for i, (lang, code) in enumerate(blocks(doc.read_text(encoding="utf-8")), 1):
        if lang == "python":
            exec(compile(code, f"{doc.name} block {i}", "exec"), module.__dict__)
            continue
        for line in commands(code):
            result = CliRunner().invoke(cli, shlex.split(line)[1:], env=env)
            assert result.exit_code == 0, f"{line}\n{result.output}\n{result.exception!r}"
    return module


def run_doc_against(
    doc: Path,
    module_name: str,
    bootstrap_servers: str,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run ``doc``'s blocks as a user would: the ``KES_*`` environment pointing at the test
    broker under ``namespace``, in ``tmp_path``; the module is forgotten afterwards."""
    env = {
        "KES_BOOTSTRAP_SERVERS": bootstrap_servers,
        "KES_NAMESPACE": namespace,
        "KES_INDEX_DIR": str(tmp_path / "index"),
        "KES_PARTITIONS": "4",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    try:
        run_blocks(doc, module_name, env)
    finally:
        sys.modules.pop(module_name, None)
