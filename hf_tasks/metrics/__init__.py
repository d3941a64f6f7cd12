"""Local metric code (nothing is downloaded): classification metrics and plots, SQuAD v2 EM/F1."""

from hf_tasks.metrics.classification import (
    classification_metrics,
    classification_report,
    confusion_matrix,
    metric_key,
    plot_confusion_matrix,
)
from hf_tasks.metrics.squad import best_null_threshold, exact_match, f1, normalize_answer, squad_v2_scores

__all__ = [
    "best_null_threshold",
    "classification_metrics",
    "classification_report",
    "confusion_matrix",
    "exact_match",
    "f1",
    "metric_key",
    "normalize_answer",
    "plot_confusion_matrix",
    "squad_v2_scores",
]
