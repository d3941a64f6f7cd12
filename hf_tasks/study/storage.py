"""Where a search keeps its trials: one optuna study that many workers share.

    --storage postgresql://user:password@host:5432/db    a database server (also mysql://...), many nodes
    --storage journal:///shared/path/search.log           optuna's journal file on a shared filesystem
    --storage sqlite:///path/search.db                     one machine
    (none)                                                  `<output_dir>/search.log`, a journal file

A worker killed mid-trial stops beating its heart; once `grace_period` passes without a beat, the next
worker that looks marks the trial failed and enqueues a copy with the same parameters (optuna's
RetryHeartbeatStaleTrialCallback). optuna's relational storage beats by itself; its journal storage has
no heartbeat in optuna 5, so `HeartbeatJournalStorage` adds one (a time stamp among the trial's system
attributes, which every worker reading the journal sees).

Imported only by the search (optuna is the `search` extra).
"""

from __future__ import annotations

import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import optuna
from optuna.storages._heartbeat import BaseHeartbeat  # the interface optimize() and fail_stale_trials() use

from hf_tasks.errors import BadInputError
from hf_tasks.secrets import redact_text

# Heartbeats, fail_stale_trials and the retry callback are optuna's experimental API, and the one it offers for
# workers that die; its warning would otherwise repeat in every worker's log.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

DEFAULT_JOURNAL = "search.log"
#: Written by an earlier version of the toolkit: a study that has it continues there.
LEGACY_SQLITE = "search.db"
HEARTBEAT_KEY = "hf_tasks:heartbeat"
SCHEMES = ("postgresql", "mysql", "sqlite", "journal")


@dataclass(frozen=True)
class StorageSpec:
    url: str  # as the user gave it, or the default's journal:/// path
    heartbeat_interval: int
    grace_period: int

    @property
    def shown(self) -> str:
        """The URL as logs, study.md and jobs.json may show it: password hidden."""
        return redact_text(self.url)


def storage_spec(url: str | None, output_dir: Path, heartbeat_interval: int = 60) -> StorageSpec:
    """The storage a search uses: `url` checked for its form (not yet connected), or the default beside the study."""
    if url is None:
        legacy = output_dir.resolve() / LEGACY_SQLITE
        url = f"sqlite:///{legacy}" if legacy.is_file() else f"journal:///{output_dir.resolve() / DEFAULT_JOURNAL}"
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    if scheme not in SCHEMES:
        raise BadInputError(f"--storage {redact_text(url)}: give postgresql://user:password@host:port/db, "
                            "mysql://..., sqlite:///path/search.db or journal:///shared/path/search.log.")
    if heartbeat_interval < 1:
        raise BadInputError(f"--heartbeat_interval {heartbeat_interval}: give a whole number of seconds, 1 or more.")
    return StorageSpec(url, heartbeat_interval, grace_period=3 * heartbeat_interval)


def default_study_name(output_dir: Path) -> str:
    """Two studies in one database stay apart: the name says whose folder the study writes to."""
    return f"hf_tasks:{output_dir.resolve()}"


def _check_reachable(url: str) -> None:
    """A database server that does not answer is named (host and port, never the password) before anything runs."""
    parts = urlsplit(url)
    default_port = {"postgresql": 5432, "mysql": 3306}[parts.scheme.split("+", 1)[0]]
    host, port = parts.hostname or "localhost", parts.port or default_port
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as error:
        raise BadInputError(f"--storage {redact_text(url)}: cannot reach the database at {host}:{port} "
                            f"({error.strerror or error}); start it or fix the host and port.") from None


def _sqlalchemy_url(url: str) -> str:
    # The cluster extra installs psycopg (version 3); SQLAlchemy's plain postgresql:// means psycopg2.
    if url.startswith("postgresql://"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def open_storage(spec: StorageSpec):
    """The optuna storage of `spec`, connected, with heartbeats and retries of trials whose worker died."""
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3)
    if spec.url.startswith("journal:///"):
        path = Path(spec.url.removeprefix("journal://"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return HeartbeatJournalStorage(optuna.storages.journal.JournalFileBackend(str(path)),
                                       spec.heartbeat_interval, spec.grace_period, retry)
    if not spec.url.startswith("sqlite"):
        _check_reachable(spec.url)
    try:
        return optuna.storages.RDBStorage(_sqlalchemy_url(spec.url), heartbeat_interval=spec.heartbeat_interval,
                                          grace_period=spec.grace_period, heartbeat_stale_trial_callback=retry)
    except ImportError as error:
        raise BadInputError(f"--storage {spec.shown}: its database driver is missing ({error}); "
                            'pip install -e ".[cluster]".') from None
    except Exception as error:  # sqlalchemy's OperationalError and friends: refused login, unknown database
        message = redact_text(str(error).splitlines()[0] if str(error) else type(error).__name__)
        raise BadInputError(f"--storage {spec.shown}: the database refused the connection ({message}).") from None


class HeartbeatJournalStorage(optuna.storages.JournalStorage, BaseHeartbeat):
    """A journal file whose running trials beat: a time stamp in their system attributes every interval."""

    def __init__(self, backend, heartbeat_interval: int, grace_period: int, stale_callback):
        super().__init__(backend)
        self._heartbeat_interval = heartbeat_interval
        self._grace_period = grace_period
        self._stale_callback = stale_callback

    def record_heartbeat(self, trial_id: int) -> None:
        self.set_trial_system_attr(trial_id, HEARTBEAT_KEY, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            beat = trial.system_attrs.get(HEARTBEAT_KEY)
            if beat is None and trial.datetime_start is not None:
                beat = trial.datetime_start.timestamp()
            if beat is not None and now - beat > self._grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int:
        return self._heartbeat_interval

    def get_heartbeat_stale_trial_callback(self):
        return self._stale_callback
