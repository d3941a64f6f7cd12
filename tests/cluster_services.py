"""A real single-node Slurm cluster and a real PostgreSQL server for the `cluster` tests, from Debian's packages
(`apt-get install slurm-wlm munge postgresql`, as root; `.ci/run` does it).

Everything lives in a temporary folder and listens on loopback ports chosen free: a private munged (its own
key and socket), slurmctld and slurmd (config in the folder, found through SLURM_CONF), and a PostgreSQL
cluster made by initdb as the `postgres` user (initdb and pg_ctl refuse root). `stop()` ends exactly the
daemons it started, by their pid files.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SBIN = ("/usr/sbin", "/usr/local/sbin")


def _program(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(check, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not come up within {seconds:.0f} s")


def _stop_pid_file(path: Path) -> None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


def slurm_missing() -> str | None:
    """Why the Slurm tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "the single-node Slurm cluster is started as root (munged and slurmd need it)"
    missing = [name for name in ("munged", "slurmctld", "slurmd", "sbatch", "squeue") if _program(name) is None]
    if missing:
        return f"{', '.join(missing)} not installed: apt-get install slurm-wlm munge"
    return None


def postgres_missing() -> str | None:
    if os.geteuid() != 0:
        return "the PostgreSQL fixture runs initdb as the postgres user, which needs root"
    if not _initdb() or subprocess.run(["id", "postgres"], capture_output=True).returncode != 0:
        return "PostgreSQL not installed: apt-get install postgresql"
    return None


def _initdb() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return found[-1] if found else shutil.which("initdb")


class SlurmCluster:
    """munged + slurmctld + slurmd on this machine, one partition `debug` of one node."""

    def __init__(self, folder: Path, cpus: int = 8):
        self.folder = folder
        self.conf = folder / "slurm.conf"
        self.cpus = cpus

    def start(self) -> SlurmCluster:
        folder = self.folder
        for name in ("state", "spool", "log", "munge"):
            (folder / name).mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        (folder / "munge").chmod(0o755)  # munged insists the socket's folder be reachable by all
        key = folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        munge = folder / "munge"
        socket_path = munge / "munge.socket"
        subprocess.run([_program("munged"), "--force", f"--key-file={key}", f"--socket={socket_path}",
                        f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
                        f"--seed-file={munge / 'munged.seed'}"], check=True)
        host = socket.gethostname()
        # config_overrides: the node offers `cpus` CPUs whatever this machine has, so several test jobs fit at once.
        self.conf.write_text(f"""ClusterName=hftasks
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket_path}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={folder / 'state'}
SlurmdSpoolDir={folder / 'spool'}
SlurmctldPidFile={folder / 'slurmctld.pid'}
SlurmdPidFile={folder / 'slurmd.pid'}
SlurmctldLogFile={folder / 'log' / 'slurmctld.log'}
SlurmdLogFile={folder / 'log' / 'slurmd.log'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=30
MinJobAge=600
SchedulerParameters=sched_interval=1
NodeName={host} NodeAddr=127.0.0.1 CPUs={self.cpus} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
""")
        # Where cgroup v1 is mounted beside v2, slurmd's v2 plugin stops ("Hybrid mode is not supported").
        plugin = "cgroup/v1" if Path("/sys/fs/cgroup/memory").is_dir() else "autodetect"
        (folder / "cgroup.conf").write_text(f"CgroupPlugin={plugin}\n")
        os.environ["SLURM_CONF"] = str(self.conf)
        subprocess.run([_program("slurmctld"), "-f", str(self.conf)], check=True)
        subprocess.run([_program("slurmd"), "-f", str(self.conf)], check=True)

        def idle() -> bool:
            listed = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True)
            return listed.returncode == 0 and listed.stdout.strip() in ("idle", "mix", "alloc")

        _wait(idle, "the Slurm node")
        return self

    def stop(self) -> None:
        subprocess.run(["scancel", "--me"], capture_output=True)
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            _stop_pid_file(self.folder / pid_file)
        if os.environ.get("SLURM_CONF") == str(self.conf):
            del os.environ["SLURM_CONF"]


class PostgresServer:
    """A PostgreSQL cluster in `folder` (a folder the postgres user can reach: not under pytest's private
    tmp_path), on a loopback port, with a user `hf_tasks` (password checked) and a database `optuna` it owns."""

    user = "hf_tasks"
    password = "s3cret-pw-for-tests"

    def __init__(self, folder: Path):
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/optuna"

    def _as_postgres(self, *command: str) -> subprocess.CompletedProcess:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *command], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        return done

    def start(self) -> PostgresServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.folder, "postgres", "postgres")
        self.folder.chmod(0o755)
        bin_dir = Path(_initdb()).parent
        self._pg_ctl = str(bin_dir / "pg_ctl")
        self._as_postgres(str(bin_dir / "initdb"), "-D", str(self.data), "-A", "scram-sha-256", "-U", "postgres",
                          f"--pwfile={self._password_file()}")
        self._as_postgres(self._pg_ctl, "-D", str(self.data), "-l", str(self.folder / "postgres.log"), "-w", "start",
                          "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                                "-c max_connections=200")
        psql = [str(bin_dir / "psql") if (bin_dir / "psql").exists() else "psql", "-h", str(self.folder), "-p",
                str(self.port), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c"]
        self._as_postgres("env", f"PGPASSWORD={self.password}", *psql,
                          f"CREATE USER {self.user} WITH PASSWORD '{self.password}'")
        self._as_postgres("env", f"PGPASSWORD={self.password}", *psql, f"CREATE DATABASE optuna OWNER {self.user}")
        return self

    def _password_file(self) -> Path:
        path = self.folder / "pwfile"
        path.write_text(self.password + "\n")
        shutil.chown(path, "postgres", "postgres")
        return path

    def stop(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", self._pg_ctl, "-D", str(self.data), "-m", "fast", "-w",
                        "stop"], capture_output=True)
