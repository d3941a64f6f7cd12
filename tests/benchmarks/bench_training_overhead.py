"""Training-step overhead of the toolkit: `hf_tasks.runner.run` vs a bare `transformers.Trainer`.

    python -m tests.benchmarks.bench_training_overhead [--repeats 3] [--recipes parsquad farstail ...]

Each recipe's tiny config runs twice through the recipe's own `main`: once as written, once with
`run` swapped for a bare `Trainer` built from the same task features, model, collator, callbacks
and arguments. Only the Trainer differs, so the throughput gap is the toolkit's overhead (the
target is under 3%). After one warm-up run, runs alternate; the best of `--repeats` of each is
compared (these runs last seconds, so single runs vary by several percent on a shared machine). Writes
results/training_overhead.json and appends a row to results/training_overhead.md.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import typing
from pathlib import Path

import torch
from transformers import Trainer

from hf_tasks.args import parse
from tests.benchmarks.record import record

REPO = Path(__file__).resolve().parents[2]
RECIPES = ("parsquad", "farstail", "covid_fakenews", "cifar10", "shemo")
TRAIN_ONLY = ("--do_eval", "false", "--do_predict", "false", "--eval_strategy", "no", "--save_strategy", "no",
              "--load_best_model_at_end", "false", "--report_to", "none", "--disable_tqdm", "true",
              "--use_cpu", "true", "--num_train_epochs", "2", "--logging_steps", "1000", "--seed", "0",
              "--lr_scheduler_type", "linear", "--lr_scheduler_kwargs", "{}")  # plateau needs evaluations


def bare_run(task, model, training_args, *, processing_class=None, callbacks=(), optimizers=(None, None), **_):
    """What a user would write without the toolkit's runner: a plain Trainer on the same pieces."""
    trainer = Trainer(model=model, args=training_args, train_dataset=task.features(training_args)["train"],
                      data_collator=task.data_collator, processing_class=processing_class,
                      callbacks=list(callbacks), optimizers=optimizers)
    return trainer.train().metrics


def samples_per_second(recipe: str, bare: bool) -> float:
    module = importlib.import_module(recipe)
    argument_types = list(typing.get_type_hints(module.main).values())[: module.main.__code__.co_argcount]
    runner = module.run
    with tempfile.TemporaryDirectory() as output_dir:
        args = ["--config", str(REPO / f"recipes/configs/{recipe}/tiny.yaml"), "--output_dir", output_dir, *TRAIN_ONLY]
        module.run = bare_run if bare else runner
        try:
            return module.main(*parse(*argument_types, args=args))["train_samples_per_second"]
        finally:
            module.run = runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "recipes"))
    torch.set_num_threads(1)
    figures = {}
    for recipe in args.recipes:
        samples_per_second(recipe, bare=False)  # warm-up: imports, tokenizer and preprocessing caches
        best = {"bare_trainer": 0.0, "runner": 0.0}
        for _ in range(args.repeats):
            best["bare_trainer"] = max(best["bare_trainer"], samples_per_second(recipe, bare=True))
            best["runner"] = max(best["runner"], samples_per_second(recipe, bare=False))
        overhead = 100 * (1 - best["runner"] / best["bare_trainer"])
        figures[recipe] = (f"runner {best['runner']:.1f} vs bare {best['bare_trainer']:.1f} samples/s "
                           f"({overhead:+.2f}%)")
        figures[f"{recipe}_overhead_percent"] = round(overhead, 2)
    record("training_overhead", {"setting": "tiny configs, 2 epochs, 1 thread", **figures})


if __name__ == "__main__":
    main()
