"""QA postprocessing throughput: vectorised `hf_tasks.tasks.qa.postprocess` vs the per-window double loop.

    python -m tests.benchmarks.bench_qa_postprocess [--examples 4000] [--rounds 6]

Both run on the same random logits over PQuAD-like windows (384 tokens, ~1.3 windows per example);
the predictions must be identical. The two alternate (tests/benchmarks/abba.py) after a warm-up
round. Writes results/qa_postprocess.json and appends a row to results/qa_postprocess.md.
"""

from __future__ import annotations

import argparse

import numpy as np

from hf_tasks.tasks.qa import postprocess
from tests.benchmarks.abba import Ratio, Spread, alternate, seconds
from tests.benchmarks.qa_reference import reference_postprocess
from tests.benchmarks.record import record
from tests.caches import use_private_caches


def synthetic_windows(n_examples: int, width: int = 384, seed: int = 0):
    """Random logits over windows of up to three per example. Like windows cut with a stride, each window
    of an example covers a later part of its context (3 characters a token), so a window read with
    another window's offsets gives other text."""
    rng = np.random.default_rng(seed)
    windows_per_example = rng.choice([1, 1, 1, 2, 3], size=n_examples)
    example_index = np.repeat(np.arange(n_examples), windows_per_example)
    window_in_example = np.concatenate([np.arange(count) for count in windows_per_example])
    n_windows = len(example_index)
    question_tokens, stride_tokens = 20, width // 3
    context_chars = 3 * (width + 2 * stride_tokens)
    contexts = ["".join(rng.choice(list("abcdefgh "), size=context_chars)) for _ in range(n_examples)]
    offsets = np.full((n_windows, width, 2), -1, dtype=np.int64)
    token_in_context = window_in_example[:, None] * stride_tokens + np.arange(width - question_tokens - 1)[None]
    offsets[:, question_tokens:-1, 0] = 3 * token_in_context
    offsets[:, question_tokens:-1, 1] = 3 * token_in_context + 2
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
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    use_private_caches("hf_tasks-bench-")
    inputs = synthetic_windows(args.examples)
    fast_texts, fast_diffs = postprocess(*inputs)
    slow_texts, slow_diffs = reference_postprocess(*inputs)
    if fast_texts != slow_texts or not np.allclose(fast_diffs, slow_diffs):
        raise SystemExit("vectorised and reference predictions differ")
    timings = alternate({"vectorised": seconds(lambda: postprocess(*inputs)),
                         "reference_loop": seconds(lambda: reference_postprocess(*inputs))}, rounds=args.rounds)
    record("qa_postprocess", {
        "examples": args.examples,
        "windows": len(inputs[1]),
        "vectorised_examples_per_second": Spread.of([args.examples / s for s in timings["vectorised"]]),
        "reference_examples_per_second": Spread.of([args.examples / s for s in timings["reference_loop"]]),
        "speedup": Ratio.within_rounds(timings["reference_loop"], timings["vectorised"]),
        "identical_predictions": "yes (texts equal, null-score differences allclose)",
    })


if __name__ == "__main__":
    main()
