"""Local metric code (nothing is downloaded): classification metrics and plots, SQuAD v2 EM/F1.

The same metrics are also `evaluate` modules, shipped in `modules/` (one folder each, publishable to the
Hub as a Space as it is): `evaluate.load(evaluate_module("squad_v2_fa"))`, `"classification_uar"`,
`"segmentation_miou"`. They wrap these functions; training uses the functions directly.
"""

from pathlib import Path

from hf_tasks.metrics.classification import (
    classification_metrics,
    classification_report,
    confusion_matrix,
    metric_key,
    plot_confusion_matrix,
)
from hf_tasks.metrics.squad import best_null_threshold, exact_match, f1, normalize_answer, squad_v2_scores

EVALUATE_MODULES = Path(__file__).resolve().parent / "modules"


def evaluate_module(name: str) -> str:
    """The folder of one of the toolkit's `evaluate` modules, for `evaluate.load`."""
    folder = EVALUATE_MODULES / name
    if not (folder / f"{name}.py").is_file():
        known = sorted(path.name for path in EVALUATE_MODULES.iterdir() if path.is_dir())
        raise ValueError(f"No evaluate module {name!r}; choose one of {known}.")
    return str(folder)


__all__ = [
    "EVALUATE_MODULES",
    "evaluate_module",
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
