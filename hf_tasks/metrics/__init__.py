"""Local metric code (nothing is downloaded): classification metrics and plots."""

from hf_tasks.metrics.classification import (
    classification_metrics,
    classification_report,
    confusion_matrix,
    metric_key,
    plot_confusion_matrix,
)

__all__ = [
    "classification_metrics",
    "classification_report",
    "confusion_matrix",
    "metric_key",
    "plot_confusion_matrix",
]
