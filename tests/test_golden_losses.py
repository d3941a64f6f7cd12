"""Golden first-step losses: each recipe's tiny config, trained for a few steps, logs the same training
losses (and validation loss) as the committed references in tests/golden/first_losses.json, each within
its own relative tolerance (tests/golden/tolerances.json).

The tolerances hold on any x86-64 CPU: float32 kernels sum in an order that depends on the instruction
set (AVX-512, AVX2, SSE), so an AMD CPU without AVX-512 computes CIFAR-10's eval loss 1.1e-5 apart.
tests/benchmarks/golden_spread.py measures that spread per value, with the kernels limited as such CPUs
limit them, and sets each tolerance to 10 times it (at least 1e-6); .ci/run runs these tests natively
and limited to AVX2. The same benchmark records how far tiny real changes move the values (the learning
rate times 1.01; one training example fewer): `test_tiny_real_changes_exceed_the_tolerances` checks they
stay far outside.

These pin everything in front of the optimizer (reading the data, validation, features, collation,
model building, seeding): a refactor that keeps behaviour keeps these numbers. When a change is meant
to alter what a recipe trains on or how (new preprocessing with its version bumped, a new default, a
changed sample file or tiny model), regenerate the references on purpose and say why in the commit:

    PYTHONPATH=. HF_HUB_OFFLINE=1 python -m tests.test_golden_losses

A failure after a pure refactor (code moved, renamed, split) is a behaviour change to find, never a
reason to regenerate.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from hf_tasks import registry
from tests.conftest import REPO, TRAINING_RECIPES, tiny_recipe_args

REFERENCES = REPO / "tests" / "golden" / "first_losses.json"
TOLERANCES = REPO / "tests" / "golden" / "tolerances.json"
SPREAD = REPO / "tests" / "benchmarks" / "results" / "golden_spread_values.json"
# How far past its tolerance a tiny real change must move some pinned value of every recipe.
REAL_CHANGE_MARGIN = 10
STEPS = 4
# A few optimizer steps on a few examples, no checkpoints, a short evaluation; the runner saves
# trainer_state.json, whose log history holds every step's loss.
SHORT_RUN = ["--max_steps", str(STEPS), "--logging_steps", "1", "--max_train_samples", "32",
             "--max_eval_samples", "16", "--do_eval", "true", "--do_predict", "false", "--eval_strategy", "no",
             "--save_strategy", "no", "--load_best_model_at_end", "false"]
# The plateau schedule needs an evaluation strategy; one evaluation at the last step leaves the first
# steps' learning rates as they are.
OWN_OVERRIDES = {"cifar10": ["--eval_strategy", "steps", "--eval_steps", str(STEPS)]}


def first_losses(recipe_name: str, folder: Path, *extra: str) -> dict[str, list[float] | float]:
    """Run `recipe_name`'s tiny config briefly into `folder` (with `extra` flags last); its logged training
    losses and its eval loss."""
    recipe = registry.load(recipe_name)
    overrides = SHORT_RUN + OWN_OVERRIDES.get(recipe_name, [])
    results = recipe.main(recipe.parse(tiny_recipe_args(recipe, folder, *overrides, *extra)))
    state = json.loads((folder / "run" / "trainer_state.json").read_text(encoding="utf-8"))
    return {"train_losses": [row["loss"] for row in state["log_history"] if "loss" in row],
            "eval_loss": results["eval_loss"]}


@pytest.mark.pinned_numbers
@pytest.mark.parametrize("recipe_name", TRAINING_RECIPES)
def test_first_losses_match_the_references(recipe_name, tmp_path):
    reference = json.loads(REFERENCES.read_text(encoding="utf-8"))[recipe_name]
    tolerance = json.loads(TOLERANCES.read_text(encoding="utf-8"))[recipe_name]
    measured = first_losses(recipe_name, tmp_path)
    assert len(measured["train_losses"]) == STEPS, measured
    for step, (value, expected, rel) in enumerate(zip(measured["train_losses"], reference["train_losses"],
                                                      tolerance["train_losses"]), start=1):
        assert value == pytest.approx(expected, rel=rel, abs=0), (f"step {step}", measured)
    assert measured["eval_loss"] == pytest.approx(reference["eval_loss"], rel=tolerance["eval_loss"], abs=0), measured


def test_tiny_real_changes_exceed_the_tolerances():
    """The recorded real changes (tests/benchmarks/golden_spread.py) each move some pinned value of every
    recipe at least REAL_CHANGE_MARGIN times past its tolerance: the tolerances still catch them."""
    from tests.benchmarks.golden_spread import past_tolerance

    moved = past_tolerance(json.loads(SPREAD.read_text(encoding="utf-8")),
                           json.loads(TOLERANCES.read_text(encoding="utf-8")))
    assert set(moved) == {"learning rate x1.01", "one training example fewer"}
    for change, by_recipe in moved.items():
        assert set(by_recipe) == set(TRAINING_RECIPES)
        for recipe_name, times in by_recipe.items():
            assert times >= REAL_CHANGE_MARGIN, (change, recipe_name, times)


def regenerate() -> None:
    references = {}
    for recipe_name in TRAINING_RECIPES:
        with tempfile.TemporaryDirectory() as folder:
            references[recipe_name] = first_losses(recipe_name, Path(folder))
    REFERENCES.parent.mkdir(exist_ok=True)
    REFERENCES.write_text(json.dumps(references, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {REFERENCES}")


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)  # as the test session runs (tests/conftest.py)
    regenerate()
