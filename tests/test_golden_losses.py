"""Golden first-step losses: each recipe's tiny config, trained for a few steps, logs the same training
losses (and validation loss) as the committed references in tests/golden/first_losses.json, to rtol 1e-5.

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
STEPS = 4
# A few optimizer steps on a few examples, no checkpoints, a short evaluation; the runner saves
# trainer_state.json, whose log history holds every step's loss.
SHORT_RUN = ["--max_steps", str(STEPS), "--logging_steps", "1", "--max_train_samples", "32",
             "--max_eval_samples", "16", "--do_eval", "true", "--do_predict", "false", "--eval_strategy", "no",
             "--save_strategy", "no", "--load_best_model_at_end", "false"]
# The plateau schedule needs an evaluation strategy; one evaluation at the last step leaves the first
# steps' learning rates as they are.
OWN_OVERRIDES = {"cifar10": ["--eval_strategy", "steps", "--eval_steps", str(STEPS)]}


def first_losses(recipe_name: str, folder: Path) -> dict[str, list[float] | float]:
    """Run `recipe_name`'s tiny config briefly into `folder`; its logged training losses and its eval loss."""
    recipe = registry.load(recipe_name)
    overrides = SHORT_RUN + OWN_OVERRIDES.get(recipe_name, [])
    results = recipe.main(recipe.parse(tiny_recipe_args(recipe, folder, *overrides)))
    state = json.loads((folder / "run" / "trainer_state.json").read_text(encoding="utf-8"))
    return {"train_losses": [row["loss"] for row in state["log_history"] if "loss" in row],
            "eval_loss": results["eval_loss"]}


@pytest.mark.parametrize("recipe_name", TRAINING_RECIPES)
def test_first_losses_match_the_references(recipe_name, tmp_path):
    reference = json.loads(REFERENCES.read_text(encoding="utf-8"))[recipe_name]
    measured = first_losses(recipe_name, tmp_path)
    assert len(measured["train_losses"]) == STEPS, measured
    assert measured["train_losses"] == pytest.approx(reference["train_losses"], rel=1e-5, abs=0), measured
    assert measured["eval_loss"] == pytest.approx(reference["eval_loss"], rel=1e-5, abs=0), measured


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
