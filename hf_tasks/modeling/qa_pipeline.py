"""Answer extraction for extractive QA with unanswerable questions, and the pipeline that runs it.

transformers 5.x has no "question-answering" pipeline. `hf_tasks.portable` ships this file with
every QA run folder and names `QuestionAnsweringPipeline` in `config.json`'s `custom_pipelines`, so
that `pipeline("question-answering", model=folder, trust_remote_code=True)` answers exactly as the
recipe does: the same windows, the same best-span search (`postprocess`, which the recipe itself
calls) and the no-answer threshold stored in the config (`null_score_diff_threshold`).

This file imports only numpy, torch and transformers, so it runs where hf_tasks is not installed.
"""

from __future__ import annotations

import numpy as np
from transformers import Pipeline

# Config attributes the pipeline reads: the tuned no-answer threshold and the recipe's window and span settings.
NULL_THRESHOLD_KEY = "null_score_diff_threshold"
ANSWER_SETTINGS_KEY = "qa_answer_settings"
DEFAULT_ANSWER_SETTINGS = {"max_seq_length": 384, "doc_stride": 128, "n_best_size": 20, "max_answer_length": 30}


def _top_k(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest logits of each row, largest first (a partition, then a sort of k)."""
    if k < logits.shape[1]:
        candidates = np.argpartition(logits, -k, axis=1)[:, -k:]
    else:
        candidates = np.broadcast_to(np.arange(logits.shape[1]), logits.shape)
    order = np.argsort(-np.take_along_axis(logits, candidates, axis=1), axis=1, kind="stable")
    return np.take_along_axis(candidates, order, axis=1)


def best_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    n_best_size: int,
    max_answer_length: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best valid (start, end) token span of every window and its score, all windows at once.

    Searches the top `n_best_size` start and end logits of each window, like the classic per-window
    double loop, but as one (windows, n, n) array operation. Windows without a valid span score -inf.
    """
    k = min(n_best_size, start_logits.shape[1])
    rows = np.arange(len(start_logits))[:, None]
    top_starts, top_ends = _top_k(start_logits, k), _top_k(end_logits, k)
    in_context = offsets[:, :, 0] >= 0
    starts, ends = top_starts[:, :, None], top_ends[:, None, :]
    valid = (
        in_context[rows, top_starts][:, :, None]
        & in_context[rows, top_ends][:, None, :]
        & (ends >= starts)
        & (ends - starts + 1 <= max_answer_length)
    )
    scores = start_logits[rows, top_starts][:, :, None] + end_logits[rows, top_ends][:, None, :]
    scores = np.where(valid, scores, -np.inf).reshape(len(start_logits), -1)
    best = scores.argmax(axis=1)
    return top_starts[rows[:, 0], best // k], top_ends[rows[:, 0], best % k], scores[rows[:, 0], best]


def best_answer_spans(
    example_index: np.ndarray,
    offsets: np.ndarray,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> tuple[np.ndarray, np.ndarray]:
    """(examples, 2) character span of every example's best answer ((-1, -1) when none is valid) and its
    null-score difference (null score - best span score).

    `example_index[f]` is the example of window f; the windows of an example are contiguous. An
    example's null score is its lowest [CLS] score over its windows; its span the best over windows.
    """
    span_starts, span_ends, span_scores = best_spans(start_logits, end_logits, offsets, n_best_size, max_answer_length)
    null_scores = start_logits[:, 0] + end_logits[:, 0]
    boundaries = np.flatnonzero(np.diff(example_index)) + 1
    firsts = np.concatenate([[0], boundaries])
    if np.any(np.diff(example_index) < 0):
        raise ValueError("QA windows are not grouped by example; build features with QuestionAnsweringTask.")
    # Sort windows by example, then by score (best first), then by position: the first of each example wins.
    ranked = np.lexsort((np.arange(len(span_scores)), -span_scores, example_index))
    best_window = ranked[firsts]
    best_scores = span_scores[best_window]
    spans = np.stack([offsets[best_window, span_starts[best_window], 0],
                      offsets[best_window, span_ends[best_window], 1]], axis=1)
    spans[~np.isfinite(best_scores)] = -1
    return spans, np.minimum.reduceat(null_scores, firsts) - best_scores


def postprocess(
    contexts: list[str],
    example_index: np.ndarray,
    offsets: np.ndarray,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best_size: int = 20,
    max_answer_length: int = 30,
) -> tuple[list[str], np.ndarray]:
    """Best answer text of every example ("" when no span is valid) and its null-score difference."""
    if len(np.unique(example_index)) != len(contexts):
        raise ValueError("QA windows are not grouped by example; build features with QuestionAnsweringTask.")
    spans, score_diffs = best_answer_spans(example_index, offsets, start_logits, end_logits, n_best_size,
                                           max_answer_length)
    return [context[start:end] if start >= 0 else "" for context, (start, end) in zip(contexts, spans)], score_diffs


class QuestionAnsweringPipeline(Pipeline):
    """Extractive QA over overlapping windows; no answer ("") when null score - best span score exceeds
    the threshold stored with the model (`config.null_score_diff_threshold`, else 0.0).

    `qa(question=..., context=...)` or `qa({"question": ..., "context": ...})` (or a list of such dicts)
    returns {"answer", "start", "end", "null_score_diff"}; "start"/"end" are character offsets in the
    context (both -1 for no answer). Call arguments override the stored settings: `null_score_diff_threshold`,
    `max_seq_length`, `doc_stride`, `n_best_size`, `max_answer_length`.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __call__(self, inputs=None, *, question: str | None = None, context: str | None = None, **kwargs):
        if inputs is None:
            if question is None or context is None:
                raise ValueError("Give question= and context=, or a dict (or list of dicts) with "
                                 "'question' and 'context'.")
            inputs = {"question": question, "context": context}
        return super().__call__(inputs, **kwargs)

    def _sanitize_parameters(self, null_score_diff_threshold=None, **settings):
        unknown = set(settings) - set(DEFAULT_ANSWER_SETTINGS)
        if unknown:
            raise TypeError(f"Unknown arguments {sorted(unknown)}; known: {sorted(DEFAULT_ANSWER_SETTINGS)} and "
                            f"{NULL_THRESHOLD_KEY}.")
        stored = {**DEFAULT_ANSWER_SETTINGS, **(getattr(self.model.config, ANSWER_SETTINGS_KEY, None) or {})}
        chosen = {**stored, **{key: value for key, value in settings.items() if value is not None}}
        if null_score_diff_threshold is None:
            null_score_diff_threshold = getattr(self.model.config, NULL_THRESHOLD_KEY, None)
        preprocess_params = {"max_seq_length": chosen["max_seq_length"], "doc_stride": chosen["doc_stride"]}
        postprocess_params = {"n_best_size": chosen["n_best_size"], "max_answer_length": chosen["max_answer_length"],
                              "null_score_diff_threshold": 0.0 if null_score_diff_threshold is None
                              else float(null_score_diff_threshold)}
        return preprocess_params, {}, postprocess_params

    def preprocess(self, inputs, max_seq_length: int = 384, doc_stride: int = 128):
        if not isinstance(inputs, dict) or not {"question", "context"} <= set(inputs):
            raise ValueError(f"Each input must be a dict with 'question' and 'context'; got {type(inputs).__name__}.")
        encoded = self.tokenizer(
            inputs["question"].lstrip(),
            inputs["context"],
            truncation="only_second",
            max_length=max_seq_length,
            stride=doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding="longest",
            return_tensors="pt",
        )
        offsets = encoded["offset_mapping"].numpy().copy()
        for window in range(len(offsets)):
            outside_context = np.array([sequence != 1 for sequence in encoded.sequence_ids(window)])
            offsets[window][outside_context] = -1
        model_inputs = {name: encoded[name] for name in self.tokenizer.model_input_names if name in encoded}
        return {**model_inputs, "offsets": offsets, "context": inputs["context"]}

    def _forward(self, model_inputs):
        offsets, context = model_inputs.pop("offsets"), model_inputs.pop("context")
        outputs = self.model(**model_inputs)
        return {"start_logits": outputs.start_logits, "end_logits": outputs.end_logits, "offsets": offsets,
                "context": context}

    def postprocess(self, model_outputs, n_best_size: int = 20, max_answer_length: int = 30,
                    null_score_diff_threshold: float = 0.0):
        start_logits = model_outputs["start_logits"].float().numpy()
        end_logits = model_outputs["end_logits"].float().numpy()
        spans, score_diffs = best_answer_spans(np.zeros(len(start_logits), dtype=np.int64), model_outputs["offsets"],
                                               start_logits, end_logits, n_best_size, max_answer_length)
        (start, end), score_diff = spans[0].tolist(), float(score_diffs[0])
        if score_diff > null_score_diff_threshold or start < 0:
            start = end = -1
        answer = model_outputs["context"][start:end] if start >= 0 else ""
        return {"answer": answer, "start": start, "end": end, "null_score_diff": score_diff}
