"""Start-up time of a QA run: preprocessing into an empty cache (a first run) vs reading the cache (a rerun).

    python -m tests.benchmarks.bench_startup [--paragraphs 4000] [--rounds 4]

Writes a PQuAD-format training file of the project's Persian generator and builds the task's
features with fresh task objects, as separate runs would: a cold build into a new, empty
preprocessing cache, and a warm build from a cache filled beforehand. The two alternate
(tests/benchmarks/abba.py), and every cache is private to this run, so a rerun of the benchmark
never times two cached builds. Writes results/startup.json and appends a row to results/startup.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import datasets.config
from transformers import AutoTokenizer, TrainingArguments

from hf_tasks.options import DataArguments
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.data import squad
from hf_tasks.samples.pquad import make_split
from hf_tasks.tasks.qa import QAArguments, QuestionAnsweringTask
from tests.benchmarks.abba import Ratio, Spread, alternate, seconds
from tests.benchmarks.record import record
from tests.caches import use_private_caches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    use_private_caches("hf_tasks-bench-")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        train = folder / "train.json"
        train.write_text(json.dumps(make_split(args.paragraphs, seed=7, prefix="b"), ensure_ascii=False))
        training_args = TrainingArguments(output_dir=str(folder / "out"), use_cpu=True, report_to="none")
        tokenizer = AutoTokenizer.from_pretrained("hf_tasks/samples/tiny-bert-fa")
        cold_builds = iter(range(args.rounds + 1))

        def build(cache: Path) -> int:
            datasets.config.HF_DATASETS_CACHE = cache
            data_args = DataArguments(train_file=str(train), max_seq_length=384)
            task = QuestionAnsweringTask(squad.load(data_args, bad_rows=BadRows(False)), tokenizer, data_args,
                                         QAArguments())
            return len(task.features(training_args)["train"])

        def cold() -> int:
            cache = folder / f"cold-{next(cold_builds)}"
            if cache.exists():
                raise RuntimeError(f"{cache} exists: a cold build must start from an empty cache")
            return build(cache)

        windows = build(folder / "warm")  # fills the cache the warm builds read
        timings = alternate({"cold": seconds(cold), "warm": seconds(lambda: build(folder / "warm"))},
                            rounds=args.rounds)
    record("startup", {
        "questions": args.paragraphs * 5,
        "windows": windows,
        "first_run_seconds": Spread.of(timings["cold"]),
        "second_run_seconds": Spread.of(timings["warm"]),
        "speedup": Ratio.within_rounds(timings["cold"], timings["warm"]),
    })


if __name__ == "__main__":
    main()
