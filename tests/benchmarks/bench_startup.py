"""Start-up time of a QA run: preprocessing on the first run vs reading the cache on the second.

    python -m tests.benchmarks.bench_startup [--paragraphs 4000]

Writes a PQuAD-format training file of the project's Persian generator, builds the task's features
twice with fresh task objects (as two runs would) and times each. Writes results/startup.json and
appends a row to results/startup.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from transformers import AutoTokenizer, TrainingArguments

from hf_tasks.args import DataArguments
from hf_tasks.samples.pquad import make_split
from hf_tasks.tasks.qa import QAArguments, QuestionAnsweringTask
from tests.benchmarks.record import record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        train = Path(folder) / "train.json"
        train.write_text(json.dumps(make_split(args.paragraphs, seed=7, prefix="b"), ensure_ascii=False))
        training_args = TrainingArguments(output_dir=folder, use_cpu=True)
        tokenizer = AutoTokenizer.from_pretrained("hf_tasks/samples/tiny-bert-fa")
        seconds = []
        for _ in range(2):
            began = time.perf_counter()
            task = QuestionAnsweringTask(DataArguments(train_file=str(train), max_seq_length=384), QAArguments(),
                                         tokenizer)
            windows = len(task.features(training_args)["train"])
            seconds.append(time.perf_counter() - began)
    record("startup", {
        "questions": args.paragraphs * 5,
        "windows": windows,
        "first_run_seconds": round(seconds[0], 2),
        "second_run_seconds": round(seconds[1], 2),
        "speedup": round(seconds[0] / seconds[1], 1),
    })


if __name__ == "__main__":
    main()
