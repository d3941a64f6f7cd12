"""Training-step overhead of the toolkit: `hf_tasks.runner.run` vs a bare `transformers.Trainer`.

    python -m tests.benchmarks.bench_training_overhead [--rounds 12] [--epochs 10] [--recipes parsquad ...]
        [--cpu N]
    # twice the runs of the earlier 6-pair default (about 40 minutes on 2 CPU cores); --recipes, --epochs
    # and --rounds make it shorter

Each recipe's tiny config runs twice through the recipe's own `main`: once as written, once with
`run` swapped for a bare `Trainer` built from the same task features, model, collator, callbacks
and arguments. Only the Trainer differs, so the gap is the toolkit's overhead (the target is under
3%). Tiny models make it a worst case: their steps are short, so any per-step work the toolkit adds
weighs the most. That work is one callback, the interrupt check (`TaskTrainer` overrides evaluation
only); its own time is measured directly too, as a share of the step.

Both variants train on the same batches in the same order (same seed), so the runs are compared
step by step: the wall time from one step's start to the next (data loading, forward, backward,
optimizer, every callback) of step i with the runner, divided by step i's without it. The median of
these ratios is not moved by a burst of other work that slows a few steps, nor by batches of
different padded lengths (they make the step-time distribution multi-modal, so even a run's median
step jumps between modes). Whole runs still differ from one another by a few percent on a shared
machine, so after one warm-up run the variants alternate `--rounds` times (tests/benchmarks/abba.py)
and the overhead is the median over the rounds of the per-round median ratio, with the range over
rounds beside it and whole-run samples/s. The process runs one torch thread pinned to one core
(`--cpu`), so thread scheduling does not move the figures. The row says whether the range decides
the 3% target: under it, over it, or not decided at this spread. Writes
results/training_overhead.json and appends a row to results/training_overhead.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
from transformers import Trainer, TrainerCallback

from hf_tasks import registry
from hf_tasks.interrupt import GracefulInterrupt
from tests.benchmarks.abba import Ratio, Spread, alternate
from tests.benchmarks.recipe_runs import run_recipe
from tests.benchmarks.record import record
from tests.caches import use_private_caches

TRAIN_ONLY = ("--do_eval", "false", "--do_predict", "false", "--eval_strategy", "no", "--save_strategy", "no",
              "--load_best_model_at_end", "false", "--report_to", "none", "--disable_tqdm", "true",
              "--use_cpu", "true", "--logging_steps", "1000", "--seed", "0",
              "--lr_scheduler_type", "linear", "--lr_scheduler_kwargs", "{}")  # plateau needs evaluations
TARGET = 1.03  # the runner may add at most 3% to a step


class StepClock(TrainerCallback):
    """Wall time from each step's start to the next one's."""

    def __init__(self):
        self.seconds: list[float] = []
        self._last: float | None = None

    def on_step_begin(self, args, state, control, **kwargs):
        now = time.perf_counter()
        if self._last is not None:
            self.seconds.append(now - self._last)
        self._last = now


class CallbackTimer:
    """Total seconds spent in a callback class's method, while installed."""

    def __init__(self, callback_class: type, method: str):
        self.callback_class, self.method = callback_class, method
        self.original = getattr(callback_class, method)
        self.seconds = 0.0
        self.calls = 0

    def __enter__(self):
        original = self.original

        def timed(callback, *args, **kwargs):
            began = time.perf_counter()
            try:
                return original(callback, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - began
                self.calls += 1

        setattr(self.callback_class, self.method, timed)
        return self

    def __exit__(self, *exc):
        setattr(self.callback_class, self.method, self.original)


def bare_run(task, model, state, *, processing_class=None, callbacks=(), optimizers=(None, None), **_):
    """What a user would write without the toolkit's runner: a plain Trainer on the same pieces."""
    training_args = state.training_args
    trainer = Trainer(model=model, args=training_args, train_dataset=task.features(training_args)["train"],
                      data_collator=task.data_collator, processing_class=processing_class,
                      callbacks=list(callbacks), optimizers=optimizers)
    return trainer.train().metrics


def timed_run(recipe: str, bare: bool, epochs: int) -> tuple[list[float], float]:
    """(seconds of each step, whole-run samples/s) of one training run of the recipe's tiny config."""
    clock = StepClock()

    def wrap(runner):
        def timed(*args, callbacks=(), **kwargs):
            return (bare_run if bare else runner)(*args, callbacks=[*callbacks, clock], **kwargs)
        return timed

    with tempfile.TemporaryDirectory() as output_dir:
        args = ["--config", str(registry.configs_folder(recipe) / "tiny.yaml"), "--output_dir", output_dir,
                "--num_train_epochs", str(epochs), *TRAIN_ONLY]
        results = run_recipe(recipe, args, wrap)
    return clock.seconds, results["train_samples_per_second"]


def verdict(overhead: Ratio) -> str:
    if overhead.high < TARGET:
        return "under 3%"
    if overhead.low > TARGET:
        return "over 3%"
    return "3% target not decided at this spread"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--recipes", nargs="+", default=registry.having_config("tiny"))
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)), help="the core to pin the run to")
    args = parser.parse_args()
    use_private_caches("hf_tasks-bench-")
    os.sched_setaffinity(0, {args.cpu})
    torch.set_num_threads(1)
    figures = {}
    for recipe in args.recipes:
        with CallbackTimer(GracefulInterrupt, "on_step_end") as interrupt_check:
            runs = alternate({"bare": lambda: timed_run(recipe, bare=True, epochs=args.epochs),
                              "runner": lambda: timed_run(recipe, bare=False, epochs=args.epochs)},
                             rounds=args.rounds)
        steps = {variant: [seconds for seconds, _ in results] for variant, results in runs.items()}
        round_ratios = [statistics.median(runner / bare for runner, bare in zip(runner_steps, bare_steps))
                        for runner_steps, bare_steps in zip(steps["runner"], steps["bare"])]
        overhead = Ratio.of(round_ratios)
        rates = {variant: Spread.of([rate for _, rate in results]) for variant, results in runs.items()}
        check_share = interrupt_check.seconds / sum(sum(run) for run in steps["runner"])
        figures[f"{recipe}_step_time_ratio"] = overhead
        figures[f"{recipe}_verdict"] = verdict(overhead)
        figures[f"{recipe}_samples_per_second"] = (f"runner {rates['runner'].format(1, '')}, "
                                                   f"bare {rates['bare'].format(1, '')}")
        figures[f"{recipe}_interrupt_check"] = (f"{1e6 * interrupt_check.seconds / interrupt_check.calls:.1f} us/step "
                                                f"({check_share:.3%} of step time)")
    record("training_overhead", {"setting": f"tiny configs, {args.epochs} epochs, 1 thread pinned to core {args.cpu}, "
                                            f"step-by-step ratio runner/bare over {args.rounds} alternated rounds",
                                 **figures})


if __name__ == "__main__":
    main()
