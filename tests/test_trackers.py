"""Every tracker in --report_to gets the run's figures and tables, read back offline: TensorBoard's event
files with its own event reader, an MLflow file store through MLflow's client, wandb's offline run log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hf_tasks.args import parse
from hf_tasks.trackers import Table, collect, per_class_table
from tests.conftest import REPO, recipe_args, wandb_run_log  # first: puts recipes/ on sys.path

import farstail  # noqa: E402

QUICK = ["--max_train_samples", "48", "--max_eval_samples", "24", "--max_predict_samples", "24",
         "--num_train_epochs", "1", "--per_device_train_batch_size", "16", "--save_strategy", "no",
         "--load_best_model_at_end", "false", "--logging_steps", "1"]
FIGURES = {"training_curves", "eval_confusion_matrix", "test_confusion_matrix"}
TABLES = {"eval_misclassified", "test_misclassified", "eval_per_class", "test_per_class"}


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    """One tiny FarsTail run reporting to TensorBoard, MLflow (a file store) and wandb (offline) at once."""
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    root = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_DIR", str(root))
        patch.setenv("WANDB_SILENT", "true")
        patch.setenv("MLFLOW_TRACKING_URI", (root / "mlruns").as_uri())
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        patch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
        output = root / "run"
        results = farstail.main(parse(*farstail.ARGUMENTS, args=recipe_args(
            "recipes/configs/farstail/tiny.yaml", output, *QUICK, "--report_to", "tensorboard,mlflow,wandb",
            "--run_name", "tracked-tiny")))
        run_log = wandb_run_log(root, expected=b"confusion_matrix/test")
    return root, output, results, run_log


def test_tensorboard_event_files_hold_the_figures_tables_and_the_trainers_scalars_in_one_folder(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, output, results, _ = tracked_run
    (log_dir,) = {path.parent for path in output.rglob("events.out.tfevents.*")}
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "tensors": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {f"figures/{name}" for name in FIGURES} <= set(tags["images"])
    assert {f"tables/{name}/text_summary" for name in TABLES} <= set(tags["tensors"])
    assert "train/loss" in tags["scalars"]  # the Trainer's own scalars sit beside them
    (test_accuracy,) = events.Scalars("test/accuracy")
    assert test_accuracy.value == pytest.approx(results["test_accuracy"])
    image = events.Images("figures/eval_confusion_matrix")[0]
    assert image.width > 100 and image.height > 100
    text = events.Tensors("tables/eval_per_class/text_summary")[0].tensor_proto.string_val[0].decode()
    assert text.startswith("| class | precision | recall | f1 | support |")


def test_mlflow_run_holds_training_and_final_metrics_figures_and_tables(tracked_run):
    from mlflow import MlflowClient

    root, output, results, _ = tracked_run
    client = MlflowClient(tracking_uri=(root / "mlruns").as_uri())
    experiments = client.search_experiments()
    runs = client.search_runs([experiment.experiment_id for experiment in experiments])
    assert len(runs) == 1  # training, the final evaluation and the pictures share one run
    (run,) = runs
    assert run.info.run_name == "tracked-tiny" and run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] == pytest.approx(results["test_accuracy"])
    assert run.data.metrics["eval_accuracy"] == pytest.approx(results["eval_accuracy"])
    assert "loss" in run.data.metrics  # logged by the Trainer's callback during training
    figures = {Path(item.path).stem for item in client.list_artifacts(run.info.run_id, "figures")}
    tables = {Path(item.path).stem for item in client.list_artifacts(run.info.run_id, "tables")}
    assert FIGURES <= figures and TABLES <= tables
    local = Path(client.download_artifacts(run.info.run_id, "tables/eval_misclassified.json", str(root / "dl")))
    stored = json.loads(local.read_text())
    misclassified = (output / "eval_misclassified.csv").read_text(encoding="utf-8").strip().splitlines()
    assert len(stored["data"]) == len(misclassified) - 1


def test_wandb_offline_run_holds_images_tables_and_confusion_matrix_plots(tracked_run):
    root, _, results, run_log = tracked_run
    for key in [*(f"figures/{name}" for name in FIGURES), *(f"tables/{name}" for name in TABLES),
                "confusion_matrix/eval", "confusion_matrix/test"]:
        assert key.encode() in run_log, key
    (run_folder,) = root.glob("wandb/offline-run-*")
    assert len(list(run_folder.glob("files/media/images/**/*.png"))) >= len(FIGURES)
    assert len(list(run_folder.glob("files/media/table/**/*.table.json"))) >= len(TABLES)
    assert str(results["test_accuracy"]).encode() in run_log  # the results, as the run's summary


def test_per_class_table_and_collect_read_the_run_folder(tmp_path):
    results = {"eval_precision_e": 0.5, "eval_recall_e": 1.0, "eval_f1_e": 0.6667, "eval_support_e": 2,
               "eval_precision_c": 0.0, "eval_recall_c": 0.0, "eval_f1_c": 0.0, "eval_support_c": 1}
    table = per_class_table(results, "eval", ["e", "c"])
    assert table == Table(["class", "precision", "recall", "f1", "support"],
                          [["e", 0.5, 1.0, 0.6667, 2], ["c", 0.0, 0.0, 0.0, 1]])
    assert per_class_table(results, "test", ["e", "c"]) is None
    predictions = tmp_path / "eval_predictions.csv"
    predictions.write_text("text,gold_label,predicted_label\na,e,e\nb,c,e\nd,,c\n", encoding="utf-8")
    errors = tmp_path / "eval_qa_errors.csv"
    errors.write_text('id,question,gold_answers,answer,f1\n7,"who, then?",x,y,0.0\n', encoding="utf-8")
    report = collect([predictions, errors, tmp_path / "training_curves.png"], results, ["e", "c"], step=3)
    assert report.confusions == {"eval": (["e", "c"], [0, 1], [0, 0])}  # the unlabelled row is left out
    assert report.tables["eval_qa_errors"].rows == [["7", "who, then?", "x", "y", "0.0"]]
    assert set(report.figures) == {"training_curves"} and set(report.tables) == {"eval_qa_errors", "eval_per_class"}


def test_the_attention_grid_goes_to_tensorboard_and_mlflow_without_a_trainer(tmp_path, monkeypatch):
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    import attention as attention_recipe

    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    model_dir = tmp_path / "model"  # the sample tiny BERT, with weights built from its config
    config = AutoConfig.from_pretrained(REPO / "hf_tasks/samples/tiny-bert-en")
    AutoModelForSequenceClassification.from_config(config).save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(REPO / "hf_tasks/samples/tiny-bert-en").save_pretrained(model_dir)
    output = tmp_path / "views"
    args = ["--model_name_or_path", str(model_dir), "--text", "the cat sat on the mat",
            "--output_dir", str(output), "--use_cpu", "--report_to", "tensorboard,mlflow", "--run_name", "heads"]
    attention_recipe.main(parse(*attention_recipe.ARGUMENTS, args=args))
    (log_dir,) = {path.parent for path in output.rglob("events.out.tfevents.*")}
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    events.Reload()
    assert events.Tags()["images"] == ["figures/attention_heads"]
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    (run,) = client.search_runs([experiment.experiment_id for experiment in client.search_experiments()])
    assert run.info.run_name == "heads" and run.info.status == "FINISHED"
    assert [item.path for item in client.list_artifacts(run.info.run_id, "figures")] == ["figures/attention_heads.png"]


def test_an_mlflow_run_opened_for_a_run_a_signal_stopped_ends_killed(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from hf_tasks.trackers import Trackers

    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    trackers = Trackers(["mlflow"], tmp_path / "run", "stopped", {})
    trackers.close("KILLED")
    trackers.close("KILLED")  # once only
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    (run,) = client.search_runs([experiment.experiment_id for experiment in client.search_experiments()])
    assert (run.info.run_name, run.info.status) == ("stopped", "KILLED")


def test_mlflow_and_wandb_keep_their_files_in_the_run_folder_unless_told_otherwise(tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from hf_tasks.trackers import Trackers

    started_in = tmp_path / "where_the_command_ran"
    started_in.mkdir()
    monkeypatch.chdir(started_in)
    for variable in ("MLFLOW_TRACKING_URI", "WANDB_DIR", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(variable, raising=False)
    for name in ("first", "second"):  # the second run's store is its own, not the first's
        run_folder = tmp_path / name
        trackers = Trackers(["mlflow", "wandb"], run_folder, name, {})
        trackers.close("FINISHED")
        assert os.environ["WANDB_DIR"] == str(run_folder.resolve())
        client = MlflowClient(tracking_uri=f"sqlite:///{run_folder.resolve() / 'mlflow.db'}")
        (run,) = client.search_runs([experiment.experiment_id for experiment in client.search_experiments()])
        assert run.info.run_name == name and run.info.artifact_uri.startswith((run_folder / "mlruns").as_uri())
    assert not list(started_in.iterdir())
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "mine"))
    Trackers(["wandb"], tmp_path / "third", "third", {})
    assert os.environ["WANDB_DIR"] == str(tmp_path / "mine")
