"""`--executor slurm`: each run of the study is one Slurm job, submitted through submitit.

A job runs the same recipe command the local queue runs (the config's `num_processes: k` per node under
torchrun on CPU or accelerate on GPUs; `num_nodes: n` adds the multi-node rendezvous, read from Slurm's own
variables), writes the same `<run>.log`, and computes its resume flags when it starts, so a requeued job
continues from the run's newest complete checkpoint.

Leaving and coming back: the job ids go to `<output_dir>/jobs.json`. Running the same command again reuses
finished runs, re-attaches to jobs that are pending or running (nothing is submitted twice) and resubmits
the others; `--detach` returns once the jobs are submitted, `--status` prints one line per run. A waiting study
resubmits a job that ended without results once, but not one whose recipe refused its input (it left its
one-line error in the run's `runs.refusal_file`), which another job would meet the same way.

Preemption and time limits: Slurm sends SIGUSR2 `--slurm_signal` seconds before the limit; submitit calls
`RunJob.checkpoint`, which sends SIGTERM to the recipe (it saves a checkpoint and exits 143) and has submitit
requeue the job. A job requeued or preempted by Slurm itself (`scontrol requeue`, PreemptMode=REQUEUE) gets
SIGTERM in every process: submitit ignores it in its own, the recipe checkpoints and exits, and the job runs
again from the top. The recipe process ignores SIGUSR2, whose default action would kill it before it saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hf_tasks import launch
from hf_tasks.errors import BadInputError
from hf_tasks.files import read_json, write_json
from hf_tasks.secrets import shown
from hf_tasks.study.runs import (
    Run,
    SlurmResources,
    StudyArguments,
    last_line,
    make_run,
    recipe_config,
    refusal,
    refusal_file,
    refused_status,
    resume_flags,
    run_environment,
    secrets_to_environment,
)
from hf_tasks.study.table import write_study

JOBS_FILE = "jobs.json"
#: How often a waiting study asks squeue about its jobs.
POLL_SECONDS = 5.0
#: A job in one of these states runs or will run again; squeue's default listing (pending, running, completing)
#: leaves some out, such as a job held after a requeue (REQUEUE_HOLD), which the study must not submit twice; so
#: it asks for every state and keeps these.
ALIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
                          "REQUEUE_FED", "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT"})
#: What a job name may hold: whatever the config or folder is called, the name reaches the job script as plain text.
JOB_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
SLURM_TIME = re.compile(r"^(?:(?P<days>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")


def check_slurm(resources: SlurmResources) -> None:
    """Everything Slurm needs, checked before anything is submitted: sbatch, submitit, the partition, the time."""
    if shutil.which("sbatch") is None:
        raise BadInputError("--executor slurm: sbatch is not on PATH; run the study on a machine of the Slurm "
                            "cluster (a login node), or leave out --executor to run on this machine.")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise BadInputError('--executor slurm needs submitit: pip install -e ".[cluster]".') from None
    if resources.partition is not None:
        listed = subprocess.run(["sinfo", "--noheader", "--format=%R"], capture_output=True, text=True)
        known = sorted(set(listed.stdout.split()))
        if listed.returncode == 0 and resources.partition not in known:
            raise BadInputError(f"--slurm_partition {resources.partition}: Slurm has no such partition; "
                                f"sinfo lists {', '.join(known) or 'none'}.")
    slurm_minutes(resources.time)


def slurm_minutes(text: str) -> int:
    """A Slurm time limit (`minutes`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`) in whole minutes."""
    match = SLURM_TIME.match(text.strip())
    if match is None:
        raise BadInputError(f"--slurm_time {text}: give a Slurm time limit such as 90, 04:00:00 or 2-00:00:00.")
    days = int(match["days"] or 0)
    parts = [int(part) for part in (match["a"], match["b"], match["c"]) if part is not None]
    if match["days"] is not None:
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        hours, minutes, seconds = parts
    else:
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return max(1, days * 1440 + hours * 60 + minutes + (1 if seconds else 0))


def job_name(name: str) -> str:
    """`name` in the alphabet job names keep to (letters, digits, `.`, `_`, `-`; any other run of characters
    becomes `_`), so no name can end the job script's `#SBATCH` line that holds it."""
    return JOB_NAME_UNSAFE.sub("_", name).strip("._") or "run"


def main_host(nodelist: str) -> str:
    """The first host of a Slurm node list (`node[01-04]` and the like), as Slurm itself expands it."""
    hosts = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
    return hosts.stdout.split()[0]


def launch_prefix(num_nodes: int, processes_per_node: int, on_gpus: bool, environ: dict[str, str],
                  host: str) -> list[str]:
    """How one node of a multi-process job starts the recipe: the rendezvous at the job's first host, this
    node's rank from SLURM_NODEID (never a guess: every node thinking it is the main one is the classic
    failure), and a port derived from the job id, so two jobs sharing a node do not collide."""
    port = launch.BASE_PORT + int(environ["SLURM_JOB_ID"]) % 10000
    return launch.launch_prefix(processes_per_node, on_gpus=on_gpus, port=port, machines=num_nodes,
                                machine_rank=int(environ["SLURM_NODEID"]), main_host=host)


def _ignore_usr2() -> None:
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


@dataclass
class RunJob:
    """What submitit pickles and runs in the job: the recipe command, built when the job starts."""

    run: Run
    output_dir: Path
    launcher: list[str]
    forwarded: list[str]  # without secrets: they travel in the environment sbatch exports
    on_gpus: bool
    group: str

    def command(self) -> list[str]:
        run = self.run
        if run.num_processes == 1 and run.num_nodes == 1:
            prefix = self.launcher
        else:
            prefix = launch_prefix(run.num_nodes, run.num_processes, self.on_gpus, dict(os.environ),
                                   main_host(os.environ["SLURM_JOB_NODELIST"]))
        return [*prefix, str(run.recipe), "--config", str(recipe_config(run, self.output_dir)), "--output_dir",
                str(run.run_dir), *self.forwarded, *resume_flags(run)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        env.setdefault("WANDB_RUN_GROUP", self.group)
        run_environment(env, self.run)
        if "OMP_NUM_THREADS" not in env and "SLURM_CPUS_PER_TASK" in env:
            # the job's CPUs shared by its processes, as the local queue shares the machine's
            env["OMP_NUM_THREADS"] = str(max(1, int(env["SLURM_CPUS_PER_TASK"]) // self.run.num_processes))
        return env

    def __call__(self) -> str:
        if self.run.finished:  # requeued after the recipe wrote results.json: relaunching would redo its end
            return "ok"
        command = self.command()
        where = f"slurm job {os.environ.get('SLURM_JOB_ID')} on {socket.gethostname()}"
        self.run.log.parent.mkdir(parents=True, exist_ok=True)
        with self.run.log.open("a", encoding="utf-8") as log:
            log.write(f"[study] {where}: {shown(command)}\n")
            log.flush()
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.environment(),
                                             preexec_fn=_ignore_usr2)
        # poll(), not wait(): checkpoint() may run in a signal handler meanwhile, and wait() holds a lock it needs
        while (code := self._process.poll()) is None:
            time.sleep(1.0)
        if code == 0 and self.run.finished:
            return "ok"
        raise RuntimeError(f"{self.run.name}: the recipe ended with status {code} (see {self.run.log})")

    def checkpoint(self):
        """submitit's hook on the warning signal: stop the recipe cleanly (it saves a checkpoint), then requeue."""
        import submitit

        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            while process.poll() is None:
                time.sleep(1.0)
        return submitit.helpers.DelayedSubmission(self)

    def __getstate__(self):
        return {name: value for name, value in self.__dict__.items() if name != "_process"}


@dataclass
class WorkerJob:
    """One search worker in a job: the study command itself with `--worker i`, logged to worker-<i>.log."""

    command: list[str]
    log: Path

    def __call__(self) -> str:
        package_root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root,
                                                                          os.environ.get("PYTHONPATH")]))}
        with self.log.open("a", encoding="utf-8") as log:
            log.write(f"[study] slurm job {os.environ.get('SLURM_JOB_ID')} on {socket.gethostname()}: "
                      f"{shown(self.command)}\n")
            log.flush()
            code = subprocess.run(self.command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        if code != 0:
            raise RuntimeError(f"worker ended with status {code} (see {self.log})")
        return "ok"


@contextlib.contextmanager
def exported(variables: dict[str, str]) -> Iterator[None]:
    """sbatch gives a job the environment it was called in: set `variables` there for the submission only, so
    secrets reach the job without any file (job script, pickled job, jobs.json) holding them."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def queue_states() -> dict[str, tuple[str, str]]:
    """Job id -> (state, nodes) of this user's jobs that Slurm still holds (pending, running, requeued...)."""
    listed = subprocess.run(["squeue", "--me", "--states=all", "--noheader", "--format=%i|%T|%N"],
                            capture_output=True, text=True)
    if listed.returncode != 0:
        raise RuntimeError(f"squeue failed: {listed.stderr.strip()}")
    states = {}
    for line in listed.stdout.splitlines():
        job_id, state, nodes = (part.strip() for part in (line.split("|") + ["", ""])[:3])
        if state in ALIVE_STATES:
            states[job_id] = (state, nodes)
    return states


def read_jobs(path: Path) -> dict:
    """jobs.json as the study wrote it (`runs` and `workers`: name -> {"job_id": ...}); a file edited or damaged
    into another shape is refused in one line, since the study would submit again what it cannot read."""
    jobs = {"runs": {}, "workers": {}}
    if not path.exists():
        return jobs
    recorded = read_json(path)
    if isinstance(recorded, dict):
        jobs.update(recorded)
    shaped = isinstance(recorded, dict) and all(
        isinstance(jobs[part], dict) and all(isinstance(record, dict) and isinstance(record.get("job_id"), str)
                                             for record in jobs[part].values()) for part in ("runs", "workers"))
    if not shaped:
        raise BadInputError(f"{path}: not the job list this study writes (unreadable, or runs/workers are not "
                            "name -> {job_id: ...} mappings); restore it, or move it away to submit the runs again.")
    return jobs


class SlurmStudy:
    """The study's jobs: submitted, found again from jobs.json, watched through squeue."""

    def __init__(self, study: StudyArguments, environment: dict[str, str] | None = None):
        self.study = study
        self.path = study.output_dir / JOBS_FILE
        self.jobs = read_jobs(self.path)
        _, self.forwarded, secret_env = secrets_to_environment({}, study.forwarded)
        self.environment = {**secret_env, **(environment or {})}  # exported to each job as it is submitted

    def save(self) -> None:
        write_json(self.path, self.jobs)

    def executor(self, name: str, num_nodes: int, processes: int, gpus: int):
        import submitit

        resources = self.study.slurm
        executor = submitit.SlurmExecutor(folder=self.study.output_dir / "slurm" / "%j", max_num_timeout=10)
        executor.update_parameters(
            job_name=job_name(name), partition=resources.partition, account=resources.account, qos=resources.qos,
            time=slurm_minutes(resources.time), nodes=num_nodes, ntasks_per_node=1,
            cpus_per_task=resources.cpus_per_run or max(1, processes), gpus_per_node=gpus or None,
            mem=resources.mem_per_run, signal_delay_s=resources.signal_seconds, stderr_to_stdout=True,
            additional_parameters={"requeue": True, **resources.options})
        return executor

    def submit_run(self, run: Run) -> str:
        # On GPUs, a config's num_processes: k asks for k of them on each node (at least --gpus_per_run).
        gpus = max(self.study.slurm.gpus_per_run, run.num_processes) if self.study.slurm.gpus_per_run else 0
        executor = self.executor(run.name, run.num_nodes, run.num_processes, gpus)
        # The pickled job holds the run without its config's secrets; they reach the job as environment variables,
        # the command line's winning over the config's as in a local run.
        values, _, run_secrets = secrets_to_environment(run.values, self.study.forwarded)
        job_run = dataclasses.replace(run, values=values)
        refusal_file(run).unlink(missing_ok=True)
        with exported({**self.environment, **run_secrets}):
            job = executor.submit(RunJob(job_run, self.study.output_dir, self.study.launcher, self.forwarded,
                                         on_gpus=bool(gpus), group=self.study.output_dir.resolve().name))
        record = self.jobs["runs"].setdefault(run.name, {"attempts": 0})
        record.update(job_id=str(job.job_id), attempts=record["attempts"] + 1,
                      submitted=datetime.datetime.now().isoformat(timespec="seconds"))
        self.save()
        print(f"[study] {run.name}: submitted as slurm job {job.job_id}", flush=True)
        return str(job.job_id)

    def run_line(self, run: Run, states: dict[str, tuple[str, str]]) -> str:
        job_id = self.jobs["runs"].get(run.name, {}).get("job_id")
        if run.finished:
            return f"{run.name}: finished"
        if job_id in states:
            state, nodes = states[job_id]
            where = f" on {nodes}" if state == "RUNNING" and nodes else ""
            return f"{run.name}: {state.lower()}{where} (job {job_id})"
        if job_id is None:
            return f"{run.name}: {'not submitted' if self.study.executor == 'slurm' else 'not finished'}" + (
                f": {last_line(run.log)}" if run.log.is_file() else "")
        if refusal_file(run).is_file():
            return f"{run.name}: refused its input (job {job_id}): {refusal(run)}"
        return f"{run.name}: failed (job {job_id}): {last_line(run.log)}"

    def run_study(self, runs: list[Run], command: str) -> int:
        study = self.study

        def rewrite() -> None:
            write_study(runs, study, command)

        states = queue_states() if study.executor == "slurm" else {}  # --status of a local study: no jobs
        if study.status:
            for run in runs:
                print(self.run_line(run, states))
            return 0
        jobs_here: dict[str, int] = {}  # jobs this command submitted or attached to, per run: one resubmission
        for run in runs:
            job_id = self.jobs["runs"].get(run.name, {}).get("job_id")
            if run.finished:
                run.status = "reused"
                run.read_results()
                continue
            if job_id in states:
                print(f"[study] {run.name}: slurm job {job_id} is {states[job_id][0].lower()}; waiting for it",
                      flush=True)
            else:
                self.submit_run(run)
            jobs_here[run.name] = 1
            run.status = "submitted"
        rewrite()
        if study.detach:
            print(f"[study] {len(jobs_here)} job(s) pending or running; jobs in {self.path}. Check with the same "
                  "command plus --status; run it again without --detach to wait for the table.", flush=True)
            return 0
        while any(run.status == "submitted" for run in runs):
            time.sleep(POLL_SECONDS)
            states = queue_states()
            for run in runs:
                if run.status != "submitted" or self.jobs["runs"][run.name]["job_id"] in states:
                    continue
                if run.finished:
                    run.status = "ok"
                    run.read_results()
                elif refusal_file(run).is_file():
                    run.status = refused_status(run)
                elif jobs_here[run.name] < 2:
                    print(f"[study] {run.name}: job ended without results ({last_line(run.log)}); resubmitting",
                          flush=True)
                    self.submit_run(run)
                    jobs_here[run.name] += 1
                    continue
                else:
                    run.status = f"failed twice (see {run.log.name})"
                print(f"[study] {run.name}: {run.status}", flush=True)
                rewrite()
        rewrite()
        markdown_path = study.output_dir / "study.md"
        print(markdown_path.read_text(encoding="utf-8"))
        return 0 if all(run.status in ("ok", "reused") for run in runs) else 1

    def submit_workers(self, commands: list[list[str]]) -> None:
        """One job per search worker's command; a worker still pending or running is not submitted again."""
        states = queue_states()
        processes = make_run(self.study.configs[0], self.study.output_dir).num_processes
        for index, command in enumerate(commands):
            job_id = self.jobs["workers"].get(str(index), {}).get("job_id")
            if job_id in states:
                print(f"[study] worker {index}: slurm job {job_id} is {states[job_id][0].lower()}", flush=True)
                continue
            gpus = max(self.study.slurm.gpus_per_run, processes) if self.study.slurm.gpus_per_run else 0
            executor = self.executor(f"{self.study.output_dir.name}-worker{index}", 1, processes, gpus)
            with exported(self.environment):
                job = executor.submit(WorkerJob(command, self.study.output_dir / f"worker-{index}.log"))
            self.jobs["workers"][str(index)] = {"job_id": str(job.job_id),
                                                "submitted": datetime.datetime.now().isoformat(timespec="seconds")}
            self.save()
            print(f"[study] worker {index}: submitted as slurm job {job.job_id}: {shown(command)}", flush=True)

    def alive_workers(self) -> list[str]:
        states = queue_states()
        return [record["job_id"] for record in self.jobs["workers"].values() if record["job_id"] in states]

    def wait_for_workers(self) -> None:
        while self.alive_workers():
            time.sleep(POLL_SECONDS)

    def worker_status(self) -> str:
        states = queue_states()
        lines = []
        for index, record in sorted(self.jobs["workers"].items()):
            state, nodes = states.get(record["job_id"], ("ended", ""))
            lines.append(f"worker {index}: {state.lower()}{' on ' + nodes if nodes else ''} (job {record['job_id']}): "
                         f"{last_line(self.study.output_dir / f'worker-{index}.log')}")
        return "\n".join(lines) or "no workers submitted"
