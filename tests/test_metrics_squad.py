import math
import random
import re
import string
from collections import Counter

import numpy as np
import pytest

from hf_tasks.metrics.squad import best_null_threshold, exact_match, f1, normalize_answer, squad_v2_scores


def test_english_normalisation_is_the_official_one():
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple, a pear and THE plum.") == "apple pear and plum"
    assert normalize_answer("Theory of Anne") == "theory of anne"  # articles only as whole words
    assert normalize_answer("") == ""


def test_exact_match_and_f1_by_hand():
    assert exact_match("an apple", "Apple.") == 1.0
    assert exact_match("apples", "apple") == 0.0
    assert f1("cat cat cat", "cat") == pytest.approx(0.5)  # 1 shared token: P 1/3, R 1
    assert f1("dog and cat", "a cat, a dog") == pytest.approx(0.8)  # P 2/3, R 1
    assert f1("", "") == 1.0
    assert f1("the", "") == 1.0  # "the" normalises to nothing
    assert f1("", "Paris") == 0.0 and f1("Paris", "") == 0.0
    assert f1("Paris", "London") == 0.0


def test_unknown_language_is_an_error():
    with pytest.raises(ValueError, match="'de'"):
        normalize_answer("x", "de")


# Worked by hand (max over golds):
#   q1 exact 1, F1 1; q2 exact 0, F1 max(1/2, 2/3); q3 (no answer, predicted "") 1, 1;
#   q4 (a gold "" that normalises to nothing: scored against "", grouped as HasAns since its raw
#   gold list is not empty; predicted text) 0, 0; q5 (answerable, predicted "") 0, 0; q6 exact 0, F1 0.8.
PREDICTIONS = {
    "q1": "eiffel tower.",
    "q2": "the Broncos won",
    "q3": "",
    "q4": "Paris",
    "q5": "",
    "q6": "dog and cat",
}
REFERENCES = {
    "q1": ["The Eiffel Tower"],
    "q2": ["Denver Broncos", "Broncos"],
    "q3": [],
    "q4": [""],
    "q5": ["1889", "in 1889"],
    "q6": ["a cat, a dog"],
}


def test_squad_v2_scores_by_hand():
    scores = squad_v2_scores(PREDICTIONS, REFERENCES)
    assert list(scores) == [
        "exact", "f1", "total", "HasAns_exact", "HasAns_f1", "HasAns_total", "NoAns_exact", "NoAns_f1", "NoAns_total",
    ]
    assert scores["total"] == 6
    assert scores["exact"] == pytest.approx(100 * 2 / 6)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3 + 1 + 0 + 0 + 0.8) / 6)
    assert scores["HasAns_total"] == 5 and scores["NoAns_total"] == 1
    assert scores["HasAns_exact"] == pytest.approx(20.0)
    assert scores["HasAns_f1"] == pytest.approx(100 * (1 + 2 / 3 + 0 + 0 + 0.8) / 5)
    assert scores["NoAns_exact"] == pytest.approx(100.0)
    assert scores["NoAns_f1"] == pytest.approx(100.0)


def test_groups_only_when_present():
    scores = squad_v2_scores({"a": "x"}, {"a": ["x"]})
    assert scores == {"exact": 100.0, "f1": 100.0, "total": 1, "HasAns_exact": 100.0, "HasAns_f1": 100.0,
                      "HasAns_total": 1}
    assert "HasAns_total" not in squad_v2_scores({"a": ""}, {"a": []})


def test_missing_prediction_names_the_id():
    with pytest.raises(ValueError, match="'q5'"):
        squad_v2_scores({key: value for key, value in PREDICTIONS.items() if key != "q5"}, REFERENCES)
    with pytest.raises(ValueError, match="'extra'"):
        squad_v2_scores({**PREDICTIONS, "extra": "x"}, REFERENCES)
    with pytest.raises(ValueError, match="list of answer texts"):
        squad_v2_scores({"a": "x"}, {"a": "x"})


def test_persian_matches():
    assert exact_match("علي", "علی", "fa") == 1.0
    assert exact_match("كتاب‌ها", "کتابها", "fa") == 1.0  # Arabic kaf and ZWNJ
    assert exact_match("سال ۱۳۹۹", "سال 1399", "fa") == 1.0
    assert exact_match("٢٠", "۲۰", "fa") == 1.0
    assert exact_match("«تهران»،", "تهران", "fa") == 1.0
    assert exact_match("BERT", "bert", "fa") == 1.0
    assert exact_match("علي", "علی", "en") == 0.0  # English rules leave the letters alone
    # No article removal in Persian mode.
    assert exact_match("the book", "book", "en") == 1.0
    assert exact_match("the book", "book", "fa") == 0.0
    assert f1("دانشگاه صنعتی شریف", "دانشگاه تهران", "fa") == pytest.approx(0.4)  # P 1/3, R 1/2
    scores = squad_v2_scores({"1": "مدرسة", "2": ""}, {"1": ["مدرسه"], "2": []}, language="fa")
    assert scores["exact"] == 100.0


# Threshold search worked by hand. Raw (exact, F1) and no-answer probability:
#   A has answer, right (1, 1) p .1;  B has answer, half right (0, .5) p .6;
#   D no answer, predicts text p .65;  C no answer, predicts text p .7;  E has answer, wrong p .9.
# Everything null scores 2 (C, D). Answering in order of p: exact 3,3,2,1,1; F1 3,3.5,2.5,1.5,1.5.
NA_PREDICTIONS = {"A": "Eiffel Tower", "B": "red house", "C": "junk", "D": "junk", "E": "Paris"}
NA_REFERENCES = {"A": ["Eiffel Tower"], "B": ["red barn"], "C": [], "D": [], "E": ["London"]}
NA_PROBABILITIES = {"A": 0.1, "B": 0.6, "C": 0.7, "D": 0.65, "E": 0.9}


def test_official_threshold_search_by_hand():
    scores = squad_v2_scores(NA_PREDICTIONS, NA_REFERENCES, no_answer_probabilities=NA_PROBABILITIES)
    assert scores["exact"] == pytest.approx(20.0)  # threshold 1.0: nothing is nulled
    assert scores["f1"] == pytest.approx(30.0)
    assert scores["best_exact"] == pytest.approx(60.0)
    assert scores["best_exact_thresh"] == pytest.approx(0.1)
    assert scores["best_f1"] == pytest.approx(70.0)
    assert scores["best_f1_thresh"] == pytest.approx(0.6)


def test_answers_that_normalise_to_nothing_are_scored_as_the_official_script_scores_them():
    # x: gold "the" normalises to nothing, so x is scored against "" (exact 1) but grouped by its raw
    # gold list, as HasAns. y: unanswerable and predicted "the", which scores 1 as "" yet counts as an
    # answer in the best-threshold search. Search from 1 (y): y 0.1 → 0, x 0.2 → 1, z 0.3 → 2, i.e. 2/3.
    predictions = {"x": "", "y": "the", "z": "Paris"}
    references = {"x": ["the"], "y": [], "z": ["Paris"]}
    scores = squad_v2_scores(predictions, references, no_answer_probabilities={"x": 0.2, "y": 0.1, "z": 0.3})
    assert scores["exact"] == 100.0 and scores["HasAns_total"] == 2 and scores["NoAns_total"] == 1
    assert scores["best_exact"] == pytest.approx(200 / 3)
    assert scores["best_exact_thresh"] == 0.3
    nulled = squad_v2_scores(predictions, references, no_answer_probabilities={"x": 0.9, "y": 0.0, "z": 0.0},
                             no_answer_threshold=0.5)
    assert nulled["HasAns_exact"] == 50.0  # x nulled by the threshold counts as wrong: its raw golds are not empty


def official_normalise(text: str) -> str:
    """The official English normalisation: lower-case, strip ASCII punctuation, drop a/an/the, squeeze spaces."""
    lowered = text.lower()
    kept = "".join(char for char in lowered if char not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", kept).split())


def official_squad_v2(predictions, references, probabilities, cutoff, normalise=official_normalise):
    """An independent, question-by-question rendering of the official SQuAD v2 evaluation algorithm."""

    def words(text):
        return normalise(text).split() if text else []

    def overlap_f1(gold, guess):
        gold_words, guess_words = words(gold), words(guess)
        if not gold_words or not guess_words:
            return int(gold_words == guess_words)
        shared = sum((Counter(gold_words) & Counter(guess_words)).values())
        if shared == 0:
            return 0
        precision, recall = shared / len(guess_words), shared / len(gold_words)
        return 2 * precision * recall / (precision + recall)

    answerable = {question: bool(golds) for question, golds in references.items()}
    raw = {"exact": {}, "f1": {}}
    for question, golds in references.items():
        usable = [gold for gold in golds if normalise(gold)] or [""]
        guess = predictions[question]
        raw["exact"][question] = max(int(normalise(gold) == normalise(guess)) for gold in usable)
        raw["f1"][question] = max(overlap_f1(gold, guess) for gold in usable)
    result = {}
    groups = [("", list(references)), ("HasAns_", [q for q in references if answerable[q]]),
              ("NoAns_", [q for q in references if not answerable[q]])]
    for prefix, members in groups:
        if not members:
            continue
        for name in ("exact", "f1"):
            applied = [float(not answerable[q]) if probabilities[q] > cutoff else raw[name][q] for q in members]
            result[f"{prefix}{name}"] = 100.0 * sum(applied) / len(members)
        result[f"{prefix}total"] = len(members)
    for name in ("exact", "f1"):
        running = best = sum(not has for has in answerable.values())
        best_cut = 0.0
        for question in sorted(probabilities, key=lambda q: probabilities[q]):
            if answerable[question]:
                running += raw[name][question]
            elif predictions[question]:
                running -= 1
            if running > best:
                best, best_cut = running, probabilities[question]
        result[f"best_{name}"] = 100.0 * best / len(references)
        result[f"best_{name}_thresh"] = best_cut
    return result


PIECES = ["the", "!", "a", "An", "The!", "", " ", "...", "Paris", "paris.", "the Paris", "red barn", "red house",
          "a red barn", "Tehran", "tehran!", "in 1889", "1889"]


def random_case(rng: random.Random, size: int):
    references, predictions, probabilities = {}, {}, {}
    for index in range(size):
        question = f"q{index}"
        references[question] = [] if rng.random() < 0.3 else rng.sample(PIECES, rng.randint(1, 3))
        predictions[question] = rng.choice(PIECES)
        probabilities[question] = rng.choice([round(rng.random(), 1), -math.inf, math.inf] if rng.random() < 0.1
                                             else [round(rng.random(), 1)])
    shuffled = list(probabilities.items())
    rng.shuffle(shuffled)  # ties are taken in the probability mapping's order, as the official script does
    return predictions, references, dict(shuffled)


def assert_same_scores(ours: dict, official: dict) -> None:
    # Equal to the last bit on Python 3.11; the tolerance only absorbs how newer Pythons' sum() rounds.
    assert list(ours) == list(official)
    assert ours == pytest.approx(official, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("seed", range(40))
def test_squad_v2_scores_equal_an_independent_official_implementation(seed):
    rng = random.Random(seed)
    predictions, references, probabilities = random_case(rng, rng.randint(1, 30))
    cutoff = rng.choice([0.0, 0.5, 1.0])
    ours = squad_v2_scores(predictions, references, no_answer_probabilities=probabilities, no_answer_threshold=cutoff)
    assert_same_scores(ours, official_squad_v2(predictions, references, probabilities, cutoff))


@pytest.mark.parametrize("seed", range(10))
def test_persian_mode_runs_the_same_algorithm_on_persian_normalisation(seed):
    rng = random.Random(seed)
    predictions, references, probabilities = random_case(rng, 25)
    ours = squad_v2_scores(predictions, references, "fa", no_answer_probabilities=probabilities)
    expected = official_squad_v2(predictions, references, probabilities, 1.0, lambda text: normalize_answer(text, "fa"))
    assert_same_scores(ours, expected)


def test_no_answer_threshold_nulls_confident_questions():
    scores = squad_v2_scores(
        NA_PREDICTIONS, NA_REFERENCES, no_answer_probabilities=NA_PROBABILITIES, no_answer_threshold=0.5
    )
    # A answered and right; B, C, D, E nulled: C and D right, B and E wrong.
    assert scores["exact"] == pytest.approx(60.0)
    assert scores["f1"] == pytest.approx(60.0)
    assert scores["NoAns_exact"] == pytest.approx(100.0)


def test_best_null_threshold_by_hand():
    # Predict "" when diff > threshold. Everything null: 2 (Q, S). Answering in diff order:
    # P(-2) +1 → 3, S(-1) -1 → 2, R(.5) +.5 → 2.5, Q(1) -1 → 1.5, T(3) +1 → 2.5. Best: 3 at -2.
    texts = {"P": "Tehran", "Q": "wrong", "R": "red house", "S": "junk", "T": "Tabriz"}
    references = {"P": ["Tehran"], "Q": [], "R": ["red barn"], "S": [], "T": ["Tabriz"]}
    diffs = {"P": -2.0, "Q": 1.0, "R": 0.5, "S": -1.0, "T": 3.0}
    threshold, scores = best_null_threshold(diffs, texts, references)
    assert threshold == -2.0
    assert scores["f1"] == pytest.approx(60.0)
    assert scores["exact"] == pytest.approx(60.0)
    assert scores["HasAns_f1"] == pytest.approx(100 / 3)  # only P of P, R, T answered
    assert scores["NoAns_exact"] == pytest.approx(100.0)


def test_best_null_threshold_treats_ties_as_one_step_and_handles_infinity():
    # U (right) and V (wrong, unanswerable) share a diff, so no threshold answers U without V;
    # W has no valid span (+inf) and always predicts "". Best: answer nothing, F1 2/3.
    texts = {"U": "Shiraz", "V": "junk", "W": ""}
    references = {"U": ["Shiraz"], "V": [], "W": []}
    diffs = {"U": 0.0, "V": 0.0, "W": math.inf}
    threshold, scores = best_null_threshold(diffs, texts, references)
    assert threshold < 0.0
    assert scores["f1"] == pytest.approx(200 / 3)


def test_best_null_threshold_is_the_best_of_all_thresholds():
    rng = np.random.default_rng(0)
    words = ["tehran", "shiraz", "tabriz", "isfahan", "yazd", "the", "!"]  # "the !" normalises to nothing
    references, texts, diffs = {}, {}, {}
    for index in range(60):
        key = f"q{index}"
        references[key] = [] if rng.random() < 0.3 else [" ".join(rng.choice(words, size=2))]
        texts[key] = " ".join(rng.choice(words, size=int(rng.integers(1, 3))))
        diffs[key] = float(np.round(rng.normal(), 1))  # rounding makes ties
    threshold, scores = best_null_threshold(diffs, texts, references)

    def f1_at(cut):
        answers = {key: "" if diffs[key] > cut else texts[key] for key in texts}
        return squad_v2_scores(answers, references)["f1"]

    assert scores["f1"] == pytest.approx(f1_at(threshold))
    candidates = sorted(set(diffs.values()))
    assert scores["f1"] >= max(f1_at(cut) for cut in candidates + [candidates[0] - 1]) - 1e-9


def test_threshold_inputs_must_cover_every_question():
    with pytest.raises(ValueError, match="'E'"):
        squad_v2_scores(
            NA_PREDICTIONS, NA_REFERENCES, no_answer_probabilities={k: 0.5 for k in "ABCD"}
        )
    with pytest.raises(ValueError, match="NaN"):
        best_null_threshold({"a": math.nan}, {"a": "x"}, {"a": ["x"]})
