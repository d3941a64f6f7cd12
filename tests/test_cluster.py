"""The study on a real cluster: a single-node Slurm and a PostgreSQL server started by fixtures (see
tests/cluster_services.py). Marked `cluster`; CI runs them as their own step after installing the packages."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from hf_tasks.study import main
from hf_tasks.study.search import SURPLUS
from hf_tasks.errors import BadInputError
from hf_tasks.study.slurm import launch_prefix, slurm_minutes
from tests.cluster_services import PostgresServer, SlurmCluster, postgres_missing, slurm_missing
from tests.conftest import REPO
from tests.study_fakes import expected_accuracy, launches, search_files, search_rows
from tests.test_study_workers import (
    assert_one_line_refusal,
    check_killed_trial_was_retried,
    killed_worker_search,
    run_study,
)


@pytest.fixture(scope="module")
def postgres():
    reason = postgres_missing()
    if reason:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="hf_tasks-postgres-"))
    folder.chmod(0o755)  # the postgres user reaches its data folder through it
    server = PostgresServer(folder / "server").start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = slurm_missing()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()



def wait_for_file(path: Path, study: subprocess.Popen, seconds: float) -> None:
    """Until `path` exists (a checkpoint, a marker the recipe writes), the study ends, or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not path.is_file() and time.monotonic() < deadline and study.poll() is None:
        time.sleep(0.2)
    assert path.is_file(), study.communicate()[0][-3000:]


def start_again_soon(job_id: str) -> None:
    """Slurm holds a requeued job back for a while (BeginTime); once it is pending again, let it start in 3 s
    (at once, slurmd may still hold the job's revoked credential and kill it: "Killing non-startable batch job")."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "--noheader", "--format=%T", "--jobs", job_id], capture_output=True,
                               text=True).stdout.strip()
        if state == "PENDING":
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now+3"], check=True)
            return
        time.sleep(0.5)

def test_the_launch_line_of_node_two_of_a_two_node_job():
    environ = {"SLURM_NODEID": "1", "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[07-08]"}
    line = launch_prefix(2, 4, True, environ, host="gpu07")
    assert line[1:] == ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_machines", "2", "--machine_rank",
                        "1", "--main_process_ip", "gpu07", "--main_process_port", str(29500 + 4242),
                        "--num_processes", "8"]
    on_cpu = launch_prefix(2, 2, False, {**environ, "SLURM_NODEID": "0"}, host="gpu07")
    assert on_cpu[1:] == ["-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", "0", "--master_addr",
                          "gpu07", "--master_port", str(29500 + 4242), "--nproc_per_node", "2"]


def test_slurm_time_limits_in_minutes_and_a_malformed_one_refused():
    assert [slurm_minutes(text) for text in ("90", "30:30", "04:00:00", "2-00:00:00", "1-12", "00:10:00")] == [
        90, 31, 240, 2880, 2160, 10]
    with pytest.raises(BadInputError, match="--slurm_time 4h: give a Slurm time limit"):
        slurm_minutes("4h")


@pytest.mark.cluster
def test_two_workers_share_one_postgresql_search_and_its_password_stays_hidden(tmp_path, postgres):
    config, space = search_files(tmp_path, trial_seconds=1.5)
    output_dir = tmp_path / "search"
    assert main([str(config), "--output_dir", str(output_dir), "--search", str(space), "--trials", "6",
                 "--workers", "2", "--storage", postgres.url, "--study_name", "shared-by-two"]) == 0
    rows = search_rows(output_dir)
    # The median pruner may stop the sixth on its checkpointed evaluation (it waits for five finished trials).
    assert {row["state"] for row in rows} <= {"COMPLETE", "PRUNED"} and len(rows) == 6
    assert len({row["learning_rate"] for row in rows}) == 6
    for row in rows:
        assert float(row["eval_accuracy"]) == pytest.approx(expected_accuracy(float(row["learning_rate"])))
    assert len({launch[2] for launch in launches(output_dir)}) == 2
    import optuna

    stored = optuna.load_study(study_name="shared-by-two",
                               storage=postgres.url.replace("postgresql://", "postgresql+psycopg://"))
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    given_back = [trial for trial in stored.get_trials() if trial.user_attrs.get(SURPLUS)]
    assert all(trial.state == optuna.trial.TrialState.FAIL and not trial.params for trial in given_back)
    assert len(stored.get_trials(states=finished)) == len(stored.get_trials()) - len(given_back) == 6
    for path in output_dir.rglob("*"):
        if path.is_file() and path.suffix != ".png":
            assert postgres.password not in path.read_text(errors="replace"), path


@pytest.mark.cluster
def test_a_killed_worker_does_not_lose_a_postgresql_search(tmp_path, postgres):
    config, space = search_files(tmp_path, trial_seconds=3)
    output_dir = tmp_path / "search"
    finished = killed_worker_search(config, space, output_dir, "--storage", postgres.url)
    assert finished.returncode == 0, finished.stdout[-3000:]
    assert postgres.password not in finished.stdout
    check_killed_trial_was_retried(output_dir)


@pytest.mark.cluster
def test_search_workers_as_slurm_jobs_against_postgresql(tmp_path, slurm, postgres):
    config, space = search_files(tmp_path, trial_seconds=1.5)
    output_dir = tmp_path / "search"
    command = [str(config), "--output_dir", str(output_dir), "--search", str(space), "--trials", "4", "--workers",
               "2", "--storage", postgres.url, "--executor", "slurm", "--slurm_time", "00:10:00"]
    assert main(command) == 0
    rows = search_rows(output_dir)
    assert [row["state"] for row in rows] == ["COMPLETE"] * 4 and len({row["learning_rate"] for row in rows}) == 4
    workers = json.loads((output_dir / "jobs.json").read_text())["workers"]
    assert sorted(workers) == ["0", "1"]
    status = run_study(*command, "--status")
    assert status.returncode == 0 and status.stdout.count("worker ") >= 2, status.stdout + status.stderr
    for path in output_dir.rglob("*"):
        if path.is_file() and path.suffix != ".png":  # job scripts and pickled jobs too
            assert postgres.password not in path.read_text(errors="replace"), path


def squeue_ids() -> list[str]:
    return subprocess.run(["squeue", "--me", "--noheader", "--format=%i"], capture_output=True, text=True,
                          check=True).stdout.split()


@pytest.mark.cluster
def test_detach_status_and_a_second_command_that_submits_nothing(tmp_path, slurm):
    config, _ = search_files(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text(config.read_text())
    output_dir = tmp_path / "study"
    # begin=now+1hour keeps the jobs pending for as long as the test needs
    command = [str(config), str(other), "--output_dir", str(output_dir), "--executor", "slurm", "--slurm_partition",
               "debug", "--slurm_time", "00:10:00", "--slurm_option", "begin=now+3600", "--detach"]
    first = run_study(*command)
    assert first.returncode == 0, first.stderr
    jobs = json.loads((output_dir / "jobs.json").read_text())["runs"]
    assert sorted(jobs) == ["trial_recipe-other", "trial_recipe-trial"]
    assert sorted(squeue_ids()) == sorted(record["job_id"] for record in jobs.values())
    again = run_study(*command)
    assert again.returncode == 0, again.stderr
    assert "submitted as" not in again.stdout and again.stdout.count("is pending; waiting for it") == 2
    assert json.loads((output_dir / "jobs.json").read_text())["runs"] == jobs
    assert sorted(squeue_ids()) == sorted(record["job_id"] for record in jobs.values())
    status = run_study(*command[:-1], "--status")
    assert status.returncode == 0, status.stderr
    assert sorted(status.stdout.splitlines()) == [f"{name}: pending (job {jobs[name]['job_id']})"
                                                  for name in sorted(jobs)]
    subprocess.run(["scancel", *(record["job_id"] for record in jobs.values())], check=True)
    assert_one_line_refusal(run_study(*command[:4], "--executor", "slurm", "--slurm_partition", "gpu-a100"),
                            "--slurm_partition gpu-a100", "sinfo lists debug")


# The tiny FarsTail recipe with every optimizer step slowed by 0.3 s (numbers unchanged), so that a job can be
# requeued between its first checkpoint and its end.
SLOWED_RECIPE = """
import sys, time
sys.path.insert(0, {recipes!r})
import transformers
import farstail
step = transformers.Trainer.training_step
def slowed(self, *arguments, **keywords):
    time.sleep(0.3)
    return step(self, *arguments, **keywords)
transformers.Trainer.training_step = slowed
farstail.RECIPE.cli()
"""
TINY_RUN = ["--max_train_samples", "64", "--max_eval_samples", "24", "--max_predict_samples", "24",
            "--num_train_epochs", "2", "--per_device_train_batch_size", "8", "--eval_strategy", "no",
            "--save_strategy", "steps", "--save_steps", "4", "--use_cpu", "true", "--report_to", "none",
            "--disable_tqdm", "true"]
VARYING = ("train_runtime", "peak_cpu_memory_mb", "peak_gpu_memory_mb")


@pytest.mark.cluster
def test_a_study_through_slurm_with_a_requeued_job_matches_the_local_study(tmp_path, slurm):
    recipe = tmp_path / "slowed_farstail.py"
    recipe.write_text(SLOWED_RECIPE.format(recipes=str(REPO / "recipes")))
    base = str(REPO / "recipes/configs/farstail/tiny.yaml")
    single = tmp_path / "single.yaml"
    single.write_text(yaml.safe_dump({"recipe": str(recipe), "base": base}))
    # Two processes on the one node, started through the multi-node launch line (rendezvous from SLURM_*).
    pair = tmp_path / "pair.yaml"
    pair.write_text(yaml.safe_dump({"recipe": str(recipe), "base": base, "num_processes": 2, "num_nodes": 1}))
    local, through_slurm = tmp_path / "local", tmp_path / "slurm"

    assert main([str(single), str(pair), "--output_dir", str(local), "--parallel", "2", *TINY_RUN]) == 0
    study = subprocess.Popen([sys.executable, "-m", "hf_tasks.study", str(single), str(pair), "--output_dir",
                              str(through_slurm), "--executor", "slurm", "--slurm_time", "00:20:00", *TINY_RUN],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    checkpoint = through_slurm / "slowed_farstail-single" / "checkpoint-4" / "trainer_state.json"
    wait_for_file(checkpoint, study, 300)
    job_id = json.loads((through_slurm / "jobs.json").read_text())["runs"]["slowed_farstail-single"]["job_id"]
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    start_again_soon(job_id)
    output, _ = study.communicate(timeout=600)
    assert study.returncode == 0, output[-3000:]

    log = (through_slurm / "slowed_farstail-single.log").read_text()
    starts = [line for line in log.splitlines() if line.startswith("[study] slurm job")]
    assert len(starts) == 2 and "--resume_from_checkpoint" in starts[1], starts
    assert "--resume_from_checkpoint" not in starts[0]
    assert "saving checkpoint-" in log  # the recipe stopped cleanly on SIGTERM
    pair_log = (through_slurm / "slowed_farstail-pair.log").read_text()
    assert "torch.distributed.run --nnodes 1 --node_rank 0 --master_addr" in pair_log

    def table(folder: Path) -> dict[str, dict[str, str]]:
        return {row["run"]: row for row in csv.DictReader((folder / "study.csv").open())}

    expected, got = table(local), table(through_slurm)
    assert sorted(got) == sorted(expected) == ["slowed_farstail-pair", "slowed_farstail-single"]
    for name, row in expected.items():
        assert got[name]["status"] == "ok"
        compared = [column for column in row if column not in ("run", "config", "status", *VARYING) and row[column]]
        assert "train_loss" in compared and "test_accuracy" in compared
        print(name, {column: (row[column], got[name][column]) for column in compared})  # local, then Slurm
        for column in compared:
            assert float(got[name][column]) == pytest.approx(float(row[column]), rel=1e-5, abs=1e-7), (name, column)


# Stops as the recipes do on SIGTERM (a checkpoint, exit 143) and finishes when resumed; dies on any other
# signal's default action, as a recipe would.
PREEMPTIBLE_RECIPE = """
import json, signal, sys, time
from pathlib import Path
argv = sys.argv[1:]
def value(flag):
    return argv[argv.index(flag) + 1] if flag in argv else None
out = Path(value("--output_dir"))
out.mkdir(parents=True, exist_ok=True)
with open(out.parent / "launches.txt", "a") as launches:
    launches.write(f"{out.name} {value('--resume_from_checkpoint')}\\n")
if value("--resume_from_checkpoint") is None:
    def stop(number, frame):
        (out / "checkpoint-1").mkdir()
        (out / "checkpoint-1" / "trainer_state.json").write_text("{}")
        print(f"saving checkpoint-1 on {signal.Signals(number).name}", flush=True)
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
    (out / "started").write_text("")
    time.sleep(300)
(out / "results.json").write_text(json.dumps({"eval_accuracy": 0.5}))
"""


@pytest.mark.cluster
def test_the_time_limit_warning_checkpoints_the_recipe_and_requeues_its_job(tmp_path, slurm):
    recipe = tmp_path / "preemptible.py"
    recipe.write_text(PREEMPTIBLE_RECIPE)
    config = tmp_path / "long.yaml"
    config.write_text(yaml.safe_dump({"recipe": str(recipe)}))
    output_dir = tmp_path / "study"
    study = subprocess.Popen([sys.executable, "-m", "hf_tasks.study", str(config), "--output_dir", str(output_dir),
                              "--executor", "slurm", "--slurm_time", "00:10:00", "--slurm_signal", "60"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    started = output_dir / "preemptible-long" / "started"
    wait_for_file(started, study, 120)
    job_id = json.loads((output_dir / "jobs.json").read_text())["runs"]["preemptible-long"]["job_id"]
    # What Slurm sends --slurm_signal seconds before the time limit (and submitit asks for: USR2).
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    start_again_soon(job_id)
    output, _ = study.communicate(timeout=300)
    assert study.returncode == 0, output[-3000:]
    log = (output_dir / "preemptible-long.log").read_text()
    assert "saving checkpoint-1 on SIGTERM" in log  # USR2 went to submitit, which sent the recipe SIGTERM
    assert launches(output_dir) == [["preemptible-long", "None"],
                                    ["preemptible-long", str(output_dir / "preemptible-long" / "checkpoint-1")]]
    assert json.loads((output_dir / "jobs.json").read_text())["runs"]["preemptible-long"]["attempts"] == 1, output


@pytest.mark.cluster
def test_secrets_reach_a_slurm_job_through_its_environment_only(tmp_path, slurm):
    from tests.test_study_workers import TOKEN_RECIPE

    token, forwarded = "hf_" + "Z9y8X7w6V5u4T3s2R1q0P9o8", "hf_" + "Forwarded0123456789abcdef"
    recipe = tmp_path / "token_recipe.py"
    recipe.write_text(TOKEN_RECIPE)
    in_config, on_command_line = tmp_path / "in_config.yaml", tmp_path / "on_command_line.yaml"
    in_config.write_text(yaml.safe_dump({"recipe": str(recipe), "hub_token": token}))
    on_command_line.write_text(yaml.safe_dump({"recipe": str(recipe)}))
    output_dir = tmp_path / "study"
    assert main([str(in_config), "--output_dir", str(output_dir), "--executor", "slurm"]) == 0
    assert main([str(on_command_line), "--output_dir", str(tmp_path / "other"), "--executor", "slurm",
                 "--hub_token", forwarded]) == 0
    assert json.loads((output_dir / "token_recipe-in_config" / "results.json").read_text())["token_seen"] == token
    other = tmp_path / "other" / "token_recipe-on_command_line" / "results.json"
    assert json.loads(other.read_text())["token_seen"] == forwarded
    for folder, secret in ((output_dir, token), (tmp_path / "other", forwarded)):
        for path in folder.rglob("*"):
            if path.is_file() and path.name != "results.json":  # job scripts, pickled jobs, logs, jobs.json
                assert secret.encode() not in path.read_bytes(), path


def slurm_study_of(tmp_path: Path, recipe_name: str, recipe_text: str, config_name: str) -> tuple[Path, list[str]]:
    """A study through Slurm of one config whose recipe is `recipe_text`: its output folder and its arguments."""
    recipe = tmp_path / f"{recipe_name}.py"
    recipe.write_text(recipe_text)
    config = tmp_path / f"{config_name}.yaml"
    config.write_text(yaml.safe_dump({"recipe": str(recipe)}))
    output_dir = tmp_path / "study"
    return output_dir, [str(config), "--output_dir", str(output_dir), "--executor", "slurm", "--slurm_time",
                        "00:10:00"]


@pytest.mark.cluster
def test_a_cancelled_job_is_reported_then_resubmitted_and_resumes(tmp_path, slurm):
    output_dir, command = slurm_study_of(tmp_path, "preemptible", PREEMPTIBLE_RECIPE, "long")
    assert run_study(*command, "--detach").returncode == 0
    started = output_dir / "preemptible-long" / "started"
    deadline = time.monotonic() + 120
    while not started.is_file() and time.monotonic() < deadline:
        time.sleep(0.2)
    first_job = json.loads((output_dir / "jobs.json").read_text())["runs"]["preemptible-long"]["job_id"]
    subprocess.run(["scancel", first_job], check=True)  # SIGTERM to the job: the recipe checkpoints and exits
    deadline = time.monotonic() + 60
    while first_job in squeue_ids() and time.monotonic() < deadline:
        time.sleep(0.5)
    status = run_study(*command, "--status")
    assert status.stdout.strip() == f"preemptible-long: failed (job {first_job}): saving checkpoint-1 on SIGTERM"
    finished = run_study(*command)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    record = json.loads((output_dir / "jobs.json").read_text())["runs"]["preemptible-long"]
    assert record["attempts"] == 2 and record["job_id"] != first_job
    assert launches(output_dir)[-1] == ["preemptible-long", str(output_dir / "preemptible-long" / "checkpoint-1")]
    assert run_study(*command, "--status").stdout.strip() == "preemptible-long: finished"


@pytest.mark.cluster
def test_a_job_whose_recipe_refused_its_input_is_reported_and_not_submitted_again(tmp_path, slurm):
    from tests.test_study import REFUSING_RECIPE

    output_dir, command = slurm_study_of(tmp_path, "refusing", REFUSING_RECIPE, "refused")
    done = run_study(*command)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "refusing-refused: error: --data_dir x: no such folder" in done.stdout
    assert "resubmitting" not in done.stdout
    row = next(csv.DictReader((output_dir / "study.csv").open()))
    assert row["status"] == "refused its input (see refusing-refused.log)"
    record = json.loads((output_dir / "jobs.json").read_text())["runs"]["refusing-refused"]
    assert record["attempts"] == 1
    assert run_study(*command, "--status").stdout.strip() == (
        f"refusing-refused: refused its input (job {record['job_id']}): error: --data_dir x: no such folder")
