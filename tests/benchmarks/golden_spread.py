"""How far the golden first losses move across CPU instruction sets, and how far a tiny real change moves them.

    python -m tests.benchmarks.golden_spread

The pinned values (tests/golden/first_losses.json) come from float32 kernels whose summation order depends
on the instruction set: oneDNN, ATen's vectorised loops and MKL pick AVX-512, AVX2 or SSE paths at run
time, so an AMD laptop without AVX-512 computes slightly different losses than the machine that wrote the
references. This runs every recipe's short golden run under each kernel limit below (a fresh process each,
the variables read once at start) and, natively, under two tiny real changes: the learning rate times
1.01, and one training example fewer (31 instead of 32). For every pinned value
it records the largest relative spread across instruction sets; each value's tolerance
(tests/golden/tolerances.json, read by tests/test_golden_losses.py) is SAFETY_FACTOR times that spread,
at least FLOAT32_FLOOR, rounded up to one digit. Each real change must move some pinned value of every
recipe far past its tolerance (tests/test_golden_losses.py checks the recorded figures). Writes
results/golden_spread.json (per value: results/golden_spread_values.json) and appends a row to
results/golden_spread.md; `--tolerances` derives the tolerances again from the recorded values.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Kernel limits a machine without AVX-512 (or without AVX2) gets by itself; ONNX Runtime has no such switch.
KERNEL_LIMITS = {
    "native": {},
    "avx512_core": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "ATEN_CPU_CAPABILITY": "avx512",
                    "MKL_ENABLE_INSTRUCTIONS": "AVX512"},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "sse41": {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
SAFETY_FACTOR = 10
# float32's relative resolution is 1.2e-7; a value no instruction set moved still gets a few ulps of room.
FLOAT32_FLOOR = 1e-6
REAL_CHANGES = {"learning rate x1.01": "learning_rate", "one training example fewer": "max_train_samples"}


def measured_in_a_fresh_process(environment: dict[str, str], change: str = "") -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, "-m", "tests.benchmarks.golden_spread", "--one", out.name, change],
                       env={**os.environ, **environment}, check=True, stdout=subprocess.DEVNULL)
        return json.loads(Path(out.name).read_text())


def one_measurement(out: str, change: str) -> None:
    """Every recipe's golden values in this process, optionally with one real change, written to `out`."""
    import torch

    from hf_tasks.args import parse
    from tests import test_golden_losses as golden

    torch.set_num_threads(1)  # as the test session runs
    measured = {}
    for recipe_name in golden.TRAINING_RECIPES:
        extra = []
        if change == "learning_rate":
            recipe = __import__(recipe_name)
            config = f"recipes/configs/{recipe_name}/tiny.yaml"
            from transformers import TrainingArguments

            run = parse(*recipe.ARGUMENTS, args=["--config", config, "--output_dir", "/tmp/unused"])
            training_args = run[TrainingArguments]
            extra = ["--learning_rate", repr(training_args.learning_rate * 1.01)]
        elif change == "max_train_samples":
            extra = ["--max_train_samples", "31"]
        with tempfile.TemporaryDirectory() as folder:
            measured[recipe_name] = golden.first_losses(recipe_name, Path(folder), *extra)
    Path(out).write_text(json.dumps(measured))


def values(losses: dict) -> dict[str, float]:
    return {f"train_losses[{index}]": value for index, value in enumerate(losses["train_losses"])} | {
        "eval_loss": losses["eval_loss"]}


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def rounded_up(value: float) -> float:
    """To one significant digit, upwards: 1.1e-5 → 2e-5."""
    exponent = math.floor(math.log10(value))
    return math.ceil(value / 10**exponent - 1e-9) * 10**exponent


def tolerances(recorded: dict) -> dict:
    """Each pinned value's relative tolerance, in first_losses.json's shape, from the recorded spread."""
    native, by_limit = recorded["measured"]["native"], recorded["measured"]
    derived = {}
    for recipe_name, losses in native.items():
        def tolerance(value: float, index: int | None) -> float:
            spread = max(relative(other[recipe_name]["eval_loss"] if index is None
                                  else other[recipe_name]["train_losses"][index], value) for other in by_limit.values())
            return float(f"{rounded_up(max(FLOAT32_FLOOR, SAFETY_FACTOR * spread)):.0e}")

        derived[recipe_name] = {"train_losses": [tolerance(value, index) for index, value in
                                                 enumerate(losses["train_losses"])],
                                "eval_loss": tolerance(losses["eval_loss"], None)}
    return derived


def write_tolerances() -> None:
    from tests.benchmarks.record import RESULTS
    from tests.test_golden_losses import TOLERANCES

    recorded = json.loads((RESULTS / "golden_spread_values.json").read_text())
    TOLERANCES.write_text(json.dumps(tolerances(recorded), indent=2) + "\n")
    print(f"wrote {TOLERANCES}")


def main() -> None:
    from tests.benchmarks.record import RESULTS, record

    by_limit = {name: measured_in_a_fresh_process(environment) for name, environment in KERNEL_LIMITS.items()}
    by_change = {name: measured_in_a_fresh_process({}, flag) for name, flag in REAL_CHANGES.items()}
    recorded = {"kernel_limits": KERNEL_LIMITS, "measured": by_limit, "real_changes": by_change}
    (RESULTS / "golden_spread_values.json").write_text(json.dumps(recorded, indent=2) + "\n")
    write_tolerances()
    record("golden_spread", per_recipe_summary(recorded))


def past_tolerance(recorded: dict, derived: dict) -> dict[str, dict[str, float]]:
    """For each real change and recipe: how far the change moves the pinned value it moves most, in
    multiples of that value's tolerance (`derived`, first_losses.json's shape)."""
    native = recorded["measured"]["native"]
    moved: dict[str, dict[str, float]] = {}
    for change, by_recipe in recorded["real_changes"].items():
        for recipe_name, losses in native.items():
            limits = [*derived[recipe_name]["train_losses"], derived[recipe_name]["eval_loss"]]
            ratios = [relative(after, before) / limit for (before, after, limit) in
                      zip(values(losses).values(), values(by_recipe[recipe_name]).values(), limits)]
            moved.setdefault(change, {})[recipe_name] = max(ratios)
    return moved


def per_recipe_summary(recorded: dict) -> dict[str, str]:
    """Per recipe: the largest relative spread across instruction sets, and `past_tolerance` per real change."""
    native, moved = recorded["measured"]["native"], past_tolerance(recorded, tolerances(recorded))
    summary = {}
    for recipe_name, losses in native.items():
        spread = max(relative(values(other[recipe_name])[key], value) for other in recorded["measured"].values()
                     for key, value in values(losses).items())
        changes = ", ".join(f"{change} {by_recipe[recipe_name]:.0f}x" for change, by_recipe in moved.items())
        summary[recipe_name] = f"ISA spread <= {spread:.1e}; real changes past the tolerance: {changes}"
    return summary


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        one_measurement(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "")
    elif sys.argv[1:2] == ["--tolerances"]:
        write_tolerances()
    else:
        main()
