"""Size and inference speed of a BERT-base model with 50% of its attention heads pruned, vs unpruned.

    python -m tests.benchmarks.bench_pruning [--batch_size 8] [--seq_length 128] [--rounds 16] [--device cpu]

The model is ParsBERT-sized (BertConfig defaults with ParsBERT's 100,000-token vocabulary), built
from config with random weights: size and speed do not depend on the weights. The heads to prune are
drawn at random, 72 of 144, at least one kept per layer (`hf_tasks.surgery` as the recipe does it).
Before timing, the pruned model must give the same logits as the unpruned one with those heads gated
to zero; the largest difference is recorded. The two models' forward passes alternate
(tests/benchmarks/abba.py), and the FLOPs torch counts for each bound the speedup pruning can give.
Writes results/pruning.json and appends a row to results/pruning.md.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertForSequenceClassification

from hf_tasks.surgery import HeadGates, lowest_heads, parameter_counts, prune_heads, random_importance
from tests.benchmarks.abba import Ratio, Spread, alternate, seconds
from tests.benchmarks.record import record
from tests.caches import use_private_caches


def forward_pass(model, batch: dict):
    """One forward pass, finished on the device before it returns."""

    def run():
        with torch.inference_mode():
            model(**batch)
        if batch["input_ids"].is_cuda:
            torch.cuda.synchronize()

    return run


def forward_flops(model, batch: dict) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(**batch)
    return counter.get_total_flops()


def saved_megabytes(model) -> float:
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return sum(path.stat().st_size for path in Path(folder).glob("*.safetensors")) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    use_private_caches("hf_tasks-bench-")

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100_000, num_labels=3)
    model = BertForSequenceClassification(config).eval().to(args.device)
    generator = torch.Generator().manual_seed(0)
    batch = {
        "input_ids": torch.randint(5, config.vocab_size, (args.batch_size, args.seq_length), generator=generator),
        "attention_mask": torch.ones(args.batch_size, args.seq_length, dtype=torch.long),
    }
    batch = {key: value.to(args.device) for key, value in batch.items()}

    full_counts = parameter_counts(model)
    full_encoder = sum(p.numel() for p in model.bert.encoder.parameters())
    full_size = saved_megabytes(model)
    full_model = copy.deepcopy(model)

    total_heads = config.num_hidden_layers * config.num_attention_heads
    chosen = lowest_heads(random_importance(model, seed=0), count=round(args.fraction * total_heads))
    gates = HeadGates(model)
    for layer, heads in chosen.items():
        gates.values[layer] = torch.tensor(
            [0.0 if head in heads else 1.0 for head in range(config.num_attention_heads)], device=args.device)
    with torch.inference_mode():
        gated = model(**batch).logits
    gates.remove()
    prune_heads(model, chosen)
    with torch.inference_mode():
        pruned_logits = model(**batch).logits
    max_difference = (pruned_logits - gated).abs().max().item()
    if max_difference > 1e-4:
        raise SystemExit(f"the pruned model does not compute what the gated model computes (max |difference| "
                         f"{max_difference:.2e})")

    pruned_counts = parameter_counts(model)
    pruned_encoder = sum(p.numel() for p in model.bert.encoder.parameters())
    pruned_size = saved_megabytes(model)
    timings = alternate({"full": seconds(forward_pass(full_model, batch)),
                         "pruned": seconds(forward_pass(model, batch))},
                        rounds=args.rounds, warmup=2)
    record("pruning", {
        "device": args.device,
        "threads": torch.get_num_threads() if args.device == "cpu" else "-",
        "batch": f"{args.batch_size}x{args.seq_length}",
        "heads_pruned": f"{sum(len(heads) for heads in chosen.values())}/{total_heads}",
        "params_full": full_counts["total_params"],
        "params_pruned": pruned_counts["total_params"],
        "encoder_params_reduction": f"{1 - pruned_encoder / full_encoder:.1%}",
        "size_mb_full": round(full_size, 1),
        "size_mb_pruned": round(pruned_size, 1),
        "size_reduction": f"{1 - pruned_size / full_size:.1%}",
        "ms_per_batch_full": Spread.of([1000 * s for s in timings["full"]]),
        "ms_per_batch_pruned": Spread.of([1000 * s for s in timings["pruned"]]),
        "speedup": Ratio.within_rounds(timings["full"], timings["pruned"]),
        "flops_ratio_bound": round(forward_flops(full_model, batch) / forward_flops(model, batch), 3),
        "max_abs_logit_difference_vs_gated": f"{max_difference:.1e}",
    })


if __name__ == "__main__":
    main()
