"""Load on the storage a shared search uses: W worker processes, a trivial objective (no training), N trials.

    python -m tests.benchmarks.bench_study_storage [--workers 32] [--trials 500] [--storages postgresql,journal]

Each worker runs the loop every search worker runs (`hf_tasks.study.search.work`: claim a trial, check it is
one of the N, run it, tell it) against one optuna study: in a PostgreSQL server started here (as root, like
the cluster tests' fixture) and in the default storage, a journal file. Measured: trials per second over the
whole search, and the claim of a trial (from the end of a worker's previous trial, or its start, to the
objective being called: ask, sampling and the count), slowest and median. Checked: exactly N trials finished,
no two with the same parameters, none left running. Writes results/study_storage.json and a row per storage
to results/study_storage.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def worker(url: str, study_name: str, trials: int, out: Path) -> None:
    """One worker: the shared loop with an objective that only samples; its claim times go to `out`."""
    import optuna

    from hf_tasks.study.search import work
    from hf_tasks.study.storage import open_storage, storage_spec

    tuner = optuna.load_study(study_name=study_name, storage=open_storage(storage_spec(url, out.parent)))
    claims: list[float] = []
    since = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        nonlocal since
        claims.append(time.perf_counter() - since)
        value = trial.suggest_float("x", -10.0, 10.0) ** 2
        since = time.perf_counter()
        return value

    work(tuner, trials, objective)
    out.write_text(json.dumps(claims))


def measure(url: str, workers: int, trials: int, folder: Path) -> dict:
    import optuna

    from hf_tasks.study.storage import open_storage, storage_spec

    name = f"bench-{time.time_ns()}"
    optuna.create_study(study_name=name, storage=open_storage(storage_spec(url, folder)))
    started = time.perf_counter()
    processes = [subprocess.Popen([sys.executable, "-m", "tests.benchmarks.bench_study_storage", "--worker", url,
                                   name, str(trials), str(folder / f"claims-{index}.json")])
                 for index in range(workers)]
    codes = [process.wait() for process in processes]
    elapsed = time.perf_counter() - started
    assert codes == [0] * workers, codes
    tuner = optuna.load_study(study_name=name, storage=open_storage(storage_spec(url, folder)))
    finished = [trial for trial in tuner.get_trials() if trial.state == optuna.trial.TrialState.COMPLETE]
    running = [trial for trial in tuner.get_trials() if not trial.state.is_finished()]
    values = [trial.params["x"] for trial in finished]
    claims = [claim for index in range(workers)
              for claim in json.loads((folder / f"claims-{index}.json").read_text())]
    assert len(finished) == trials and not running and len(set(values)) == trials, (
        len(finished), len(running), len(set(values)))
    return {"workers": workers, "trials": trials, "seconds": round(elapsed, 1),
            "trials_per_second": round(trials / elapsed, 1), "slowest_claim_s": round(max(claims), 3),
            "median_claim_s": round(statistics.median(claims), 3),
            "surplus_trials": len(tuner.get_trials()) - trials}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, name, trials, out = sys.argv[2:6]
        worker(url, name, int(trials), Path(out))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--storages", default="postgresql,journal")
    arguments = parser.parse_args()
    from tests.benchmarks.record import record
    from tests.cluster_services import PostgresServer

    rows = {}
    for storage in arguments.storages.split(","):
        folder = Path(tempfile.mkdtemp(prefix=f"hf_tasks-bench-{storage}-"))
        folder.chmod(0o755)
        server = PostgresServer(folder / "server").start() if storage == "postgresql" else None
        try:
            url = server.url if server else f"journal:///{folder / 'search.log'}"
            rows[storage] = measure(url, arguments.workers, arguments.trials, folder)
            print(storage, rows[storage], flush=True)
        finally:
            if server:
                server.stop()
            shutil.rmtree(folder, ignore_errors=True)
    record("study_storage", {f"{storage}: {key}": value for storage, row in rows.items()
                             for key, value in row.items()})


if __name__ == "__main__":
    main()
