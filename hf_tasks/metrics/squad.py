"""SQuAD v2 exact match and F1, computed locally, with English or Persian answer normalisation.

`squad_v2_scores` follows the official SQuAD v2 evaluation algorithm: its keys, the HasAns/NoAns
grouping (by the raw gold answers), the no-answer threshold and the best_exact/best_f1 search.
English normalisation is the official one (lower-case, drop ASCII punctuation and the articles
a/an/the, collapse whitespace). Persian mode is our extension: it first applies
`normalize_persian`, so that ي/ی, ZWNJ and Persian/ASCII digits do not decide a match, drops all
Unicode punctuation and keeps every word; the algorithm around it is the same.
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


def question_scores(prediction: str, golds: Sequence[str], language: str) -> tuple[float, float]:
    """Best exact match and F1 of `prediction` over the gold answers.

    As in the official script, gold answers that normalise to nothing are dropped, and a question
    left without any is scored against "" alone.
    """
    predicted = normalize_answer(prediction, language).split()
    gold_tokens = [tokens for tokens in (normalize_answer(gold, language).split() for gold in golds) if tokens]
    gold_tokens = gold_tokens or [[]]
    return (max(float(tokens == predicted) for tokens in gold_tokens),
            max(_token_f1(predicted, tokens) for tokens in gold_tokens))


def _raw_scores(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], language: str
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Question ids, exact and F1 per question (no threshold applied), and has-answer flags.

    A question has an answer when its raw gold list is not empty, as in the official script, even
    if every gold answer normalises to nothing (its scores are then those of "").
    """
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
        scores.append(question_scores(predictions[question], golds, language))
    exact, token_f1 = (np.array(column, dtype=float) for column in zip(*scores))
    has_answer = np.array([len(references[question]) > 0 for question in ids], dtype=bool)
    return ids, exact, token_f1, has_answer


def per_question_scores(
    predictions: Mapping[str, str], references: Mapping[str, Sequence[str]], language: str = "en"
) -> dict[str, tuple[bool, float, float]]:
    """Each question's (has answer, exact, F1) as the official algorithm scores it (0..1, no threshold):
    `squad_v2_scores`' exact and f1 are 100 times their means, so a later analysis can resample questions."""
    ids, exact, token_f1, has_answer = _raw_scores(predictions, references, language)
    return {question: (bool(answerable), float(em), float(f1_score))
            for question, answerable, em, f1_score in zip(ids, has_answer, exact, token_f1)}


def _percent(values: np.ndarray) -> float:
    # Summed one by one in question order, as the official script does, so the figures agree to the last bit.
    return 100.0 * sum(values.tolist()) / len(values)


def _eval_dict(exact: np.ndarray, token_f1: np.ndarray, has_answer: np.ndarray) -> dict[str, float]:
    scores: dict[str, float] = {}
    for group, members in (("", np.ones_like(has_answer)), ("HasAns_", has_answer), ("NoAns_", ~has_answer)):
        if not members.any():
            continue
        scores[f"{group}exact"] = _percent(exact[members])
        scores[f"{group}f1"] = _percent(token_f1[members])
        scores[f"{group}total"] = int(members.sum())
    return scores


def _official_best(
    order: np.ndarray, probabilities: np.ndarray, raw: np.ndarray, has_answer: np.ndarray, answered: np.ndarray
) -> tuple[float, float]:
    """The official search for the best no-answer probability threshold: (best score in percent, threshold).

    Start from "no answer everywhere" (the unanswerable count), then answer questions one at a time in
    `order` (ascending probability): an answerable one adds its raw score, an unanswerable one loses
    1 if its prediction is a non-empty string (even one that normalises to nothing, such as "the").
    The first question at which the running total peaks above the start gives the threshold, else 0.0.
    """
    change = np.where(has_answer, raw, -answered.astype(float))[order]
    start = float((~has_answer).sum())
    # A cumulative sum adds in sequence, like the official loop, so totals and ties are the same.
    totals = np.cumsum(np.concatenate([[start], change]))[1:]
    peak = int(np.argmax(totals))
    if totals[peak] > start:
        return 100.0 * totals[peak] / len(raw), float(probabilities[order[peak]])
    return 100.0 * start / len(raw), 0.0


def _null_sweep(values: np.ndarray, answered_scores: np.ndarray, null_scores: np.ndarray) -> tuple[float, float | None]:
    """Best total score over thresholds t, where a question is answered iff its value <= t.

    `null_scores` are the questions' scores when they predict "". One sort and a cumulative sum
    instead of rescoring every threshold. Equal values are one step (no threshold separates them),
    and only finite values are candidates. Returns the best total and the winning value, or None
    when answering only the -inf questions is best.
    """
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
    answered "" (right exactly when its gold list is empty), and `best_exact`/`best_f1` with their
    thresholds are added by the official search; questions with equal probabilities are taken in
    the mapping's order, as the official script takes them in its probability file's order. One difference:
    a missing prediction is an error here, where the official script skips the question.
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
    position = {question: index for index, question in enumerate(ids)}
    in_mapping_order = np.array([position[question] for question in no_answer_probabilities if question in position])
    order = in_mapping_order[np.argsort(probabilities[in_mapping_order], kind="stable")]
    answered = np.array([predictions[question] != "" for question in ids])
    for name, raw in (("exact", exact), ("f1", token_f1)):
        scores[f"best_{name}"], scores[f"best_{name}_thresh"] = _official_best(
            order, probabilities, raw, has_answer, answered
        )
    return scores


def best_null_threshold(
    score_diffs: Mapping[str, float],
    best_texts: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    language: str = "en",
) -> tuple[float, dict[str, float]]:
    """The threshold on score_diff (null score - best span score) that maximises F1, and the scores at it.

    A question predicts "" when its score_diff is greater than the threshold, else its best span
    text; the scores are `squad_v2_scores` of those answers. Ties in F1 go to the lowest threshold.
    +inf (no valid span) always predicts "". Unlike the official search over probabilities, equal
    values move together (no threshold separates them) and an answer that normalises to nothing
    counts as the "" it scores as, since these answers are what the model will predict.
    """
    ids, exact, token_f1, has_answer = _raw_scores(best_texts, references, language)
    diffs = _values_of("score_diffs", score_diffs, ids)
    null_exact, null_f1 = (np.array(column, dtype=float) for column in zip(
        *(question_scores("", references[question], language) for question in ids)))
    _, threshold = _null_sweep(diffs, token_f1, null_f1)
    if threshold is None:
        # Predicting "" wherever possible is best: any value below every finite score_diff does that.
        finite = diffs[np.isfinite(diffs)]
        threshold = float(finite.min()) - 1.0 if finite.size else 0.0
    answered = diffs <= threshold
    scores = _eval_dict(np.where(answered, exact, null_exact), np.where(answered, token_f1, null_f1), has_answer)
    return threshold, scores
