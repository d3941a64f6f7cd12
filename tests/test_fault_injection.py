"""A kill at any moment leaves a run that `--resume_from_checkpoint auto` finishes with the numbers of a
straight run, and touches nothing outside its folder.

Each run is a recipe process; `HF_TASKS_FAULT_AT=<point>[@<n>]` makes it SIGKILL itself at a named moment
(see `hf_tasks.run_folder.fault_point`), as an OOM killer or a lost node would, and the same command with
`--resume_from_checkpoint auto` then runs it to the end.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from hf_tasks.files import read_json
from hf_tasks.run_folder import FAULT_ENV, RUN_MANIFEST
from tests.conftest import REPO, recipe_args

# 64 examples in batches of 16 over 2 epochs: 8 steps, a checkpoint every 2 (checkpoint-8 at the end).
QUICK = ["--max_train_samples", "64", "--max_eval_samples", "32", "--max_predict_samples", "32",
         "--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--learning_rate", "0.002",
         "--save_strategy", "steps", "--save_steps", "2", "--logging_steps", "2", "--log_level", "warning"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
KILLED = -signal.SIGKILL


def launch(output_dir: Path, *extra: str, fault: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "recipes" / "farstail.py"),
               *recipe_args("recipes/configs/farstail/tiny.yaml", output_dir, *QUICK, *extra)]
    env = {**ENV, FAULT_ENV: fault} if fault else ENV
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def outcome(results: dict) -> dict:
    """What must not depend on where a run was killed: its scores and its whole-run training loss."""
    return {key: value for key, value in results.items()
            if key == "train_loss" or (key.startswith(("eval_", "test_"))
                                       and not key.endswith(("_runtime", "_per_second")))}


def checksums(folder: Path, leaving_out: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.is_relative_to(leaving_out)}


def assert_finished_and_complete(output_dir: Path, expected: dict) -> None:
    results = read_json(output_dir / "results.json")
    assert results is not None, "results.json missing or cut short"
    assert outcome(results) == pytest.approx(expected, rel=1e-5)
    listed = set(read_json(output_dir / RUN_MANIFEST)["files"])
    present = {path.relative_to(output_dir).as_posix() for path in output_dir.rglob("*") if path.is_file()}
    assert present - {RUN_MANIFEST} == listed


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    output_dir = tmp_path_factory.mktemp("straight") / "run"
    finished = launch(output_dir)
    assert finished.returncode == 0, finished.stderr[-3000:]
    expected = outcome(read_json(output_dir / "results.json"))
    assert {"train_loss", "eval_accuracy", "test_accuracy"} <= set(expected)
    return expected


# point → what the kill leaves behind, checked before the relaunch
KILL_POINTS = {
    "train_step@3": "checkpoint-2 complete, step 3 never ran",
    # checkpoint-4 is the last step of epoch 1, saved before that epoch's evaluation: the resume must
    # not depend on what the evaluation drew from torch's generator.
    "checkpoint_save@3": "checkpoint-6 cut short (weights, no trainer_state.json), checkpoint-4 complete",
    "final_writes": "model, predictions, config and card written; no manifest, no results.json",
    "before_results": "everything but results.json",
}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_run_killed_at_any_point_resumes_to_the_straight_result(straight, tmp_path, point):
    (tmp_path / "beside.txt").write_text("the user's", encoding="utf-8")
    (tmp_path / "other_run").mkdir()
    (tmp_path / "other_run" / "results.json").write_text("{}", encoding="utf-8")
    output_dir = tmp_path / "run"
    outside = checksums(tmp_path, output_dir)

    killed = launch(output_dir, "--resume_from_checkpoint", "auto", fault=point)
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    assert not (output_dir / "results.json").exists()
    if point.startswith("checkpoint_save"):
        step = 2 * int(point.split("@")[1])
        assert (output_dir / f"checkpoint-{step}" / "model.safetensors").is_file()
        assert not (output_dir / f"checkpoint-{step}" / "trainer_state.json").exists()
    if point == "before_results":
        assert "results.json" in read_json(output_dir / RUN_MANIFEST)["files"]

    resumed = launch(output_dir, "--resume_from_checkpoint", "auto")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_finished_and_complete(output_dir, straight)
    assert checksums(tmp_path, output_dir) == outside


@pytest.mark.parametrize("point", ["final_writes", "train_step@2"])
def test_a_run_killed_before_any_checkpoint_restarts_with_auto_and_resuming_it_again_keeps_its_timings(
        straight, tmp_path, point):
    output_dir = tmp_path / "run"
    no_checkpoints = ["--save_strategy", "no", "--resume_from_checkpoint", "auto"]
    killed = launch(output_dir, *no_checkpoints, fault=point)
    assert killed.returncode == KILLED, killed.stderr[-3000:]
    assert any(output_dir.iterdir()) and not (output_dir / "results.json").exists()
    restarted = launch(output_dir, *no_checkpoints)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert_finished_and_complete(output_dir, straight)
    # Resumed again once finished (a requeue script passes auto on every launch): nothing changes, and it says so.
    before = checksums(output_dir, output_dir / "none")
    again = launch(output_dir, *no_checkpoints)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "holds a finished run (results.json): nothing to resume" in again.stderr
    assert checksums(output_dir, output_dir / "none") == before


def test_a_study_killed_mid_way_finishes_both_runs_when_launched_again(straight, tmp_path):
    config = tmp_path / "tiny.yaml"
    flags = dict(zip(QUICK[::2], QUICK[1::2]))
    values = {"recipe": str(REPO / "recipes" / "farstail.py"), "base": str(REPO / "recipes/configs/farstail/tiny.yaml"),
              **{flag.removeprefix("--"): yaml.safe_load(value) for flag, value in flags.items()}}
    config.write_text(yaml.safe_dump(values), encoding="utf-8")
    output_dir = tmp_path / "study"
    command = [sys.executable, "-m", "hf_tasks.study", str(config), "--output_dir", str(output_dir),
               "--seeds", "42,43", "--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true"]
    first, second = output_dir / "farstail-tiny-seed42", output_dir / "farstail-tiny-seed43"
    study = subprocess.Popen(command, cwd=REPO, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not any(second.glob("checkpoint-*/trainer_state.json")) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(study.pid, signal.SIGKILL)  # the study and its run, as a lost node would
    study.wait()
    assert (first / "results.json").is_file() and not (second / "results.json").exists()
    finished_at = (first / "results.json").stat().st_mtime_ns

    again = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (first / "results.json").stat().st_mtime_ns == finished_at  # reused, not run again
    assert_finished_and_complete(first, straight)
    assert_finished_and_complete(second, outcome(read_json(second / "results.json")))
    assert "--resume_from_checkpoint" in (output_dir / f"{second.name}.log").read_text(encoding="utf-8")
