"""`--help` of a recipe: built (an empty help cache: the first call, or after an upgrade) vs cached.

    python -m tests.benchmarks.bench_help [--recipe farstail] [--rounds 3]

Runs `python recipes/<recipe>.py --help` as a user would, in a fresh process each time: "built" with a
new, empty help cache (`HF_TASKS_CACHE`), "cached" with one the first call filled. The two alternate
(tests/benchmarks/abba.py). Writes results/help.json and appends a row to results/help.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from itertools import count
from pathlib import Path

from tests.benchmarks.abba import Ratio, Spread, alternate, seconds
from tests.benchmarks.record import record

REPO = Path(__file__).resolve().parents[2]


def show_help(recipe: str, cache: Path) -> str:
    env = {**os.environ, "HF_TASKS_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    finished = subprocess.run([sys.executable, str(REPO / "recipes" / f"{recipe}.py"), "--help"], env=env, cwd=REPO,
                              capture_output=True, text=True, check=True)
    return finished.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="farstail")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        fresh = count()
        expected = show_help(args.recipe, folder / "filled")  # fills the cache the cached calls read

        def built() -> None:
            assert show_help(args.recipe, folder / f"empty-{next(fresh)}") == expected

        def cached() -> None:
            assert show_help(args.recipe, folder / "filled") == expected

        timings = alternate({"built": seconds(built), "cached": seconds(cached)}, rounds=args.rounds)
    record("help", {
        "recipe": args.recipe,
        "built_seconds": Spread.of(timings["built"]),
        "cached_seconds": Spread.of(timings["cached"]),
        "speedup": Ratio.within_rounds(timings["built"], timings["cached"]),
    })


if __name__ == "__main__":
    main()
