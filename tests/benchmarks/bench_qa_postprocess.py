"""QA postprocessing throughput: vectorised `hf_tasks.tasks.qa.postprocess` vs the per-window double loop.

    python tests/benchmarks/bench_qa_postprocess.py [--examples 4000]

Both run on the same random logits over PQuAD-like windows (384 tokens, ~1.3 windows per example);
the predictions must be identical. Writes results/qa_postprocess.json and appends a row to
results/qa_postprocess.md.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hf_tasks.tasks.qa import postprocess
from tests.benchmarks.qa_reference import reference_postprocess
from tests.benchmarks.record import record


def synthetic_windows(n_examples: int, width: int = 384, seed: int = 0):
    rng = np.random.default_rng(seed)
    windows_per_example = rng.choice([1, 1, 1, 2, 3], size=n_examples)
    example_index = np.repeat(np.arange(n_examples), windows_per_example)
    n_windows = len(example_index)
    context_chars = 1200
    contexts = ["".join(rng.choice(list("abcdefgh "), size=context_chars)) for _ in range(n_examples)]
    offsets = np.full((n_windows, width, 2), -1, dtype=np.int64)
    question_tokens = 20
    starts = np.arange(width - question_tokens - 1) * 3
    offsets[:, question_tokens:-1, 0] = starts
    offsets[:, question_tokens:-1, 1] = starts + 2
    lengths = rng.integers(width // 2, width, size=n_windows)
    # float32, as the Trainer gathers them.
    start_logits = rng.normal(size=(n_windows, width)).astype(np.float32)
    end_logits = rng.normal(size=(n_windows, width)).astype(np.float32)
    for window, length in enumerate(lengths):  # dynamic padding: logits past the window are -100
        offsets[window, length:] = -1
        start_logits[window, length:] = end_logits[window, length:] = -100.0
    return contexts, example_index, offsets, start_logits, end_logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=4000)
    args = parser.parse_args()
    inputs = synthetic_windows(args.examples)
    timings = {}
    for name, function in (("vectorised", postprocess), ("reference_loop", reference_postprocess)):
        seconds = []
        for _ in range(3):  # best of three: the first call also pays for imports and caches
            began = time.perf_counter()
            output = function(*inputs)
            seconds.append(time.perf_counter() - began)
        timings[name] = (output, min(seconds))
    (fast_texts, fast_diffs), fast_seconds = timings["vectorised"]
    (slow_texts, slow_diffs), slow_seconds = timings["reference_loop"]
    identical = fast_texts == slow_texts and np.allclose(fast_diffs, slow_diffs)
    if not identical:
        raise SystemExit("vectorised and reference predictions differ")
    record("qa_postprocess", {
        "examples": args.examples,
        "windows": len(inputs[1]),
        "vectorised_examples_per_second": round(args.examples / fast_seconds, 1),
        "reference_examples_per_second": round(args.examples / slow_seconds, 1),
        "speedup": round(slow_seconds / fast_seconds, 1),
        "identical_predictions": identical,
    })


if __name__ == "__main__":
    main()
