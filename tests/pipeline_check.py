"""Compare `transformers.pipeline` outputs on a run folder with the recipe's own prediction file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from transformers import pipeline


def prediction_rows(run_folder: Path, prefix: str = "test") -> list[dict[str, str]]:
    with (run_folder / f"{prefix}_predictions.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_pipeline_repeats_predictions(task: str, run_folder: Path, inputs: list, rows: list[dict], *,
                                        score_atol: float = 1e-4, **call_kwargs) -> None:
    """The pipeline's top label and score equal each row's `predicted_label` and `predicted_probability`."""
    classify = pipeline(task, model=str(run_folder), trust_remote_code=True, device="cpu")
    outputs = [classify(item, top_k=1, **call_kwargs)[0] for item in inputs]
    assert [output["label"] for output in outputs] == [row["predicted_label"] for row in rows]
    np.testing.assert_allclose([output["score"] for output in outputs],
                               [float(row["predicted_probability"]) for row in rows], atol=score_atol)
