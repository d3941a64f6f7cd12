"""The classic per-window QA postprocessing loop, kept as the reference the vectorised one must equal.

Written after the shape of the transformers question-answering example: for every window, the top
n start and top n end logits are tried pair by pair in Python.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def reference_postprocess(contexts, example_index, offsets, start_logits, end_logits, n_best_size=20,
                          max_answer_length=30):
    windows_of = defaultdict(list)
    for window, example in enumerate(example_index):
        windows_of[int(example)].append(window)
    texts, score_diffs = [], []
    for example, context in enumerate(contexts):
        min_null_score, best_score, best_text = None, None, ""
        for window in windows_of[example]:
            starts, ends, window_offsets = start_logits[window], end_logits[window], offsets[window]
            null_score = starts[0] + ends[0]
            if min_null_score is None or null_score < min_null_score:
                min_null_score = null_score
            start_indexes = np.argsort(starts)[-1: -n_best_size - 1: -1].tolist()
            end_indexes = np.argsort(ends)[-1: -n_best_size - 1: -1].tolist()
            for start in start_indexes:
                for end in end_indexes:
                    if window_offsets[start][0] < 0 or window_offsets[end][0] < 0:
                        continue
                    if end < start or end - start + 1 > max_answer_length:
                        continue
                    score = starts[start] + ends[end]
                    if best_score is None or score > best_score:
                        best_score = score
                        best_text = context[window_offsets[start][0]: window_offsets[end][1]]
        texts.append(best_text)
        score_diffs.append(min_null_score - best_score if best_score is not None else np.inf)
    return texts, np.array(score_diffs)
