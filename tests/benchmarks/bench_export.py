"""CPU latency and size of a ParsBERT-sized classifier for serving: PyTorch fp32 vs ONNX Runtime full
fp32, 50% heads pruned fp32, pruned + int8; and the int8 accuracy change on a tiny trained model.

    python -m tests.benchmarks.bench_export [--rounds 5] [--passes 3] [--threads 1] [--seq_length 128]

The model is ParsBERT-sized (12 layers, hidden 768, 100,000-token vocabulary) with random weights:
latency and size do not depend on the weights. 72 of its 144 heads are pruned (random ranking, at
least one head kept per layer), and both models go through `hf_tasks.export` (so every variant is
checked against PyTorch before it is timed). The variants run alternately after a warm-up round
(tests/benchmarks/abba.py): each round times every variant once (the median of `--passes` forward
passes), and each speed-up is a ratio taken within a round, reported as its median over the rounds
with the lowest and highest round.

The accuracy change comes from a real (tiny) run: the FarsTail recipe's sample model trained with 50%
of its heads pruned, exported with --quantize int8, and scored by PyTorch and by the int8 model on the
run's validation rows (export.json's `validation`).

Writes results/export.json and appends a row to results/export.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

from hf_tasks.export import export
from hf_tasks.portable import ship_code
from hf_tasks.surgery import lowest_heads, prune_heads, random_importance
from tests.benchmarks.abba import Ratio, Spread, alternate
from tests.benchmarks.record import record
from tests.caches import use_private_caches

PARSBERT = dict(vocab_size=100_000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                intermediate_size=3072, num_labels=3)


def save_classifier(folder: Path, fraction: float, tokenizer) -> None:
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**PARSBERT)).eval()
    if fraction:
        heads = PARSBERT["num_hidden_layers"] * PARSBERT["num_attention_heads"]
        prune_heads(model, lowest_heads(random_importance(model, seed=0), count=round(fraction * heads)))
    model.save_pretrained(folder)
    ship_code(model, folder)
    tokenizer.save_pretrained(folder)


def batch(size: int, seq_length: int) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(0)
    return {"input_ids": generator.integers(5, PARSBERT["vocab_size"], (size, seq_length), dtype=np.int64),
            "token_type_ids": np.zeros((size, seq_length), dtype=np.int64),
            "attention_mask": np.ones((size, seq_length), dtype=np.int64)}


def seconds_per_pass(run, passes: int):
    """A variant that makes `passes` forward passes and returns their median wall time in seconds."""

    def timed() -> float:
        timings = []
        for _ in range(passes):
            began = time.perf_counter()
            run()
            timings.append(time.perf_counter() - began)
        return statistics.median(timings)

    return timed


def speed_figures(runs: dict, rounds: int, passes: int, prefix: str) -> dict:
    """Milliseconds per pass of every variant and the speed-ups, the first variant being the baseline.

    Each speed-up is taken within a round: over the baseline for every other variant, and the pruned
    int8 model over the full fp32 ONNX one.
    """
    timings = alternate({variant: seconds_per_pass(run, passes) for variant, run in runs.items()}, rounds=rounds)
    baseline, *others = runs
    figures: dict = {f"{prefix}ms_{variant}": Spread.of([1000 * s for s in timings[variant]]) for variant in runs}
    for variant in others:
        figures[f"{prefix}speedup_{variant}_vs_{baseline}"] = Ratio.within_rounds(timings[baseline], timings[variant])
    figures[f"{prefix}speedup_onnx_pruned_int8_vs_onnx_full_fp32"] = Ratio.within_rounds(
        timings["onnx_full_fp32"], timings["onnx_pruned_int8"])
    return figures


def tiny_run_accuracy_change(workdir: Path) -> dict:
    """Train the FarsTail sample model with half its heads pruned, export it with int8, read the check."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "recipes"))
    import farstail
    from hf_tasks.args import parse

    output_dir = workdir / "farstail-prune50"
    arguments = parse(*farstail.ARGUMENTS, args=[
        "--config", "recipes/configs/farstail/tiny.yaml", "--output_dir", str(output_dir), "--use_cpu", "true",
        "--report_to", "none", "--disable_tqdm", "true", "--prune_fraction", "0.5", "--eval_strategy", "no"])
    results = farstail.main(arguments)
    validation = export(output_dir, quantize="int8")["variants"]["int8"]["validation"]
    return {"tiny_eval_accuracy_recipe": round(results["eval_accuracy"], 4), **validation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    use_private_caches("hf_tasks-bench-")
    torch.set_num_threads(args.threads)
    import onnxruntime

    workdir = Path(tempfile.mkdtemp(prefix="bench_export-"))
    try:
        tokenizer = BertTokenizerFast.from_pretrained("hf_tasks/samples/tiny-bert-farstail")
        for name, fraction in (("full", 0.0), ("pruned", 0.5)):
            save_classifier(workdir / name, fraction, tokenizer)
        checks = {"full": export(workdir / "full"), "pruned": export(workdir / "pruned", quantize="int8")}
        files = {"onnx_full_fp32": workdir / "full/onnx/model.onnx",
                 "onnx_pruned_fp32": workdir / "pruned/onnx/model.onnx",
                 "onnx_pruned_int8": workdir / "pruned/onnx/model_int8.onnx"}
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        sessions = {name: onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                    for name, path in files.items()}
        pytorch = BertForSequenceClassification.from_pretrained(workdir / "full", attn_implementation="sdpa").eval()

        def runner(variant: str, inputs: dict[str, np.ndarray]):
            if variant == "pytorch_full_fp32":
                tensors = {name: torch.from_numpy(value) for name, value in inputs.items()}
                return lambda: pytorch(**tensors)
            return lambda: sessions[variant].run(None, inputs)

        variants = ["pytorch_full_fp32", *files]
        setting = f"{args.rounds} rounds x {args.passes} passes"
        defaults = (parser.get_default("rounds"), parser.get_default("passes"))
        if (args.rounds, args.passes) != defaults:
            setting += f" (cut from the defaults {defaults[0]} x {defaults[1]} to fit a busy machine)"
        figures: dict = {"threads": args.threads, "seq_length": args.seq_length, "setting": setting,
                         **{f"size_mb_{name}": round(path.stat().st_size / 2**20, 1) for name, path in files.items()}}
        for name, (folder, exported) in {"onnx_full_fp32": ("full", "fp32"), "onnx_pruned_fp32": ("pruned", "fp32"),
                                         "onnx_pruned_int8": ("pruned", "int8")}.items():
            figures[f"max_abs_diff_vs_pytorch_{name}"] = f"{checks[folder]['variants'][exported]['max_abs_diff']:.1e}"
        with torch.inference_mode():
            for size in args.batch_sizes:
                inputs = batch(size, args.seq_length)
                speed = speed_figures({variant: runner(variant, inputs) for variant in variants}, args.rounds,
                                      args.passes, f"batch_{size}_")
                print(json.dumps({key: value.format() for key, value in speed.items()}, indent=1))
                figures |= speed
        tiny = tiny_run_accuracy_change(workdir)
        figures["tiny_farstail_prune50_accuracy"] = (
            f"{tiny['accuracy_pytorch']:.4f} PyTorch, {tiny['accuracy_onnx']:.4f} int8 "
            f"on {tiny['rows']} validation rows "
            f"(the recipe's eval_accuracy {tiny['tiny_eval_accuracy_recipe']})")
        figures["tiny_farstail_prune50_int8_accuracy_change"] = f"{tiny['accuracy_change']:+.4f}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    record("export", figures)


if __name__ == "__main__":
    main()
