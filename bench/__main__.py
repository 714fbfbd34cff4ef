"""Run the benchmarks: `python -m bench` runs them all, `python -m bench import` only bench/import_bench.py.

Each benchmark is a module `bench/<name>_bench.py` with `main(argv: list[str]) -> int`; arguments after
`--` are passed to it (e.g. `python -m bench import -- --procedures 2000 --db sqlite`).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def available() -> list[str]:
    return sorted(p.name.removesuffix("_bench.py") for p in Path(__file__).parent.glob("*_bench.py"))


def main(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else len(argv)
    names, rest = argv[:split], argv[split + 1 :]
    known = available()
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(unknown)} (known: {', '.join(known)})", file=sys.stderr)
        return 2
    status = 0
    for name in names or known:
        print(f"== bench {name}", flush=True)
        module = importlib.import_module(f"bench.{name}_bench")
        status = max(status, int(module.main(rest)))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
