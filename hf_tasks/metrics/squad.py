"""SQuAD v2 exact match and F1, computed locally, with English or Persian answer normalisation.

English follows the official SQuAD v2 evaluation script (lower-case, drop punctuation and the
articles a/an/the, collapse whitespace); Persian first applies `normalize_persian`, so that ي/ی,
ZWNJ and Persian/ASCII digits do not decide a match. Keys and numbers match the official script.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from typing import Mapping, Sequence

import numpy as np

from hf_tasks.text.persian import normalize_persian

LANGUAGES = ("en", "fa")
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def _is_punctuation(char: str) -> bool:
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def normalize_answer(text: str, language: str = "en") -> str:
    """The answer text as it is compared: see the module docstring for each language."""
    if language == "en":
        text = "".join(char for char in text.lower() if char not in _ASCII_PUNCTUATION)
        text = _ARTICLES.sub(" ", text)
    elif language == "fa":
        text = "".join(char for char in normalize_persian(text).lower() if not _is_punctuation(char))
    else:
        raise ValueError(f"Unknown answer language {language!r}; use one of {LANGUAGES}.")
    return " ".join(text.split())


def _token_f1(predicted: list[str], gold: list[str]) -> float:
    if not predicted or not gold:
        return float(predicted == gold)
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str, language: str = "en") -> float:
    """1.0 when the normalised texts are equal, else 0.0."""
    return float(normalize_answer(prediction, language) == normalize_answer(gold, language))


def f1(prediction: str, gold: str, language: str = "en") -> float:
    """Bag-of-tokens F1 of the normalised texts; two empty texts score 1, one empty text 0."""
    return _token_f1(normalize_answer(prediction, language).split(), normalize_answer(gold, language).split())


def _question_scores(prediction: str, golds: Sequence[str], language: str) -> tuple[float, float, bool]:
    """Best exact match and F1 over the gold answers, and whether the question has an answer."""
    predicted = normalize_answer(prediction, language).split()
    # As in the official script, a gold answer that normalises to nothing does not count; a
    # question left without gold answers is unanswerable and its only gold is "".
    gold_tokens = [tokens for tokens in (normalize_answer(gold, language).split() for gold in golds) if tokens]
    if not gold_tokens:
        return float(not predicted), float(not predicted), False
    exact = max(float(tokens == predicted) for tokens in gold_tokens)
    return exact, max(_token_f1(predicted, tokens) for tokens in gold_tokens), True


def _raw_scores(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], language: str
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Question ids, exact and F1 per question (no threshold applied), and has-answer flags."""
    if not references:
        raise ValueError("No questions to score: the references are empty.")
    missing = [question for question in references if question not in predictions]
    if missing:
        raise ValueError(
            f"No prediction for {len(missing)} of {len(references)} questions, e.g. id {missing[0]!r}; "
            "every question needs a prediction (\"\" for no answer)."
        )
    unknown = [question for question in predictions if question not in references]
    if unknown:
        raise ValueError(f"Predictions for {len(unknown)} ids without references, e.g. {unknown[0]!r}.")
    ids = list(references)
    scores = []
    for question in ids:
        golds = references[question]
        if isinstance(golds, str):
            raise ValueError(f"References of {question!r} must be a list of answer texts, got the string {golds!r}.")
        scores.append(_question_scores(predictions[question], golds, language))
    exact, token_f1, has_answer = zip(*scores)
    return ids, np.array(exact, dtype=float), np.array(token_f1, dtype=float), np.array(has_answer, dtype=bool)


def _eval_dict(exact: np.ndarray, token_f1: np.ndarray, has_answer: np.ndarray) -> dict[str, float]:
    scores: dict[str, float] = {}
    for group, members in (("", np.ones_like(has_answer)), ("HasAns_", has_answer), ("NoAns_", ~has_answer)):
        count = int(members.sum())
        if group and not count:
            continue
        scores[f"{group}exact"] = 100.0 * float(exact[members].sum()) / count if count else 0.0
        scores[f"{group}f1"] = 100.0 * float(token_f1[members].sum()) / count if count else 0.0
        scores[f"{group}total"] = count
    return scores


def _null_sweep(values: np.ndarray, answered_scores: np.ndarray, has_answer: np.ndarray) -> tuple[float, float | None]:
    """Best total score over thresholds t, where a question is answered iff its value <= t.

    One sort and a cumulative sum instead of rescoring every threshold. Equal values are one step
    (no threshold separates them), and only finite values are candidates. Returns the best total
    and the winning value, or None when answering only the -inf questions is best. Unlike the
    official loop, a prediction that normalises to nothing (e.g. "the") is scored as the "" it is.
    """
    null_scores = (~has_answer).astype(float)  # "" is right exactly for the unanswerable questions
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    totals = null_scores.sum() + np.cumsum(answered_scores[order] - null_scores[order])
    below_all = int(np.sum(ordered == -np.inf))
    best_total = totals[below_all - 1] if below_all else float(null_scores.sum())
    step_ends = np.flatnonzero(np.isfinite(ordered) & np.append(ordered[1:] != ordered[:-1], True))
    if step_ends.size:
        candidates = totals[step_ends]
        # Float sums of F1 differ in the last bits; a step must beat the best by more than that.
        if candidates.max() > best_total + 1e-9:
            first_best = step_ends[np.flatnonzero(candidates >= candidates.max() - 1e-9)[0]]
            return float(totals[first_best]), float(ordered[first_best])
    return float(best_total), None


def _values_of(name: str, values: Mapping[str, float], ids: list[str]) -> np.ndarray:
    missing = [question for question in ids if question not in values]
    if missing:
        raise ValueError(f"{name} has no value for {len(missing)} questions, e.g. id {missing[0]!r}.")
    array = np.array([values[question] for question in ids], dtype=float)
    if np.isnan(array).any():
        raise ValueError(f"{name} is NaN for question {ids[int(np.flatnonzero(np.isnan(array))[0])]!r}.")
    return array


def squad_v2_scores(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    language: str = "en",
    no_answer_probabilities: Mapping[str, float] | None = None,
    no_answer_threshold: float = 1.0,
) -> dict[str, float]:
    """The official SQuAD v2 numbers: exact/f1 (percent) and total, overall and per HasAns/NoAns group.

    `references` maps each question id to its gold answer texts (empty for unanswerable). With
    `no_answer_probabilities`, a question whose probability exceeds `no_answer_threshold` counts as
    answered "", and `best_exact`/`best_f1` with their thresholds are added (the official search).
    """
    ids, exact, token_f1, has_answer = _raw_scores(predictions, references, language)
    if no_answer_probabilities is None:
        return _eval_dict(exact, token_f1, has_answer)
    probabilities = _values_of("no_answer_probabilities", no_answer_probabilities, ids)
    predicted_null = probabilities > no_answer_threshold
    null_scores = (~has_answer).astype(float)
    scores = _eval_dict(
        np.where(predicted_null, null_scores, exact), np.where(predicted_null, null_scores, token_f1), has_answer
    )
    for name, raw in (("exact", exact), ("f1", token_f1)):
        best_total, threshold = _null_sweep(probabilities, raw, has_answer)
        scores[f"best_{name}"] = 100.0 * best_total / len(ids)
        # The official script reports 0.0 when predicting no answer everywhere is best.
        scores[f"best_{name}_thresh"] = 0.0 if threshold is None else threshold
    return scores


def best_null_threshold(
    score_diffs: Mapping[str, float],
    best_texts: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    language: str = "en",
) -> tuple[float, dict[str, float]]:
    """The threshold on score_diff (null score - best span score) that maximises F1, and the scores at it.

    A question predicts "" when its score_diff is greater than the threshold, else its best span
    text. Ties in F1 go to the lowest threshold. +inf (no valid span) always predicts "".
    """
    ids, exact, token_f1, has_answer = _raw_scores(best_texts, references, language)
    diffs = _values_of("score_diffs", score_diffs, ids)
    _, threshold = _null_sweep(diffs, token_f1, has_answer)
    if threshold is None:
        # Predicting "" wherever possible is best: any value below every finite score_diff does that.
        finite = diffs[np.isfinite(diffs)]
        threshold = float(finite.min()) - 1.0 if finite.size else 0.0
    answered = diffs <= threshold
    null_scores = (~has_answer).astype(float)
    scores = _eval_dict(
        np.where(answered, exact, null_scores), np.where(answered, token_f1, null_scores), has_answer
    )
    return threshold, scores
