"""PostgreSQL for tests: ``KES_POSTGRES_DSN`` if set, else the private server that
scripts/postgres.sh installs (when missing) and starts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def postgres_dsn() -> str:
    dsn = os.environ.get("KES_POSTGRES_DSN")
    if dsn:
        return dsn
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "postgres.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return out.stdout.strip().splitlines()[-1]
