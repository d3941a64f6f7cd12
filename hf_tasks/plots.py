"""Run-level plots written into every run folder."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen before pyplot loads)

from hf_tasks.files import atomic_path  # noqa: E402

# A series with at most this many points gets a marker at each: a line alone hides a single point.
MARKERS_UP_TO = 20
# Eval metrics worth a panel of their own, in order of preference; the first two present are drawn.
HEADLINE_METRICS = ("eval_f1", "eval_exact", "eval_accuracy", "eval_macro_f1", "eval_uar", "eval_weighted_f1")


def plot_training_curves(log_history: list[dict], path: Path) -> Path | None:
    """Train/eval loss and the headline eval metrics against the training step; None without logs."""
    train = [(row["step"], row["loss"]) for row in log_history if "loss" in row and "step" in row]
    evals = [row for row in log_history if "eval_loss" in row and "step" in row]
    if not train and not evals:
        return None
    metrics = [name for name in HEADLINE_METRICS if any(name in row for row in evals)][:2]
    fig, axes = plt.subplots(1, 1 + bool(metrics), figsize=(11 if metrics else 6, 4), squeeze=False)
    loss_axis = axes[0][0]
    if train:
        loss_axis.plot(*zip(*train), "o-" if len(train) <= MARKERS_UP_TO else "-", label="train loss")
    if evals:
        loss_axis.plot([row["step"] for row in evals], [row["eval_loss"] for row in evals], "o-", label="eval loss")
    loss_axis.set(xlabel="step", ylabel="loss", title="Loss")
    loss_axis.grid(alpha=0.3)
    loss_axis.legend()
    if metrics:
        metric_axis = axes[0][1]
        for name in metrics:
            points = [(row["step"], row[name]) for row in evals if name in row]
            metric_axis.plot(*zip(*points), "o-", label=name)
        metric_axis.set(xlabel="step", title="Validation")
        metric_axis.grid(alpha=0.3)
        metric_axis.legend()
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return path
