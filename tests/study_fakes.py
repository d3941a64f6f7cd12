"""A stand-in recipe for search workers: no training, only the files a recipe leaves, so tests of the shared
search measure the search itself.

Each launch appends `<run> <resume_from_checkpoint> <parent pid>` to `<output_dir>/launches.txt` (the parent is
the worker that launched it), saves `checkpoint-1` holding one evaluation, waits `trial_seconds` (a config
value) and writes results.json with eval_accuracy = 1 - |log10(learning_rate) + 3| / 10: the best trial is the
one nearest 1e-3.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import yaml

TRIAL_RECIPE = """
import json, math, os, sys, time
from pathlib import Path
import yaml
argv = sys.argv[1:]
def value(flag):
    return argv[argv.index(flag) + 1] if flag in argv else None
config = yaml.safe_load(Path(value("--config")).read_text())
out = Path(value("--output_dir"))
with open(out.parent / "launches.txt", "a") as launches:
    launches.write(f"{out.name} {value('--resume_from_checkpoint')} {os.getppid()}\\n")
accuracy = 1 - abs(math.log10(config["learning_rate"]) + 3) / 10
(out / "checkpoint-1").mkdir(parents=True, exist_ok=True)
(out / "checkpoint-1" / "trainer_state.json").write_text(json.dumps({"log_history": [{"eval_accuracy": accuracy}]}))
(out / "config.yaml").write_text(yaml.safe_dump(config))
time.sleep(float(config.get("trial_seconds", 0)))
(out / "results.json").write_text(json.dumps({"eval_accuracy": accuracy}))
"""


def search_files(folder: Path, trial_seconds: float = 0.0) -> tuple[Path, Path]:
    """A config for the stand-in recipe and a search space over its learning rate (continuous: distinct draws)."""
    recipe = folder / "trial_recipe.py"
    recipe.write_text(TRIAL_RECIPE)
    config = folder / "trial.yaml"
    config.write_text(yaml.safe_dump({"recipe": str(recipe), "learning_rate": 0.01, "trial_seconds": trial_seconds}))
    space = folder / "space.yaml"
    space.write_text(yaml.safe_dump({"objective": "eval_accuracy",
                                     "parameters": {"learning_rate": {"low": 1.0e-5, "high": 1.0e-1, "log": True}}}))
    return config, space


def launches(output_dir: Path) -> list[list[str]]:
    path = output_dir / "launches.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.is_file() else []


def search_rows(output_dir: Path) -> list[dict[str, str]]:
    with (output_dir / "search.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def expected_accuracy(learning_rate: float) -> float:
    return 1 - abs(math.log10(learning_rate) + 3) / 10
