"""Accuracy, macro/weighted F1, UAR and per-class precision/recall/F1/support, as an `evaluate` module
(hf_tasks' own classification scorer)."""

import datasets
import evaluate

from hf_tasks.metrics.classification import classification_metrics

_DESCRIPTION = """Single-label classification figures computed by hf_tasks.metrics.classification: accuracy,
macro_f1, weighted_f1, uar (unweighted average recall: the mean recall over the gold classes, the usual
headline for imbalanced data such as speech emotion), and precision_<class>, recall_<class>, f1_<class>,
support_<class> for every class. Ratios that are undefined count as 0, as scikit-learn's zero_division=0."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of int, the predicted class ids.
    references: list of int, the gold class ids.
    label_names: list of str, the class names in id order (they name the per-class keys).
Returns:
    accuracy, macro_f1, weighted_f1, uar, and precision_/recall_/f1_/support_<class>.
Example:
    >>> report = evaluate.load(hf_tasks.metrics.evaluate_module("classification_uar"))
    >>> report.compute(predictions=[0, 1, 1], references=[0, 1, 0], label_names=["real", "fake"])["uar"]
    0.75
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ClassificationUar(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, label_names=None):
        if label_names is None:
            raise ValueError("Give label_names: the class names in id order.")
        return classification_metrics(references, predictions, list(label_names))
