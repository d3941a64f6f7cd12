"""CPU latency and size of a ParsBERT-sized classifier for serving: PyTorch fp32 vs ONNX Runtime full
fp32, 50% heads pruned fp32, pruned + int8; and the int8 accuracy change on a tiny trained model.

    python -m tests.benchmarks.bench_export [--rounds 5] [--passes 3] [--threads 1] [--seq_length 128]

The model is ParsBERT-sized (12 layers, hidden 768, 100,000-token vocabulary) with random weights:
latency and size do not depend on the weights. 72 of its 144 heads are pruned (random ranking, at
least one head kept per layer), and both models go through `hf_tasks.export` (so every variant is
checked against PyTorch before it is timed). Other developers share this machine, so the variants are
timed in alternating order: each round times every variant once (`--passes` forward passes, median),
the order rotating from round to round, and the table gives each variant's median over the rounds with
its range (min-max). Speed-ups are ratios of those medians.

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
from tests.benchmarks.record import record

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


def timed(run, passes: int) -> float:
    run()  # warm-up
    timings = []
    for _ in range(passes):
        began = time.perf_counter()
        run()
        timings.append(time.perf_counter() - began)
    return statistics.median(timings)


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
    results = farstail.main(*arguments)
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
        figures: dict = {"threads": args.threads, "seq_length": args.seq_length, "rounds": args.rounds,
                         "passes_per_round": args.passes,
                         "size_mb": {name: round(path.stat().st_size / 2**20, 1) for name, path in files.items()},
                         "max_abs_diff_vs_pytorch": {"onnx_full_fp32": checks["full"]["variants"]["fp32"]["max_abs_diff"],
                                                     "onnx_pruned_fp32": checks["pruned"]["variants"]["fp32"]["max_abs_diff"],
                                                     "onnx_pruned_int8": checks["pruned"]["variants"]["int8"]["max_abs_diff"]}}
        with torch.inference_mode():
            for size in args.batch_sizes:
                inputs = batch(size, args.seq_length)
                seconds: dict[str, list[float]] = {variant: [] for variant in variants}
                for round_index in range(args.rounds):
                    shift = round_index % len(variants)
                    for variant in variants[shift:] + variants[:shift]:  # each variant leads in turn
                        seconds[variant].append(timed(runner(variant, inputs), args.passes))
                medians = {variant: statistics.median(values) for variant, values in seconds.items()}
                figures[f"batch_{size}_ms"] = {
                    variant: f"{1000 * medians[variant]:.1f} ({1000 * min(values):.1f}-{1000 * max(values):.1f})"
                    for variant, values in seconds.items()}
                figures[f"batch_{size}_speedup_vs_pytorch_full_fp32"] = {
                    variant: round(medians["pytorch_full_fp32"] / medians[variant], 2) for variant in files}
                figures[f"batch_{size}_speedup_int8_vs_onnx_full_fp32"] = round(
                    medians["onnx_full_fp32"] / medians["onnx_pruned_int8"], 2)
                print(json.dumps({key: figures[key] for key in figures if key.startswith(f"batch_{size}_")}, indent=1))
        figures["tiny_farstail_prune50_int8"] = tiny_run_accuracy_change(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    record("export", figures)


if __name__ == "__main__":
    main()
