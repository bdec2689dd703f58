"""``python -m benchmarks [NAME ...] [--quick]``: run named benchmark suites.

Each suite writes ``benchmarks/results/<name>.json`` and prints a Markdown table.
"""

from __future__ import annotations

import importlib
import sys

SUITES = ("store", "projections", "schemas")


def main() -> None:
    names = [a for a in sys.argv[1:] if not a.startswith("-")] or ["store"]
    flags = [a for a in sys.argv[1:] if a.startswith("-")]
    for name in names:
        if name not in SUITES:
            raise SystemExit(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"## {name}")
        sys.argv = [f"benchmarks.{name}", *flags]
        module.main()


if __name__ == "__main__":
    main()
