"""`--report_to trackio`: a study's runs (each config × seed) and its summary land in one trackio project named
after the study, grouped by config, in a database inside the study folder; read back through trackio's own API
in a fresh process (trackio reads its folder, TRACKIO_DIR, once, on import). A push to the Hub creates no
trackio Space unless one is named."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

# Not imported here: this process must not fix trackio's folder before the code under test sets it.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("trackio") is None, reason="needs trackio")

QUICK = ["--max_train_samples", "32", "--max_eval_samples", "24", "--max_predict_samples", "24",
         "--num_train_epochs", "1", "--logging_steps", "1", "--save_strategy", "no", "--use_cpu", "true",
         "--disable_tqdm", "true", "--report_to", "trackio"]
FIGURES = {"figures/training_curves", "figures/eval_confusion_matrix", "figures/test_confusion_matrix"}
TABLES = {"tables/eval_misclassified", "tables/test_misclassified", "tables/eval_per_class", "tables/test_per_class"}

# Passed to every run, so it is on each run's command line, which trackio keeps: the password must not be.
PASSWORD_URL = "https://me:s3cretpass@example.org/run"

READ_BACK = """
import json, sys
import trackio
from trackio.sqlite_storage import SQLiteStorage
from trackio.utils import MEDIA_DIR
project = sys.argv[1]
found = {"projects": SQLiteStorage.get_projects(), "runs": {}}
for run in trackio.Api().runs(project):
    logs = SQLiteStorage.get_logs(project, run.name)
    values, media = {}, {}
    for entry in logs:
        for key, value in entry.items():
            if isinstance(value, dict) and value.get("_type") == "trackio.image":
                media[key] = (MEDIA_DIR / value["file_path"]).is_file()
            elif isinstance(value, dict) and value.get("_type") == "trackio.table":
                values[key] = value["_value"]
            elif key not in ("timestamp", "step"):
                values[key] = value
    found["runs"][run.name] = {"config": run.config, "values": values, "images": media}
print(json.dumps(found, default=str))
"""


SUMMARY_RUN = "my_study-summary"


def read_back(folder: Path, project: str) -> dict:
    """Everything trackio holds for `project` in `folder`, through its own reading API."""
    env = {**os.environ, "TRACKIO_DIR": str(folder)}
    done = subprocess.run([sys.executable, "-c", READ_BACK, project], env=env, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def trackio_study(tmp_path_factory):
    """Two configs × two seeds reporting to trackio, with no TRACKIO_DIR of the user's."""
    root = tmp_path_factory.mktemp("trackio")
    smaller = root / "keep1.yaml"
    smaller.write_text(yaml.safe_dump({"recipe": str(REPO / "recipes/farstail.py"),
                                       "base": str(REPO / "recipes/configs/farstail/tiny.yaml"),
                                       "keep_layers": "first:1"}))
    output_dir = root / "my_study"
    # Its own process, as a user runs it: trackio reads TRACKIO_DIR once, when first imported, so a test process
    # that imported it before (another test on this worker) would keep that folder for the study's summary.
    env = {name: value for name, value in os.environ.items() if name != "TRACKIO_DIR"}
    done = subprocess.run([sys.executable, "-m", "hf_tasks.study", str(REPO / "recipes/configs/farstail/tiny.yaml"),
                           str(smaller), "--output_dir", str(output_dir), "--parallel", "2", "--seeds", "1,2", *QUICK,
                           "--run_name", PASSWORD_URL], cwd=root, env={**env, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, (done.stderr[-2000:], (output_dir / "farstail-keep1-seed1.log").read_text()[-3000:])
    return root, output_dir, read_back(output_dir / "trackio", "my_study")


def test_the_database_is_inside_the_study_folder_and_nothing_is_written_beside_it(trackio_study):
    root, output_dir, found = trackio_study
    assert found["projects"] == ["my_study"]
    assert (output_dir / "trackio" / "my_study.db").is_file()
    assert sorted(path.name for path in root.iterdir()) == ["keep1.yaml", "my_study"]


def test_every_run_of_the_study_is_in_its_configs_group_named_after_its_folder(trackio_study):
    _, output_dir, found = trackio_study
    groups = {name: run["config"]["_Group"] for name, run in found["runs"].items()}
    assert groups == {"farstail-tiny-seed1": "farstail-tiny", "farstail-tiny-seed2": "farstail-tiny",
                      "farstail-keep1-seed1": "farstail-keep1", "farstail-keep1-seed2": "farstail-keep1",
                      SUMMARY_RUN: SUMMARY_RUN}
    config = found["runs"]["farstail-keep1-seed2"]["config"]
    assert config["keep_layers"] == "first:1" and config["seed"] == 2  # the recipe's resolved config
    assert config["num_hidden_layers"] == 1  # and the model's
    assert "https://me:***@example.org/run" in config["_Command"]
    assert b"s3cretpass" not in (output_dir / "trackio" / "my_study.db").read_bytes()


def test_each_run_holds_the_trainers_metrics_its_results_figures_and_tables(trackio_study):
    _, output_dir, found = trackio_study
    for name, run in found["runs"].items():
        if name == SUMMARY_RUN:
            continue
        results = json.loads((output_dir / name / "results.json").read_text())
        values = run["values"]
        assert "train/loss" in values  # logged by the Trainer's callback while training
        assert values["test/accuracy"] == pytest.approx(results["test_accuracy"])
        assert values["results/test_accuracy"] == pytest.approx(results["test_accuracy"])
        assert values["results/trainable_params"] == results["trainable_params"]
        assert set(run["images"]) == FIGURES and all(run["images"].values())
        assert TABLES <= set(values)
        per_class = {row["class"]: row for row in values["tables/test_per_class"]}
        assert per_class["entailment"]["f1"] == pytest.approx(results["test_f1_entailment"])


def test_the_summary_run_holds_the_comparison_table_and_the_studys_pictures(trackio_study):
    _, output_dir, found = trackio_study
    summary = found["runs"][SUMMARY_RUN]
    with (output_dir / "study_comparisons.csv").open(newline="") as handle:
        comparisons = list(csv.DictReader(handle))
    assert summary["values"]["tables/study_comparisons"] == comparisons
    assert [row["run"] for row in summary["values"]["tables/study"]] == ["farstail-tiny", "farstail-keep1"]
    assert summary["images"] == {"figures/study": True, "figures/study_differences": True}


def test_a_study_without_trackio_runs_logs_nothing_into_a_trackio_dir_of_the_users(tmp_path):
    users = tmp_path / "users-trackio"
    users.mkdir()
    study = tmp_path / "plain_study"
    study.mkdir()
    (study / "study.csv").write_text("run,status\nfarstail-tiny,ok\n")
    env = {**os.environ, "TRACKIO_DIR": str(users), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", "import sys; from hf_tasks.study.dashboard import log_study; "
                           f"sys.exit(0 if log_study({str(study)!r}) else 3)"], env=env, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert list(users.iterdir()) == []
