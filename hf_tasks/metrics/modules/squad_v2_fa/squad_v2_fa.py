"""SQuAD v2 exact match and F1 with the Persian extension, as an `evaluate` module (hf_tasks' own scorer)."""

import datasets
import evaluate

from hf_tasks.metrics.squad import squad_v2_scores

_DESCRIPTION = """The official SQuAD v2 figures (exact match and F1 in percent, overall and for answerable
(HasAns) and unanswerable (NoAns) questions, and best_exact/best_f1 with their no-answer thresholds),
computed by hf_tasks.metrics.squad. `language="fa"` (the default) is the Persian extension: answers are
first normalised with hf_tasks.text.persian.normalize_persian (so that Arabic/Persian letter forms, ZWNJ
and Persian/ASCII digits do not decide a match), all Unicode punctuation is dropped and every word kept;
`language="en"` is the official normalisation (lower case, ASCII punctuation and the articles dropped)."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of {"id": str, "prediction_text": str, "no_answer_probability": float}
        ("" as prediction_text means no answer).
    references: list of {"id": str, "answers": {"text": list[str], "answer_start": list[int]}}
        (empty lists for an unanswerable question).
    language: "fa" (default) or "en".
    no_answer_threshold: a question whose no_answer_probability exceeds it counts as answered "".
Returns:
    exact, f1, total, HasAns_exact, HasAns_f1, HasAns_total, NoAns_exact, NoAns_f1, NoAns_total,
    best_exact, best_exact_thresh, best_f1, best_f1_thresh.
Example:
    >>> squad = evaluate.load(hf_tasks.metrics.evaluate_module("squad_v2_fa"))
    >>> squad.compute(predictions=[{"id": "1", "prediction_text": "تهران", "no_answer_probability": 0.0}],
    ...               references=[{"id": "1", "answers": {"text": ["تهران"], "answer_start": [0]}}])["exact"]
    100.0
"""

_CITATION = """@article{rajpurkar2018know, title={Know What You Don't Know: Unanswerable Questions for SQuAD},
author={Rajpurkar, Pranav and Jia, Robin and Liang, Percy}, journal={arXiv preprint arXiv:1806.03822}, year={2018}}"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SquadV2Fa(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": {
                    "id": datasets.Value("string"),
                    "prediction_text": datasets.Value("string"),
                    "no_answer_probability": datasets.Value("float32"),
                },
                "references": {
                    "id": datasets.Value("string"),
                    "answers": datasets.Sequence({"text": datasets.Value("string"),
                                                  "answer_start": datasets.Value("int32")}),
                },
            }),
        )

    def _compute(self, predictions, references, language="fa", no_answer_threshold=1.0):
        return squad_v2_scores(
            {prediction["id"]: prediction["prediction_text"] for prediction in predictions},
            {reference["id"]: list(reference["answers"]["text"]) for reference in references},
            language=language,
            no_answer_probabilities={prediction["id"]: prediction["no_answer_probability"]
                                     for prediction in predictions},
            no_answer_threshold=no_answer_threshold,
        )
