"""What `--push_to_hub` uploads, captured offline: the Hub client's repo creation and folder upload are
replaced by fakes that record each file the Trainer would send. The card's Hub metadata is read back
with huggingface_hub's own parser."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from concurrent.futures import Future
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard, RepoUrl
from huggingface_hub.utils import filter_repo_objects

import farstail  # recipes/ is on sys.path through conftest
from hf_tasks.args import parse
from hf_tasks.model_card import card_metadata
from hf_tasks.run_folder import RUN_MANIFEST
from tests.conftest import recipe_args

TOKEN = "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"
REPO_ID = "someone/farstail-pruned"
QUICK = ["--max_train_samples", "64", "--max_eval_samples", "32", "--max_predict_samples", "32",
         "--num_train_epochs", "2", "--learning_rate", "0.002", "--per_device_train_batch_size", "16",
         "--logging_steps", "100", "--prune_fraction", "0.5", "--prune_importance_samples", "32"]


class CapturedHub:
    """Stands in for the Hub: records every upload as {path in repo: bytes} and the tokens it was given."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.tokens: list[str | None] = []
        self.repo_types: list[str | None] = []

    def create_repo(self, api, repo_id, *, token=None, **kwargs):
        self.tokens.append(token)
        self.repo_types.append(kwargs.get("repo_type"))
        return RepoUrl(f"https://huggingface.co/{repo_id}", endpoint="https://huggingface.co")

    def upload_folder(self, api, *, repo_id, folder_path, path_in_repo=None, token=None, ignore_patterns=None,
                      allow_patterns=None, run_as_future=False, **kwargs):
        assert repo_id == REPO_ID
        self.tokens.append(token)
        folder = Path(folder_path)
        relative = [path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()]
        for name in filter_repo_objects(relative, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns):
            self.files[f"{path_in_repo}/{name}" if path_in_repo else name] = (folder / name).read_bytes()
        done = Future()
        done.set_result(None)
        return done


@pytest.fixture
def hub(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "restored after the test")  # the runner moves --hub_token here
    captured = CapturedHub()
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: captured.create_repo(api, repo_id, **kw))
    monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kw: captured.upload_folder(api, **kw))
    return captured


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-bert-farstail")
    shutil.copytree("hf_tasks/samples/tiny-bert-farstail", folder, dirs_exist_ok=True)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 2
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def push_farstail(output_dir: Path, model_folder: Path, *overrides: str) -> dict:
    arguments = parse(*farstail.ARGUMENTS, args=recipe_args(
        "recipes/configs/farstail/tiny.yaml", output_dir, "--config_name", str(model_folder), *QUICK,
        "--push_to_hub", "true", "--hub_model_id", REPO_ID, "--hub_token", TOKEN, *overrides))
    return farstail.main(arguments)


def assert_token_nowhere(files: dict[str, bytes], folder: Path):
    for name, data in files.items():
        assert TOKEN.encode() not in data, f"uploaded {name} holds the token"
    for path in folder.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), f"{path} holds the token"


def test_push_uploads_model_code_and_card_with_hub_metadata_but_no_checkpoints_or_token(tmp_path, hub, model_folder):
    output_dir = tmp_path / "run"
    results = push_farstail(output_dir, model_folder, "--save_strategy", "epoch", "--hub_license", "apache-2.0")

    uploaded = set(hub.files)
    # A pruned encoder: its weights, config with auto_map, the shipped code, tokenizer and card go up.
    assert {"model.safetensors", "config.json", "modeling_hf_tasks_pruned.py", "pruned_heads.py",
            "tokenizer.json", "README.md", "results.json", "config.yaml"} <= uploaded
    assert "auto_map" in json.loads(hub.files["config.json"])
    # Checkpoints and the pickled training arguments stay local unless hub_strategy asks for them.
    assert any(output_dir.glob("checkpoint-*/training_args.bin")) and (output_dir / "training_args.bin").is_file()
    assert not any(name.startswith("checkpoint-") or name.endswith("training_args.bin") for name in uploaded)
    # The manifest (what to delete on an overwrite) never travels: a downloaded copy must not carry one.
    assert (output_dir / RUN_MANIFEST).is_file() and not any(name.startswith(".hf_tasks-") for name in uploaded)
    assert os.environ["HF_TOKEN"] == TOKEN and hub.tokens  # the Hub client authenticates from the environment ...
    assert_token_nowhere(hub.files, output_dir)  # ... and is written into nothing

    metadata = ModelCard(hub.files["README.md"].decode()).data
    assert metadata.pipeline_tag == "text-classification"
    assert metadata.language == ["fa"] and metadata.license == "apache-2.0" and metadata.library_name == "transformers"
    assert "hf_tasks" in metadata.tags and "natural-language-inference" in metadata.tags
    assert metadata.model_name == "farstail-pruned"
    scored = {(row.dataset_split, row.metric_type): row for row in metadata.eval_results}
    for split, prefix in (("validation", "eval"), ("test", "test")):
        row = scored[(split, "accuracy")]
        assert row.metric_value == pytest.approx(results[f"{prefix}_accuracy"])
        assert (row.task_type, row.dataset_name) == ("text-classification", "FarsTail")
    assert ("test", "loss") not in scored and ("test", "runtime") not in scored
    assert (f'pipeline("text-classification", model="{REPO_ID}", trust_remote_code=True)'
            in hub.files["README.md"].decode())


def test_checkpoint_strategy_pushes_the_last_checkpoint_and_training_args_still_without_token(
        tmp_path, hub, model_folder):
    output_dir = tmp_path / "run"
    push_farstail(output_dir, model_folder, "--save_strategy", "epoch", "--hub_strategy", "checkpoint")

    assert "last-checkpoint/trainer_state.json" in hub.files and "last-checkpoint/training_args.bin" in hub.files
    assert "training_args.bin" in hub.files
    assert_token_nowhere(hub.files, output_dir)


def test_card_metadata_names_hub_base_model_and_dataset_and_leaves_local_paths_out(tmp_path):
    results = {"eval_exact": 70.1, "eval_f1": 82.5, "eval_total": 40, "eval_null_threshold": -1.2,
               "test_f1": 81.0, "test_loss": 1.3, "test_runtime": 2.0, "trainable_params": 10, "epoch": 2.0}
    config = {"model_name_or_path": "HooshvareLab/bert-fa-base-uncased", "dataset_name": "org/pquad",
              "output_dir": str(tmp_path / "parsbert-pquad")}
    card = {"task_type": "question-answering", "dataset": "PQuAD", "language": ["fa"], "tags": ["persian"]}
    metadata = card_metadata(config, results, card, "question-answering")
    assert metadata.base_model == "HooshvareLab/bert-fa-base-uncased" and metadata.datasets == ["org/pquad"]
    assert metadata.license == "unknown" and metadata.tags == ["hf_tasks", "persian"]
    assert sorted((row.dataset_split, row.metric_type, row.metric_value) for row in metadata.eval_results) == [
        ("test", "f1", 81.0), ("validation", "exact", 70.1), ("validation", "f1", 82.5)]
    assert {row.dataset_type for row in metadata.eval_results} == {"org/pquad"}

    local = card_metadata({"model_name_or_path": str(tmp_path), "train_file": "x.json"}, results, card, None)
    assert local.base_model is None and local.datasets is None
    assert card_metadata({"model_name_or_path": "densenet201"}, results, card, None).base_model is None  # a timm name
    assert {row.dataset_type for row in local.eval_results} == {"PQuAD"}


@pytest.mark.skipif(importlib.util.find_spec("trackio") is None, reason="needs trackio")
def test_a_push_reporting_to_trackio_publishes_no_trackio_space_unless_one_is_named(tmp_path, hub, model_folder,
                                                                                   monkeypatch):
    # transformers' trackio callback syncs the project to a new static Space on every push unless told not to.
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    import trackio

    published = []
    monkeypatch.setattr(trackio, "sync", lambda *args, **kwargs: published.append(("sync", kwargs)))
    monkeypatch.setattr(trackio, "freeze", lambda *args, **kwargs: published.append(("freeze", kwargs)))
    output_dir = tmp_path / "run"
    push_farstail(output_dir, model_folder, "--report_to", "trackio")
    assert "model.safetensors" in hub.files  # the model went up ...
    assert published == [] and "space" not in hub.repo_types  # ... and no dashboard with it
    assert (tmp_path / "trackio" / "huggingface.db").is_file()  # the run was tracked, locally
