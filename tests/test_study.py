"""The study command: recipe lookup, argument forwarding, and the comparison table."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from hf_tasks.study import main, parse_study_args, resolve_recipe
from tests.conftest import REPO


def test_recipe_from_the_config_folder_or_a_recipe_key(tmp_path):
    assert resolve_recipe(REPO / "recipes/configs/farstail/prune50.yaml")[0] == REPO / "recipes/farstail.py"
    assert resolve_recipe(REPO / "recipes/configs/parsquad/tiny.yaml")[0] == REPO / "recipes/parsquad.py"
    named = tmp_path / "mine.yaml"
    named.write_text(f"recipe: {REPO / 'recipes/farstail.py'}\nlearning_rate: 0.1\n")
    recipe, values = resolve_recipe(named)
    assert recipe == REPO / "recipes/farstail.py" and values == {"learning_rate": 0.1}
    loose = tmp_path / "loose.yaml"
    loose.write_text("learning_rate: 0.1\n")
    with pytest.raises(SystemExit, match="cannot tell its recipe"):
        resolve_recipe(loose)


def test_study_options_are_kept_and_the_rest_forwarded(tmp_path):
    config = tmp_path / "a.yaml"
    config.write_text("seed: 1\n")
    study = parse_study_args([str(config), "--output_dir", str(tmp_path / "out"), "--max_train_samples", "50",
                              "--launcher", "accelerate launch --num_processes 2", "--parallel", "2",
                              "--columns=eval_uar", "--seeds", "1,2", "--bf16", "false"])
    assert study.configs == [config] and study.parallel == 2 and study.seeds == [1, 2]
    assert study.launcher == ["accelerate", "launch", "--num_processes", "2"]
    assert study.forwarded == ["--max_train_samples", "50", "--bf16", "false"]
    assert study.columns == ["eval_uar"]
    with pytest.raises(SystemExit, match="--output_dir"):
        parse_study_args([str(config)])


def test_table_from_finished_runs(tmp_path):
    folder = tmp_path / "recipes" / "configs" / "nli"
    folder.mkdir(parents=True)
    (tmp_path / "recipes" / "nli.py").write_text("raise SystemExit(3)\n")  # would fail if it ran
    runs = {"full": {"eval_accuracy": 0.826, "test_accuracy": 0.81, "eval_loss": 0.5, "trainable_params": 1000,
                     "total_params": 1000, "train_runtime": 125.0},
            "small": {"eval_accuracy": 0.79, "test_accuracy": 0.775, "eval_loss": 0.6, "trainable_params": 10,
                      "total_params": 1000, "train_runtime": 30.0}}
    configs = []
    for name, results in runs.items():
        configs.append(folder / f"{name}.yaml")
        configs[-1].write_text("seed: 1\n")
        run_dir = tmp_path / "study" / f"nli-{name}"
        run_dir.mkdir(parents=True)
        (run_dir / "results.json").write_text(json.dumps(results))
        (run_dir / "model.safetensors").write_bytes(b"0" * (2**20 if name == "full" else 2**19))
    assert main([*map(str, configs), "--output_dir", str(tmp_path / "study")]) == 0
    rows = list(csv.DictReader((tmp_path / "study" / "study.csv").open()))
    assert [row["run"] for row in rows] == ["nli-full", "nli-small"]
    assert [row["test_accuracy"] for row in rows] == ["0.81", "0.775"]
    assert [row["model_size_mb"] for row in rows] == ["1.0", "0.5"]
    markdown = (tmp_path / "study" / "study.md").read_text()
    assert "| run | eval_accuracy | test_accuracy | eval_loss | trainable_params |" in markdown
    assert "| [nli-full](nli-full) | 0.8260 | 0.8100 | 0.5000 | 1,000 | 1,000 | 2.1 min | 1.0000 | reused |" in markdown


QUICK = ["--max_train_samples", "32", "--max_eval_samples", "24", "--max_predict_samples", "24",
         "--num_train_epochs", "1", "--eval_strategy", "no", "--use_cpu", "true", "--report_to", "none",
         "--disable_tqdm", "true"]


def test_study_runs_each_config_through_its_recipe(tmp_path, monkeypatch):
    import farstail

    from hf_tasks.args import parse

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    output_dir = tmp_path / "study"
    # The full-model row comes from a run made here (reused: its results.json is there); the layer-deleted
    # row from a run the study launches itself, as a separate process.
    farstail.main(*parse(*farstail.ARGUMENTS,
                         args=["--config", "recipes/configs/farstail/tiny.yaml",
                               "--output_dir", str(output_dir / "farstail-tiny"), *QUICK]))
    tiny = yaml.safe_load((REPO / "recipes/configs/farstail/tiny.yaml").read_text())
    smaller = tmp_path / "keep1.yaml"
    smaller.write_text(yaml.safe_dump({"recipe": str(REPO / "recipes/farstail.py"), **tiny, "keep_layers": "first:1"}))
    code = main(["recipes/configs/farstail/tiny.yaml", str(smaller), "--output_dir", str(output_dir), *QUICK])
    assert code == 0, (output_dir / "farstail-keep1.log").read_text()[-3000:]
    rows = {row["run"]: row for row in csv.DictReader((output_dir / "study.csv").open())}
    assert {name: row["status"] for name, row in rows.items()} == {"farstail-tiny": "reused", "farstail-keep1": "ok"}
    for name, row in rows.items():
        results = json.loads((output_dir / name / "results.json").read_text())
        assert float(row["test_accuracy"]) == results["test_accuracy"]
        assert float(row["eval_macro_f1"]) == results["eval_macro_f1"]
    ran = yaml.safe_load((output_dir / "farstail-keep1" / "config.yaml").read_text())
    assert ran["max_train_samples"] == 32 and ran["keep_layers"] == "first:1"  # forwarded flags and the config
    assert int(rows["farstail-keep1"]["total_params"]) < int(rows["farstail-tiny"]["total_params"])
    assert float(rows["farstail-keep1"]["model_size_mb"]) < float(rows["farstail-tiny"]["model_size_mb"])
    assert "[farstail-keep1](farstail-keep1)" in (output_dir / "study.md").read_text()
