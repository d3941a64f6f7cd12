"""Padding-free classification batches against length-grouped and plain dynamic padding, and the padding the
`--fast_gpu` shape buckets add, on the FarsTail and Constraint length distributions.

    python -m tests.benchmarks.bench_padding_free [--rounds 4] [--steps 12] [--size small]

Lengths: the project's FarsTail and Constraint samples (hf_tasks/samples) tokenised as the recipes do
(pairs `longest_first`, tweets normalised) with the samples' tokenizers, truncated at the seed configs'
max_seq_length (128); batches of the seeds' 32. The held-out real files are not in the repository.
The model: a BERT sequence classifier from config (random weights; `--size small`: 4 layers, hidden
256), trained step by step (forward, backward, AdamW) in float32 on the CPU with one thread, each
variant on the same examples in the order it implies:

- dynamic padding, random order (the Trainer's default): each batch padded to its longest row;
- length-grouped (`--train_sampling_strategy group_by_length`): transformers' LengthGroupedSampler;
- padding-free (`--padding_free`): random order, each batch one flattened row;
- buckets (`--fast_gpu`'s collator, eager here): random order, padded up to multiples of 64.

The figure is real (non-padding) tokens per second; ratios are padding-free / other variant within each
round (tests/benchmarks/abba.py). Writes results/padding_free.json and a row in results/padding_free.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, DataCollatorWithPadding
from transformers.trainer_pt_utils import LengthGroupedSampler

from hf_tasks.modeling.padding_free import enable_padding_free
from hf_tasks.tasks.buckets import ShapeBuckets
from hf_tasks.tasks.text import FlattenedSequences
from hf_tasks.text.tweets import TweetNormalizer
from tests.benchmarks.abba import Ratio, Spread, alternate
from tests.benchmarks.record import record

SAMPLES = Path(__file__).resolve().parents[2] / "hf_tasks" / "samples"
MAX_LENGTH, BATCH = 128, 32
SIZES = {"small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
         "tiny": dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)}


def corpus_features(name: str):
    """The sample's training rows as model features (ids, token types), as the recipe tokenises them, and the
    tokenizer."""
    import pandas as pd

    if name == "farstail":
        tokenizer = AutoTokenizer.from_pretrained(SAMPLES / "tiny-bert-farstail")
        rows = pd.read_csv(SAMPLES / "farstail" / "train.tsv", sep="\t")
        encoded = tokenizer(list(rows["premise"]), list(rows["hypothesis"]), truncation="longest_first",
                            max_length=MAX_LENGTH)
    else:
        tokenizer = AutoTokenizer.from_pretrained(SAMPLES / "tiny-bert-en")
        rows = pd.read_csv(SAMPLES / "constraint" / "train.csv")
        normalize = TweetNormalizer()
        encoded = tokenizer([normalize(text) for text in rows["tweet"]], truncation=True, max_length=MAX_LENGTH)
    return [{"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids), "label": index % 2}
            for index, (ids, types) in enumerate(zip(encoded["input_ids"], encoded["token_type_ids"]))], tokenizer


def batches(features: list[dict], order: list[int], collate, steps: int) -> list[dict]:
    return [collate([features[index] for index in order[start:start + BATCH]])
            for start in range(0, steps * BATCH, BATCH)]


def real_tokens(batch: dict) -> int:
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else batch["input_ids"].numel()


def computed_tokens(batch: dict) -> int:
    return batch["input_ids"].numel()


def trainer_of(model, optimizer, prepared: list[dict]):
    def train() -> dict:
        began = time.perf_counter()
        for batch in prepared:
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - began
        return {"rate": sum(real_tokens(batch) for batch in prepared) / seconds, "seconds": seconds}
    return train


def measure(corpus: str, size: str, steps: int, rounds: int) -> dict:
    features, tokenizer = corpus_features(corpus)
    lengths = np.array([len(row["input_ids"]) for row in features])
    steps = min(steps, len(features) // BATCH)
    generator = torch.Generator().manual_seed(0)
    random_order = torch.randperm(len(features), generator=generator).tolist()
    grouped_order = list(LengthGroupedSampler(BATCH, lengths=lengths.tolist(), generator=generator))
    padded = DataCollatorWithPadding(tokenizer)
    variants = {
        "dynamic": batches(features, random_order, padded, steps),
        "grouped": batches(features, grouped_order, padded, steps),
        "padding_free": batches(features, random_order, FlattenedSequences(), steps),
        "buckets": batches(features, random_order, ShapeBuckets(padded, tokenizer.pad_token_id, MAX_LENGTH), steps),
    }
    for prepared in variants.values():
        for batch in prepared:
            batch["labels"] = batch.pop("label", batch.get("labels"))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=MAX_LENGTH, num_labels=2,
                        attn_implementation="sdpa", **SIZES[size])
    models = {name: BertForSequenceClassification(config) for name in variants}
    enable_padding_free(models["padding_free"])
    runs = alternate({name: trainer_of(models[name], torch.optim.AdamW(models[name].parameters(), lr=1e-5),
                                       prepared) for name, prepared in variants.items()}, rounds=rounds)
    rates = {name: [run["rate"] for run in results] for name, results in runs.items()}
    figures = {
        "corpus": f"{corpus} sample ({len(features)} rows; tokens mean {lengths.mean():.1f}, median "
                  f"{np.median(lengths):.0f}, max {lengths.max()})",
    }
    for name, prepared in variants.items():
        real, computed = sum(real_tokens(batch) for batch in prepared), sum(computed_tokens(b) for b in prepared)
        figures[f"{name}_tokens_per_second"] = Spread.of(rates[name])
        figures[f"{name}_padding_percent"] = round(100 * (1 - real / computed), 1)
    for other in ("dynamic", "grouped", "buckets"):
        figures[f"padding_free_over_{other}"] = Ratio.within_rounds(rates["padding_free"], rates[other])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12, help="batches per timed run")
    parser.add_argument("--size", choices=SIZES, default="small")
    args = parser.parse_args()
    torch.set_num_threads(1)
    figures = {}
    for corpus in ("farstail", "constraint"):
        figures.update({f"{corpus}_{name}": value for name, value in
                        measure(corpus, args.size, args.steps, args.rounds).items()})
    record("padding_free", {"setting": f"BERT-{args.size} classifier from config, fp32 CPU, 1 thread, batch {BATCH}, "
                                       f"max {MAX_LENGTH}, {args.steps} steps per run, {args.rounds} ABBA rounds",
                            **figures})

if __name__ == "__main__":
    main()
