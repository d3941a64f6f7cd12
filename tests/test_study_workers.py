"""The study on one machine, the parts a cluster also relies on: a search shared by several worker processes
(default storage), a worker killed mid-trial, files cut short, secrets, and bad input said in one line."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from hf_tasks.study import main
from hf_tasks.study.runs import make_run
from hf_tasks.study.search import evaluations
from tests.conftest import REPO
from tests.study_fakes import expected_accuracy, launches, search_files, search_rows

STUDY = [sys.executable, "-m", "hf_tasks.study"]


def test_two_workers_share_the_default_journal_and_finish_exactly_n_trials(tmp_path):
    config, space = search_files(tmp_path, trial_seconds=1.5)
    output_dir = tmp_path / "search"
    assert main([str(config), "--output_dir", str(output_dir), "--search", str(space), "--trials", "5",
                 "--workers", "2"]) == 0
    rows = search_rows(output_dir)
    assert [row["state"] for row in rows] == ["COMPLETE"] * 5
    rates = [float(row["learning_rate"]) for row in rows]
    assert len(set(rates)) == 5  # no trial's parameters ran twice
    for row in rows:
        assert float(row["eval_accuracy"]) == pytest.approx(expected_accuracy(float(row["learning_rate"])))
    assert len({launch[2] for launch in launches(output_dir)}) == 2  # both workers ran trials
    assert len(launches(output_dir)) == 5
    assert (output_dir / "search.log").is_file()  # optuna's journal file, the default storage
    best = max(rows, key=lambda row: float(row["eval_accuracy"]))
    assert yaml.safe_load((output_dir / "best.yaml").read_text())["learning_rate"] == pytest.approx(
        float(best["learning_rate"]))
    # The same command again: the search has its 5 trials, so nothing runs.
    assert main([str(config), "--output_dir", str(output_dir), "--search", str(space), "--trials", "5",
                 "--workers", "2"]) == 0
    assert len(launches(output_dir)) == 5


def killed_worker_search(config, space, output_dir, *storage: str) -> subprocess.CompletedProcess:
    """A 4-trial search with 2 workers in which the worker of the first trial is killed (SIGKILL, with its
    recipe) once that trial has saved a checkpoint; returns the finished study command."""
    command = [*STUDY, str(config), "--output_dir", str(output_dir), "--search", str(space), "--trials", "4",
               "--workers", "2", "--heartbeat_interval", "2", *storage]
    study = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not launches(output_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    run, _, worker = launches(output_dir)[0]
    while not (output_dir / run / "checkpoint-1" / "trainer_state.json").is_file():
        time.sleep(0.1)
    os.killpg(int(worker), signal.SIGKILL)  # each local worker leads its own process group, its recipe in it
    output, _ = study.communicate(timeout=240)
    return subprocess.CompletedProcess(command, study.returncode, output, "")


def check_killed_trial_was_retried(output_dir) -> None:
    rows = search_rows(output_dir)
    first_run = launches(output_dir)[0][0]
    killed = [row for row in rows if row["state"] == "FAIL"]
    complete = [row for row in rows if row["state"] == "COMPLETE"]
    assert len(complete) == 4 and len(killed) == 1, rows
    assert killed[0]["run"] == first_run
    retry = next(row for row in complete if row["run"] == first_run)  # same folder, same parameters
    assert retry["learning_rate"] == killed[0]["learning_rate"]
    assert len({row["learning_rate"] for row in complete}) == 4
    # The retry resumed from the checkpoint the killed trial saved.
    assert [launch[1] for launch in launches(output_dir) if launch[0] == first_run] == [
        "None", str(output_dir / first_run / "checkpoint-1")]


def test_a_killed_workers_trial_is_retried_and_the_search_still_finishes_n(tmp_path):
    config, space = search_files(tmp_path, trial_seconds=3)
    output_dir = tmp_path / "search"
    finished = killed_worker_search(config, space, output_dir)
    assert finished.returncode == 0, finished.stdout[-3000:]
    assert "worker 0 ended with status -9" in finished.stdout or "worker 1 ended with status -9" in finished.stdout
    check_killed_trial_was_retried(output_dir)


def test_a_half_written_trainer_state_reports_nothing_yet(tmp_path):
    config, _ = search_files(tmp_path)
    run = make_run(config, tmp_path / "search", name="trial-trial0")
    checkpoint = run.run_dir / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text('{"log_history": [{"eval_accuracy": 0.5}, {"eval_acc')
    assert evaluations(run, "eval_accuracy") == []
    (checkpoint / "trainer_state.json").write_text(json.dumps({"log_history": [{"eval_accuracy": 0.5}]}))
    assert evaluations(run, "eval_accuracy") == [0.5]


# A stand-in recipe that writes its results, the command line it was given and whether it got the token.
TOKEN_RECIPE = """
import json, os, sys
from pathlib import Path
argv = sys.argv[1:]
out = Path(argv[argv.index("--output_dir") + 1])
out.mkdir(parents=True, exist_ok=True)
(out / "results.json").write_text(json.dumps({"eval_accuracy": 0.5, "token_seen": os.environ.get("HF_TOKEN"),
                                              "argv": argv}))
"""


def test_a_cut_results_file_means_unfinished_and_secrets_stay_out_of_every_study_file(tmp_path, capfd):
    token = "hf_" + "A1b2C3d4E5f6G7h8I9j0K1l2"
    recipe = tmp_path / "token_recipe.py"
    recipe.write_text(TOKEN_RECIPE)
    config = tmp_path / "pushed.yaml"
    # A password inside any other value (a URL) is hidden by the same rule as the token field.
    config.write_text(yaml.safe_dump({"recipe": str(recipe), "hub_token": token, "learning_rate": 0.1,
                                      "notes_url": "postgresql://ana:s3cret@127.0.0.1/notes"}))
    output_dir = tmp_path / "study"
    (output_dir / "token_recipe-pushed").mkdir(parents=True)
    (output_dir / "token_recipe-pushed" / "results.json").write_text('{"eval_accuracy": 0.')  # a kill cut it
    assert main([str(config), "--output_dir", str(output_dir), "--hub_token", token, "--push_to_hub", "false"]) == 0
    results = json.loads((output_dir / "token_recipe-pushed" / "results.json").read_text())
    assert results["token_seen"] == token  # the run still gets it, through HF_TOKEN
    assert token not in " ".join(results["argv"])
    row = next(csv.DictReader((output_dir / "study.csv").open()))
    assert row["status"] == "ok"  # rerun, not reused from the cut file
    written = [path for path in output_dir.rglob("*") if path.is_file() and path.name != "results.json"]
    assert {path.name for path in written} >= {"study.md", "study.csv", "token_recipe-pushed.log",
                                               "token_recipe-pushed.yaml"}
    for path in written:
        assert token not in path.read_text(errors="replace"), path
        assert "s3cret" not in path.read_text(errors="replace"), path
    assert "ana:***@127.0.0.1" in (output_dir / "configs" / "token_recipe-pushed.yaml").read_text()
    assert "***" in (output_dir / "study.md").read_text()
    assert token not in capfd.readouterr().out


def run_study(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*STUDY, *arguments], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def assert_one_line_refusal(finished: subprocess.CompletedProcess, *expected: str) -> str:
    assert finished.returncode == 2, (finished.stdout, finished.stderr)
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), finished.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_bad_cluster_input_is_one_line_with_status_2_and_nothing_started(tmp_path):
    config, space = search_files(tmp_path)
    output_dir = tmp_path / "out"
    base = [str(config), "--output_dir", str(output_dir)]
    assert_one_line_refusal(run_study(*base, "--search", str(space), "--workers", "0"), "--workers 0")
    closed = socket_port_nobody_listens_on()
    line = assert_one_line_refusal(
        run_study(*base, "--search", str(space), "--storage", f"postgresql://me:hunter2@127.0.0.1:{closed}/optuna"),
        f"127.0.0.1:{closed}", "postgresql://me:***@")
    assert "hunter2" not in line
    assert_one_line_refusal(run_study(*base, "--executor", "slurm", "--slurm_option", "constraint"),
                            "--slurm_option 'constraint'", "KEY=VALUE")
    empty = tmp_path / "no-slurm-here"
    empty.mkdir()
    assert_one_line_refusal(run_study(*base, "--executor", "slurm", env={"PATH": str(empty)}), "sbatch is not on PATH")
    assert not output_dir.exists()  # nothing ran, nothing was written


def socket_port_nobody_listens_on() -> int:
    from tests.cluster_services import free_port

    return free_port()


def test_search_workers_on_devices_each_need_a_trials_worth_of_them(tmp_path):
    from hf_tasks.errors import BadInputError

    config, space = search_files(tmp_path)
    pairs = tmp_path / "pairs.yaml"
    pairs.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), "num_processes": 2}))
    with pytest.raises(BadInputError, match=r"--workers 3 with trials of 2 process\(es\) need 6 devices; "
                                            r"--devices gives 4"):
        main([str(pairs), "--output_dir", str(tmp_path / "out"), "--search", str(space), "--devices", "0,1,2,3",
              "--workers", "3"])
    assert not (tmp_path / "out").exists()
