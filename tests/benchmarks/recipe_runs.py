"""Running a recipe's own `main` inside a benchmark, with its call to `hf_tasks.runner.run` wrapped.

Benchmarks time what users run, so they call the recipe script's `main` with its real argument
parsing; `wrap` receives the recipe's `run` and returns the function `main` calls in its place
(to add a timing callback, or to swap the runner for a bare Trainer).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from hf_tasks import registry

REPO = Path(__file__).resolve().parents[2]


def run_recipe(recipe: str, args: list[str], wrap: Callable[[Callable], Callable]) -> dict[str, Any]:
    """`recipes/<recipe>.py`'s `main(parse(args))` with `run` replaced by `wrap(run)`; its results."""
    declared = registry.load(recipe)
    module = sys.modules[declared.main.__module__]
    runner = module.run
    module.run = wrap(runner)
    try:
        return declared.main(declared.parse(args))
    finally:
        module.run = runner
