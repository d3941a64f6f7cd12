"""Shared fixtures: every test runs offline, on CPU, with one thread per process, on private caches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hf_tasks import registry
from tests.caches import use_private_caches

# Before anything imports datasets, transformers or wandb: they read their cache folders once.
SESSION_CACHES = use_private_caches("hf_tasks-tests-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

# A two-layer convolutional feature encoder small enough for CPU tests of HuBERT/wav2vec2 models.
TINY_SPEECH_FEATURE_ENCODER = dict(conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 4),
                                   num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4)
RECIPES = REPO / "recipes"
sys.path.insert(0, str(RECIPES))
# Configs name sample files relative to the repository root, as the docs' commands run them.
os.chdir(REPO)


@pytest.fixture
def empty_preprocessing_cache(tmp_path, monkeypatch) -> Path:
    """The preprocessing cache folder (`<datasets cache>/hf_tasks`), empty, for one test: a cache test
    can then show that the first build computed its features rather than found them."""
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    return tmp_path / "datasets-cache" / "hf_tasks"


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)


def recipe_args(config: str, output_dir: Path, *overrides: str) -> list[str]:
    """Command-line arguments for running a recipe in-process on CPU without reporting."""
    return ["--config", str(REPO / config), "--output_dir", str(output_dir), "--use_cpu", "true",
            "--report_to", "none", "--disable_tqdm", "true", *overrides]


# The recipes that train, by name: each has a tiny config for the CPU tests (test_config_paths checks both ways).
TRAINING_RECIPES = registry.having_config("tiny")


def tiny_recipe_args(recipe: registry.Recipe, folder: Path, *overrides: str) -> list[str]:
    """`recipe_args` for the recipe's tiny config into `folder/run`; a recipe that writes its demo data into
    --data_dir gets `folder/data` (and its own dataset cache)."""
    own_data = ["--data_dir", str(folder / "data"), "--dataset_cache_dir", str(folder / "cache")] \
        if recipe.writes_data_dir else []
    return recipe_args(str(registry.configs_folder(recipe.name) / "tiny.yaml"), folder / "run", *overrides, *own_data)


def accuracy_of_predictions(predictions_csv: Path) -> float:
    """The share of rows in a classification run's `*_predictions.csv` whose prediction is the gold label:
    a run's reported accuracy must equal it, whatever the model learned."""
    import csv

    with Path(predictions_csv).open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(row["gold_label"] for row in rows), predictions_csv
    return sum(row["gold_label"] == row["predicted_label"] for row in rows) / len(rows)


def assert_outcomes_give_the_results(run_dir: Path, results: dict) -> int:
    """Each split's per-example outcomes (`hf_tasks.study.stats`) score to the metrics the run reported, so a
    study's intervals and paired tests are about the numbers in its table; returns how many were checked."""
    import numpy as np

    from hf_tasks.study.stats import CONFUSION_METRICS, PERCENT_METRICS, read_outcomes, scorer

    checked = 0
    for prefix in ("eval", "test"):
        if not any(key.startswith(f"{prefix}_") for key in results):
            continue
        outcomes = read_outcomes(run_dir, prefix)
        assert len(set(outcomes.ids)) == len(outcomes.ids), "example ids must be unique"
        for name in (*CONFUSION_METRICS, *PERCENT_METRICS):
            if f"{prefix}_{name}" in results and (outcomes.gold is None) == (name in PERCENT_METRICS):
                score = scorer(outcomes, name)(np.ones((1, len(outcomes))))[0]
                assert score == pytest.approx(results[f"{prefix}_{name}"], rel=1e-9, abs=1e-9), (prefix, name)
                checked += 1
    return checked


TWO_PROCESSES = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
TWO_PROCESS_TIMEOUT = 300  # a process waiting for a peer that stopped (a collective mismatch) must not hang the suite


def launch_two_processes(*arguments: str, module: bool = False) -> subprocess.CompletedProcess:
    """Run a recipe script (or with `module`, a module) in two CPU processes under torchrun (gloo); fail
    with its output."""
    command = [*TWO_PROCESSES, *(["-m"] if module else []), *arguments]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=TWO_PROCESS_TIMEOUT)
    assert finished.returncode == 0, (finished.stdout[-3000:], finished.stderr[-3000:])
    return finished


@pytest.fixture(autouse=True)
def _fresh_wandb():
    """wandb keeps its settings (the run directory among them) in a process-wide singleton; reset it
    after each test so the next test's WANDB_DIR is honoured."""
    yield
    if "wandb" in sys.modules:
        import wandb

        wandb.finish()
        wandb.teardown()


def wandb_run_log(wandb_dir: Path, expected: bytes = b"learning_rate", timeout: float = 60.0) -> bytes:
    """The transaction log of the one offline wandb run under `wandb_dir`, once wandb has flushed it.

    `wandb.finish()` can return before wandb's service process has written the whole log, so wait
    (bounded) until the log holds `expected`.
    """
    import time

    import wandb

    wandb.finish()
    deadline = time.monotonic() + timeout
    while True:
        logs = list(Path(wandb_dir).glob("wandb/offline-run-*/run-*.wandb"))
        assert len(logs) <= 1, logs
        content = logs[0].read_bytes() if logs else b""
        if expected in content or time.monotonic() > deadline:
            return content
        time.sleep(0.5)
