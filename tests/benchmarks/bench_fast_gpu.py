"""`--fast_gpu`'s shape buckets on the CPU: compiled graphs over one training epoch with and without the
buckets, and the padding the buckets add.

    python -m tests.benchmarks.bench_fast_gpu [--max_seq_length 128] [--batch 8]

Runs `recipes/covid_fakenews.py`'s tiny config (the Constraint sample, 480 tweets) for one epoch with
`torch.compile` through dynamo's `eager` backend (the same graph capture and recompile rules as inductor,
without code generation) and automatic dynamic shapes off, as CUDA graphs need one recording per shape:
once with `--fast_gpu` (buckets of 64 up to --max_seq_length) and once with the same compile settings and
plain dynamic padding. Counts dynamo's compiled graphs and whether it hit its recompile limit (after which
it runs the frame uncompiled), the batch shapes, and real against computed tokens. Writes
results/fast_gpu.json and a row in results/fast_gpu.md. Counts, not timings: one run each.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "recipes"))

import covid_fakenews  # noqa: E402
from hf_tasks.args import parse  # noqa: E402
from hf_tasks.runner import TaskTrainer  # noqa: E402
from hf_tasks.tasks.buckets import bucket_lengths  # noqa: E402
from tests.benchmarks.record import record  # noqa: E402


def epoch(fast_gpu: bool, max_seq_length: int, batch: int) -> dict:
    shapes, real = [], []
    original = TaskTrainer.training_step

    def step(self, model, inputs, num_items_in_batch=None):
        shapes.append(tuple(inputs["input_ids"].shape))
        real.append(inputs["attention_mask"].sum())
        return original(self, model, inputs, num_items_in_batch)

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    TaskTrainer.training_step = step
    try:
        with tempfile.TemporaryDirectory() as folder, torch._dynamo.config.patch(automatic_dynamic_shapes=False):
            arguments = ["--config", str(REPO / "recipes/configs/covid_fakenews/tiny.yaml"), "--output_dir", folder,
                         "--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true",
                         "--max_seq_length", str(max_seq_length), "--num_train_epochs", "1",
                         "--per_device_train_batch_size", str(batch), "--do_eval", "false", "--do_predict", "false",
                         "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
                         "--torch_compile_backend", "eager", "--dataloader_num_workers", "0",
                         "--dataloader_drop_last", "true", "--logging_nan_inf_filter", "false",
                         "--fast_gpu", str(fast_gpu).lower()]
            covid_fakenews.main(parse(*covid_fakenews.ARGUMENTS, args=arguments))
    finally:
        TaskTrainer.training_step = original
    counters = torch._dynamo.utils.counters
    computed = sum(rows * length for rows, length in shapes)
    return {"graphs": counters["stats"]["unique_graphs"],
            "recompile_limit_hit": counters["frames"]["total"] > counters["frames"]["ok"],
            "batch_lengths": len({length for _, length in shapes}),
            "padding_percent": round(100 * (1 - int(sum(real)) / computed), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    buckets, plain = (epoch(fast, args.max_seq_length, args.batch) for fast in (True, False))
    record("fast_gpu", {
        "setting": f"covid_fakenews tiny config, 1 epoch, batch {args.batch}, max_seq_length {args.max_seq_length} "
                   f"(buckets {bucket_lengths(args.max_seq_length)}), dynamo eager backend, no automatic dynamic "
                   "shapes",
        **{f"buckets_{name}": value for name, value in buckets.items()},
        **{f"dynamic_padding_{name}": value for name, value in plain.items()},
    })


if __name__ == "__main__":
    main()
