"""The study command: recipe lookup, argument forwarding, and the comparison table."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from hf_tasks.study import compare as compare_runs
from hf_tasks.errors import BadInputError
from hf_tasks.study import main, parse_study_args, resolve_recipe
from tests.conftest import REPO, assert_outcomes_give_the_results


def test_recipe_from_the_config_folder_or_a_recipe_key(tmp_path):
    assert resolve_recipe(REPO / "recipes/configs/farstail/prune50.yaml")[0] == REPO / "recipes/farstail.py"
    assert resolve_recipe(REPO / "recipes/configs/parsquad/tiny.yaml")[0] == REPO / "recipes/parsquad.py"
    named = tmp_path / "mine.yaml"
    named.write_text(f"recipe: {REPO / 'recipes/farstail.py'}\nlearning_rate: 0.1\n")
    recipe, values = resolve_recipe(named)
    assert recipe == REPO / "recipes/farstail.py" and values == {"learning_rate": 0.1}
    by_name = tmp_path / "by_name.yaml"
    by_name.write_text("recipe: covid_fakenews\nlearning_rate: 0.1\n")
    assert resolve_recipe(by_name) == (REPO / "recipes/covid_fakenews.py", {"learning_rate": 0.1})
    # A copy of a recipe's config folder elsewhere still belongs to that recipe.
    copied = tmp_path / "configs" / "shemo" / "mine.yaml"
    copied.parent.mkdir(parents=True)
    copied.write_text("learning_rate: 0.1\n")
    assert resolve_recipe(copied)[0] == REPO / "recipes/shemo.py"
    loose = tmp_path / "loose.yaml"
    loose.write_text("learning_rate: 0.1\n")
    with pytest.raises(BadInputError, match="cannot tell its recipe"):
        resolve_recipe(loose)


def test_study_options_are_kept_and_the_rest_forwarded(tmp_path):
    config = tmp_path / "a.yaml"
    config.write_text("seed: 1\n")
    study = parse_study_args([str(config), "--output_dir", str(tmp_path / "out"), "--max_train_samples", "50",
                              "--launcher", "accelerate launch --num_processes 2", "--parallel", "2",
                              "--columns=eval_uar", "--seeds", "1,2", "--bf16", "false", "--baseline", "a"])
    assert study.configs == [config] and study.parallel == 2 and study.seeds == [1, 2] and study.baseline == "a"
    assert study.launcher == ["accelerate", "launch", "--num_processes", "2"]
    assert study.forwarded == ["--max_train_samples", "50", "--bf16", "false"]
    assert study.columns == ["eval_uar"]
    with pytest.raises(BadInputError, match="--output_dir"):
        parse_study_args([str(config)])


def test_a_misspelt_flag_for_the_runs_stops_the_study_before_any_run(tmp_path):
    config = REPO / "recipes" / "configs" / "farstail" / "tiny.yaml"
    with pytest.raises(BadInputError, match=r"^--max_train_sample: neither a study option nor one of recipe "
                                            r"farstail's; .* hf-tasks run farstail --help the recipe's\.$"):
        main([str(config), "--output_dir", str(tmp_path / "out"), "--max_train_sample", "5", "--bf16", "false"])
    assert not (tmp_path / "out").exists()


def test_table_from_finished_runs(tmp_path):
    folder = tmp_path / "recipes" / "configs" / "nli"
    folder.mkdir(parents=True)
    (tmp_path / "recipes" / "nli.py").write_text("raise SystemExit(3)\n")  # would fail if it ran
    runs = {"full": {"eval_accuracy": 0.826, "test_accuracy": 0.81, "eval_loss": 0.5, "trainable_params": 1000,
                     "trainable_share": 1.0, "total_params": 1000, "train_runtime": 125.0},
            "small": {"eval_accuracy": 0.79, "test_accuracy": 0.775, "eval_loss": 0.6, "trainable_params": 10,
                      "trainable_share": 0.01, "total_params": 1000, "train_runtime": 30.0},
            "lora": {"eval_accuracy": 0.8, "test_accuracy": 0.79, "eval_loss": 0.55, "trainable_params": 2734,
                     "trainable_share": 0.002734, "total_params": 1000000, "train_runtime": 40.0}}
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
    assert [row["run"] for row in rows] == ["nli-full", "nli-small", "nli-lora"]
    assert [row["test_accuracy"] for row in rows] == ["0.81", "0.775", "0.79"]
    assert [row["trainable_share"] for row in rows] == ["1.0", "0.01", "0.002734"]  # as results.json holds it
    assert [row["model_size_mb"] for row in rows] == ["1.0", "0.5", "0.5"]
    markdown = (tmp_path / "study" / "study.md").read_text()
    assert ("| run | eval_accuracy | test_accuracy | eval_loss | trainable_params | trainable_share | total_params |"
            in markdown)
    assert ("| [nli-full](nli-full) | 0.8260 | 0.8100 | 0.5000 | 1,000 | 100% | 1,000 | 2.1 min | 1.0000 | reused |"
            in markdown)
    assert "| 10 | 1% | 1,000 |" in markdown
    assert "| 2,734 | 0.273% | 1,000,000 |" in markdown


QUICK = ["--max_train_samples", "32", "--max_eval_samples", "24", "--max_predict_samples", "24",
         "--num_train_epochs", "1", "--eval_strategy", "no", "--use_cpu", "true", "--report_to", "none",
         "--disable_tqdm", "true"]


def test_study_runs_two_configs_side_by_side_through_their_recipes(tmp_path, capsys):
    output_dir = tmp_path / "study"
    smaller = tmp_path / "keep1.yaml"
    smaller.write_text(yaml.safe_dump({"recipe": str(REPO / "recipes/farstail.py"),
                                       "base": str(REPO / "recipes/configs/farstail/tiny.yaml"),
                                       "keep_layers": "first:1"}))
    code = main(["recipes/configs/farstail/tiny.yaml", str(smaller), "--output_dir", str(output_dir),
                 "--parallel", "2", *QUICK])
    assert code == 0, (output_dir / "farstail-keep1.log").read_text()[-3000:]
    rows = {row["run"]: row for row in csv.DictReader((output_dir / "study.csv").open())}
    assert {name: row["status"] for name, row in rows.items()} == {"farstail-tiny": "ok", "farstail-keep1": "ok"}
    for name, row in rows.items():
        results = json.loads((output_dir / name / "results.json").read_text())
        assert float(row["test_accuracy"]) == results["test_accuracy"]
        assert float(row["eval_macro_f1"]) == results["eval_macro_f1"]
        # The recipe process's peak resident size: torch and transformers alone take well over 100 MiB.
        assert float(row["peak_cpu_memory_mb"]) == results["peak_cpu_memory_mb"] > 100
        assert "[study] attempt 1" in (output_dir / f"{name}.log").read_text()
    ran = yaml.safe_load((output_dir / "farstail-keep1" / "config.yaml").read_text())
    assert ran["max_train_samples"] == 32 and ran["keep_layers"] == "first:1"  # forwarded flags and the config
    assert int(rows["farstail-keep1"]["total_params"]) < int(rows["farstail-tiny"]["total_params"])
    assert float(rows["farstail-keep1"]["model_size_mb"]) < float(rows["farstail-tiny"]["model_size_mb"])
    assert "[farstail-keep1](farstail-keep1)" in (output_dir / "study.md").read_text()
    assert (output_dir / "study.png").stat().st_size > 0
    # Per-example outcomes keyed by FarsTail's row numbers score to each run's results; the table gives intervals
    # from them and compares the two configs on the 24 test examples both predicted.
    for name, row in rows.items():
        results = json.loads((output_dir / name / "results.json").read_text())
        assert assert_outcomes_give_the_results(output_dir / name, results) == 8
        assert float(row["test_accuracy_ci_low"]) <= results["test_accuracy"] <= float(row["test_accuracy_ci_high"])
        assert row["test_accuracy_examples"] == "24"
    predictions = list(csv.DictReader((output_dir / "farstail-tiny" / "test_predictions.csv").open()))
    assert [row["example_id"] for row in predictions] == [row["row"] for row in predictions] == [
        str(number) for number in range(1, 25)]
    markdown = (output_dir / "study.md").read_text()
    assert "## Paired comparisons with the baseline farstail-tiny (test_accuracy)" in markdown
    comparison = next(csv.DictReader((output_dir / "study_comparisons.csv").open()))
    assert comparison["config"] == "farstail-keep1" and comparison["examples"] == "24"
    difference = float(rows["farstail-keep1"]["test_accuracy"]) - float(rows["farstail-tiny"]["test_accuracy"])
    assert float(comparison["difference"]) == pytest.approx(difference)
    assert float(comparison["ci_low"]) <= float(comparison["difference"]) <= float(comparison["ci_high"])
    assert comparison["verdict"] in markdown
    assert (output_dir / "study_differences.png").read_bytes()[:4] == b"\x89PNG"
    assert compare_runs.main([str(output_dir / "farstail-tiny"), str(output_dir / "farstail-keep1")]) == 0
    assert f"B − A: {difference:+.4f}" in capsys.readouterr().out


# A stand-in recipe: records each launch, then behaves as its config says (fail once, stop after a
# checkpoint as a killed run does, or finish with an accuracy of seed / 10).
FAKE_RECIPE = """
import json, os, sys, time
from pathlib import Path
import yaml
argv = sys.argv[1:]
def value(flag):
    return argv[argv.index(flag) + 1] if flag in argv else None
config = yaml.safe_load(Path(value("--config")).read_text())
out = Path(value("--output_dir"))
with open(out.parent / "launches.txt", "a") as launches:
    launches.write(f"{out.name} {value('--resume_from_checkpoint')} {value('--overwrite_output_dir')} "
                   f"{os.environ['WANDB_RUN_GROUP']}\\n")
out.mkdir(parents=True, exist_ok=True)
if config.get("fail_first") and not (out / "failed_once").exists():
    (out / "failed_once").write_text("")
    sys.exit(1)
if config.get("hang") and value("--resume_from_checkpoint") is None:
    (out / "checkpoint-1").mkdir()
    (out / "checkpoint-1" / "trainer_state.json").write_text("{}")
    (out / "checkpoint-2").mkdir()  # being written when the kill came: no trainer_state.json yet
    time.sleep(600)
(out / "results.json").write_text(json.dumps({"eval_accuracy": config.get("seed", 0) / 10, "trainable_params": 10,
                                              "train_runtime": 1.0}))
"""


def fake_configs(tmp_path, **behaviours):
    recipe = tmp_path / "fake_recipe.py"
    recipe.write_text(FAKE_RECIPE)
    configs = []
    for name, behaviour in behaviours.items():
        configs.append(tmp_path / f"{name}.yaml")
        configs[-1].write_text(yaml.safe_dump({"recipe": str(recipe), "seed": 3, **behaviour}))
    return configs


def launches(output_dir):
    return [line.split() for line in (output_dir / "launches.txt").read_text().splitlines()]


def test_seeds_aggregate_to_mean_std_and_n(tmp_path):
    output_dir = tmp_path / "study"
    configs = fake_configs(tmp_path, a={}, b={"fail_first": True})
    assert main([*map(str, configs), "--output_dir", str(output_dir), "--seeds", "1,2,6"]) == 0
    row = next(csv.DictReader((output_dir / "study.csv").open()))
    # accuracies 0.1, 0.2, 0.6: mean 0.3; sample std sqrt((0.04 + 0.01 + 0.09) / 2) = sqrt(0.07)
    assert row["run"] == "fake_recipe-a" and row["status"] == "3/3 done"
    assert float(row["eval_accuracy"]) == pytest.approx(0.3)
    assert float(row["eval_accuracy_std"]) == pytest.approx(0.07 ** 0.5)
    assert row["eval_accuracy_n"] == "3"
    assert "| fake_recipe-a | 0.3000 ± 0.2646 (3) |" in (output_dir / "study.md").read_text()
    # Each failing seed ran twice: the retry starts afresh over what the failure left (no checkpoint there).
    retried = [launch for launch in launches(output_dir) if launch[0].startswith("fake_recipe-b")]
    assert sorted(launch[:3] for launch in retried) == sorted(
        [[f"fake_recipe-b-seed{seed}", "None", overwrite] for seed in (1, 2, 6) for overwrite in ("None", "true")])
    assert {launch[3] for launch in launches(output_dir)} == {"study"}  # one wandb group
    assert (output_dir / "fake_recipe-b-seed2.log").read_text().count("[study] attempt") == 2


def test_a_results_file_cut_short_means_the_run_has_not_finished(tmp_path):
    output_dir = tmp_path / "study"
    configs = fake_configs(tmp_path, whole={}, cut={})
    for name, text in (("whole", '{"eval_accuracy": 0.9}'), ("cut", '{"eval_accur')):
        (output_dir / f"fake_recipe-{name}").mkdir(parents=True)
        (output_dir / f"fake_recipe-{name}" / "results.json").write_text(text)
    assert main([*map(str, configs), "--output_dir", str(output_dir)]) == 0
    assert [launch[0] for launch in launches(output_dir)] == ["fake_recipe-cut"]  # rerun, not reused
    rows = {row["run"]: row for row in csv.DictReader((output_dir / "study.csv").open())}
    assert (rows["fake_recipe-whole"]["status"], rows["fake_recipe-whole"]["eval_accuracy"]) == ("reused", "0.9")
    assert (rows["fake_recipe-cut"]["status"], rows["fake_recipe-cut"]["eval_accuracy"]) == ("ok", "0.3")


def test_a_killed_study_continues_without_redoing_finished_runs(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    output_dir = tmp_path / "study"
    configs = fake_configs(tmp_path, done={}, stopped={"hang": True})
    command = [sys.executable, "-m", "hf_tasks.study", *map(str, configs), "--output_dir", str(output_dir),
               "--parallel", "2"]
    study = subprocess.Popen(command, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL)
    finished = output_dir / "fake_recipe-done" / "results.json"
    checkpoint = output_dir / "fake_recipe-stopped" / "checkpoint-2"
    deadline = time.monotonic() + 60
    while not (finished.is_file() and checkpoint.is_dir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(study.pid, signal.SIGKILL)  # the study and its runs, as a lost node would
    study.wait()
    finished_at = finished.stat().st_mtime_ns
    assert main([*map(str, configs), "--output_dir", str(output_dir), "--parallel", "2"]) == 0
    assert finished.stat().st_mtime_ns == finished_at
    stopped = str(output_dir / "fake_recipe-stopped" / "checkpoint-1")  # checkpoint-2 was cut short
    assert [launch[:2] for launch in launches(output_dir)] in (
        [["fake_recipe-done", "None"], ["fake_recipe-stopped", "None"], ["fake_recipe-stopped", stopped]],
        [["fake_recipe-stopped", "None"], ["fake_recipe-done", "None"], ["fake_recipe-stopped", stopped]])
    rows = {row["run"]: row["status"] for row in csv.DictReader((output_dir / "study.csv").open())}
    assert rows == {"fake_recipe-done": "reused", "fake_recipe-stopped": "ok"}


def test_a_run_that_fails_twice_is_reported_and_fails_the_study(tmp_path):
    output_dir = tmp_path / "study"
    recipe = tmp_path / "broken.py"
    recipe.write_text("raise SystemExit(3)\n")
    config = tmp_path / "broken.yaml"
    config.write_text(f"recipe: {recipe}\n")
    assert main([str(config), "--output_dir", str(output_dir)]) == 1
    row = next(csv.DictReader((output_dir / "study.csv").open()))
    assert row["status"] == "failed twice (exit 3; see broken-broken.log)"


def test_a_run_that_refuses_its_input_is_reported_at_once_without_a_second_attempt(tmp_path, capsys):
    output_dir = tmp_path / "study"
    recipe = tmp_path / "refusing.py"
    recipe.write_text("import sys\n"
                      "print('error: --data_dir x: no such folder', file=sys.stderr)\n"
                      "raise SystemExit(2)\n")
    config = tmp_path / "refused.yaml"
    config.write_text(f"recipe: {recipe}\n")
    assert main([str(config), "--output_dir", str(output_dir)]) == 1
    row = next(csv.DictReader((output_dir / "study.csv").open()))
    assert row["status"] == "refused its input (see refusing-refused.log)"
    log = (output_dir / "refusing-refused.log").read_text(encoding="utf-8")
    assert log.count("[study] attempt") == 1
    assert "refusing-refused: error: --data_dir x: no such folder" in capsys.readouterr().out


REFUSING_RECIPE = """
from hf_tasks.errors import BadInputError, one_line_errors

with one_line_errors():
    raise BadInputError("--data_dir x: no such folder")
"""


def test_a_run_of_two_processes_that_refuses_its_input_is_reported_at_once_though_its_launcher_exits_1(tmp_path,
                                                                                                         capsys):
    output_dir = tmp_path / "study"
    recipe = tmp_path / "refusing.py"
    recipe.write_text(REFUSING_RECIPE)
    config = tmp_path / "pair.yaml"
    config.write_text(f"recipe: {recipe}\nnum_processes: 2\n")
    assert main([str(config), "--output_dir", str(output_dir), "--parallel", "2"]) == 1
    row = next(csv.DictReader((output_dir / "study.csv").open()))
    assert row["status"] == "refused its input (see refusing-pair.log)"
    log = (output_dir / "refusing-pair.log").read_text(encoding="utf-8")
    assert log.count("[study] attempt") == 1
    assert "torch.distributed.run" in log  # both processes refused under torchrun, which exited 1
    assert "refusing-pair: error: --data_dir x: no such folder" in capsys.readouterr().out


def test_a_config_asking_for_more_devices_than_the_study_has_stops_early(tmp_path):
    config = fake_configs(tmp_path, big={"num_processes": 4})[0]
    with pytest.raises(BadInputError, match="num_processes: 4 needs 4 devices but the study has 2"):
        main([str(config), "--output_dir", str(tmp_path / "study"), "--devices", "0,1"])


def test_a_three_trial_search_writes_a_best_config_that_reruns_it(tmp_path):
    import farstail

    from hf_tasks.args import parse

    output_dir = tmp_path / "search"
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"objective": "eval_accuracy", "parameters": {
        "learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True}, "num_train_epochs": {"low": 1, "high": 2},
        "per_device_train_batch_size": [8, 16]}}))
    quick = [flag for flag in QUICK if flag not in ("--num_train_epochs", "1", "--eval_strategy", "no")]
    code = main(["recipes/configs/farstail/tiny.yaml", "--output_dir", str(output_dir), "--search", str(space),
                 "--trials", "3", "--parallel", "2", "--eval_strategy", "epoch", "--save_strategy", "epoch", *quick])
    assert code == 0, [log.read_text()[-2000:] for log in output_dir.glob("*.log")]
    trials = list(csv.DictReader((output_dir / "search.csv").open()))
    assert len(trials) == 3 and {row["state"] for row in trials} <= {"COMPLETE", "PRUNED"}
    best = max((row for row in trials if row["state"] == "COMPLETE"), key=lambda row: float(row["eval_accuracy"]))
    rerun = yaml.safe_load((output_dir / "best.yaml").read_text())
    assert rerun["learning_rate"] == pytest.approx(float(best["learning_rate"]))
    assert rerun["per_device_train_batch_size"] == int(best["per_device_train_batch_size"])
    results = farstail.main(parse(*farstail.ARGUMENTS, args=["--config", str(output_dir / "best.yaml"),
                                                              "--output_dir", str(tmp_path / "rerun")]))
    assert results["eval_accuracy"] == pytest.approx(float(best["eval_accuracy"]))
    assert (output_dir / "search.png").stat().st_size > 0
