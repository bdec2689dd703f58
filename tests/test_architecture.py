"""Rules of the code's shape that a reviewer would otherwise check by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import kes

SRC = Path(kes.__file__).resolve().parent
CLIENTS = {"Consumer", "Producer", "AdminClient", "SerializingProducer", "DeserializingConsumer"}


def _constructed_clients(path: Path) -> list[str]:
    """Calls of confluent-kafka client classes in a module, as "line: Name"."""
    tree = ast.parse(path.read_text(), str(path))
    aliases: dict[str, str] = {}  # local name -> client class
    modules: set[str] = set()  # local names bound to confluent_kafka (or .admin)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("confluent_kafka"):
            aliases.update({a.asname or a.name: a.name for a in node.names if a.name in CLIENTS})
        elif isinstance(node, ast.Import):
            modules.update(
                a.asname or a.name for a in node.names if a.name.startswith("confluent_kafka")
            )
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in aliases:
            found.append(f"{node.lineno}: {aliases[func.id]}")
        elif (
            isinstance(func, ast.Attribute)
            and func.attr in CLIENTS
            and isinstance(func.value, ast.Name | ast.Attribute)
            and ast.unparse(func.value) in modules
        ):
            found.append(f"{node.lineno}: {func.attr}")
    return found


def test_only_the_kafka_layer_makes_kafka_clients() -> None:
    offenders = {
        str(path.relative_to(SRC)): calls
        for path in sorted(SRC.rglob("*.py"))
        if path.relative_to(SRC).parts[0] != "kafka" and (calls := _constructed_clients(path))
    }
    assert offenders == {}, (
        "make Kafka clients through kes.kafka.clients (one place for settings, security "
        f"and error translation): {offenders}"
    )


def test_the_rule_catches_a_client_made_elsewhere(tmp_path: Path) -> None:
    module = tmp_path / "sneaky.py"
    module.write_text(
        "from confluent_kafka import Consumer as C\n"
        "import confluent_kafka\n"
        "a = C({})\n"
        "b = confluent_kafka.Producer({})\n"
    )
    assert _constructed_clients(module) == ["3: Consumer", "4: Producer"]


def test_import_kes_does_not_load_the_kafka_client() -> None:
    import subprocess
    import sys

    code = "import sys, kes; print('confluent_kafka' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
