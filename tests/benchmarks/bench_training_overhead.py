"""Training-step overhead of the toolkit: `hf_tasks.runner.run` vs a bare `transformers.Trainer`.

    python -m tests.benchmarks.bench_training_overhead [--repeats 6] [--epochs 10] [--recipes parsquad ...]
    # about 40 minutes on 2 CPU cores with the defaults

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
machine, so after one warm-up run the variants alternate `--repeats` times in ABBA order and the
overhead is the median over the pairs of the per-pair median ratio; the spread over pairs is shown
beside it, with whole-run samples/s. Writes
results/training_overhead.json and appends a row to results/training_overhead.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from transformers import Trainer, TrainerCallback

from hf_tasks.interrupt import GracefulInterrupt
from tests.benchmarks.recipe_runs import REPO, run_recipe
from tests.benchmarks.record import record

RECIPES = ("parsquad", "farstail", "covid_fakenews", "cifar10", "shemo")
TRAIN_ONLY = ("--do_eval", "false", "--do_predict", "false", "--eval_strategy", "no", "--save_strategy", "no",
              "--load_best_model_at_end", "false", "--report_to", "none", "--disable_tqdm", "true",
              "--use_cpu", "true", "--logging_steps", "1000", "--seed", "0",
              "--lr_scheduler_type", "linear", "--lr_scheduler_kwargs", "{}")  # plateau needs evaluations


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


def bare_run(task, model, training_args, *, processing_class=None, callbacks=(), optimizers=(None, None), **_):
    """What a user would write without the toolkit's runner: a plain Trainer on the same pieces."""
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
        args = ["--config", str(REPO / f"recipes/configs/{recipe}/tiny.yaml"), "--output_dir", output_dir,
                "--num_train_epochs", str(epochs), *TRAIN_ONLY]
        results = run_recipe(recipe, args, wrap)
    return clock.seconds, results["train_samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    args = parser.parse_args()
    torch.set_num_threads(1)
    figures = {}
    for recipe in args.recipes:
        timed_run(recipe, bare=False, epochs=1)  # warm-up: imports, tokenizer and preprocessing caches
        steps = {"bare": [], "runner": []}
        rates = {"bare": [], "runner": []}
        with CallbackTimer(GracefulInterrupt, "on_step_end") as interrupt_check:
            for repeat in range(args.repeats):
                order = ("bare", "runner") if repeat % 2 == 0 else ("runner", "bare")  # ABBA: neither always second
                for variant in order:
                    seconds, rate = timed_run(recipe, bare=variant == "bare", epochs=args.epochs)
                    steps[variant].append(seconds)
                    rates[variant].append(rate)
        pair_ratios = [statistics.median(runner / bare for runner, bare in zip(runner_steps, bare_steps))
                       for runner_steps, bare_steps in zip(steps["runner"], steps["bare"])]
        overhead = 100 * (statistics.median(pair_ratios) - 1)
        rate = {variant: statistics.median(values) for variant, values in rates.items()}
        print(f"{recipe}: per-pair median step ratios {[round(ratio, 4) for ratio in pair_ratios]}", flush=True)
        spread = f"pairs {min(pair_ratios) - 1:+.1%} to {max(pair_ratios) - 1:+.1%}"
        check_share = interrupt_check.seconds / sum(sum(run) for run in steps["runner"])
        figures[recipe] = (f"step time {overhead:+.2f}% ({spread}); {rate['runner']:.1f} vs {rate['bare']:.1f} "
                           f"samples/s; interrupt check {1e6 * interrupt_check.seconds / interrupt_check.calls:.1f} "
                           f"us/step ({check_share:.3%} of step time)")
        figures[f"{recipe}_overhead_percent"] = round(overhead, 2)
    record("training_overhead", {"setting": f"tiny configs, {args.epochs} epochs, 1 thread, step-by-step ratio "
                                            f"over {args.repeats} ABBA pairs", **figures})


if __name__ == "__main__":
    main()
