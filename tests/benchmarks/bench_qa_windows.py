"""QA preprocessing: windowing throughput and padding cost.

    python -m tests.benchmarks.bench_qa_windows [--examples 2000] [--rounds 8]

1. Windowing throughput (examples/s) of `QuestionAnsweringTask.tokenize_windows` against the
   classic preprocessing of the transformers QA example (padding every window to max_length, then a
   Python walk over the offsets to find the answer tokens), re-implemented here, on the same
   tokenizer and data, alternating (tests/benchmarks/abba.py). Both must give the same start/end labels.
2. Tokens the model processes per epoch: our windows (384, stride 128) with dynamic padding and
   length-grouped batches, versus padding every 512-token window to 512 as the seed notebooks did.
The corpus is the project's Persian PQuAD-style generator with contexts of ~130 words.
Writes results/qa_windows.json and appends a row to results/qa_windows.md.
"""

from __future__ import annotations

import argparse
import random

import numpy as np
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer
from transformers.trainer_pt_utils import LengthGroupedSampler

from hf_tasks.options import DataArguments
from hf_tasks.samples.pquad import make_paragraph
from hf_tasks.tasks.qa import QAArguments, QuestionAnsweringTask
from tests.benchmarks.abba import Ratio, Spread, alternate, seconds
from tests.benchmarks.record import record
from tests.caches import use_private_caches

TOKENIZER = "hf_tasks/samples/tiny-bert-fa"


def corpus(n_examples: int, seed: int = 0) -> Dataset:
    """Questions over contexts of three joined biographies (~130 words), answers kept in place."""
    rng = random.Random(seed)
    rows = []
    while len(rows) < n_examples:
        paragraphs = [make_paragraph(rng, f"p{len(rows)}-{i}") for i in range(3)]
        offset = rng.randrange(3)  # which biography the questions are about
        before = " ".join(p["context"] for p in paragraphs[:offset])
        shift = len(before) + (1 if before else 0)
        context = " ".join(p["context"] for p in paragraphs)
        for qa in paragraphs[offset]["qas"]:
            answers = qa["answers"][:1]
            rows.append({"id": f"{qa['id']}-{len(rows)}", "context": context, "question": qa["question"],
                         "answers": {"text": [a["text"] for a in answers],
                                     "answer_start": [a["answer_start"] + shift for a in answers]}})
    return Dataset.from_list(rows[:n_examples])


def classic_windows(tokenizer, examples: dict, max_length: int, stride: int) -> dict:
    """The transformers-example style: pad to max_length, walk the offsets in Python."""
    encoded = tokenizer(examples["question"], examples["context"], truncation="only_second", max_length=max_length,
                        stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                        padding="max_length")
    sample_of_window = encoded.pop("overflow_to_sample_mapping")
    starts, ends = [], []
    for window, offsets in enumerate(encoded.pop("offset_mapping")):
        sequence_ids = encoded.sequence_ids(window)
        answers = examples["answers"][sample_of_window[window]]
        if not answers["answer_start"]:
            starts.append(0)
            ends.append(0)
            continue
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        first = 0
        while sequence_ids[first] != 1:
            first += 1
        last = len(encoded["input_ids"][window]) - 1
        while sequence_ids[last] != 1:
            last -= 1
        if not (offsets[first][0] <= start_char and offsets[last][1] >= end_char):
            starts.append(0)
            ends.append(0)
            continue
        while first < len(offsets) and offsets[first][0] <= start_char:
            first += 1
        starts.append(first - 1)
        while offsets[last][1] >= end_char:
            last -= 1
        ends.append(last + 1)
    encoded["start_positions"], encoded["end_positions"] = starts, ends
    return encoded


def tokens_per_epoch(lengths: list[int], batch_size: int, grouped: bool, seed: int = 0) -> int:
    """Tokens a model sees in one epoch when each batch is padded to its longest window."""
    if grouped:
        import torch

        generator = torch.Generator().manual_seed(seed)
        order = list(LengthGroupedSampler(batch_size, lengths=lengths, generator=generator))
    else:
        order = np.random.default_rng(seed).permutation(len(lengths)).tolist()
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    use_private_caches("hf_tasks-bench-")
    data = corpus(args.examples)
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    task = QuestionAnsweringTask(DatasetDict(), tokenizer, DataArguments(max_seq_length=384),
                                 QAArguments(doc_stride=128))
    batch = data[:]

    def windows_ours():
        return task.tokenize_windows(batch, list(range(len(data))), keep_offsets=False)

    def windows_classic():
        return classic_windows(tokenizer, batch, 384, 128)

    ours, classic = windows_ours(), windows_classic()
    if ours["start_positions"] != classic["start_positions"] or ours["end_positions"] != classic["end_positions"]:
        raise SystemExit("windowing labels differ from the classic preprocessing")
    timings = alternate({"ours": seconds(windows_ours), "classic": seconds(windows_classic)}, rounds=args.rounds)
    our_lengths = [len(ids) for ids in ours["input_ids"]]
    seed_task = QuestionAnsweringTask(DatasetDict(), tokenizer, DataArguments(max_seq_length=512),
                                      QAArguments(doc_stride=128))
    seed_windows = len(seed_task.tokenize_windows(batch, list(range(len(data))), keep_offsets=False)["input_ids"])
    padded_512 = 512 * seed_windows
    grouped = tokens_per_epoch(our_lengths, args.batch_size, grouped=True)
    random_order = tokens_per_epoch(our_lengths, args.batch_size, grouped=False)
    record("qa_windows", {
        "examples": args.examples,
        "mean_context_words": round(float(np.mean([len(c.split()) for c in data["context"]])), 1),
        "ours_examples_per_second": Spread.of([args.examples / s for s in timings["ours"]]),
        "classic_examples_per_second": Spread.of([args.examples / s for s in timings["classic"]]),
        "windowing_speedup": Ratio.within_rounds(timings["classic"], timings["ours"]),
        "tokens_padded_to_512": padded_512,
        "tokens_dynamic_random_order": random_order,
        "tokens_dynamic_length_grouped": grouped,
        "padding_saving_vs_512": round(padded_512 / grouped, 2),
    })


if __name__ == "__main__":
    main()
