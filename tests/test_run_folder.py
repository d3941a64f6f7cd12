"""Nothing a user made is lost: run folders are not overwritten by accident, an overwrite on request
leaves nothing of the earlier run behind, interrupted runs exit non-zero without final files, and
`--resume_from_checkpoint auto` serves requeue scripts. Sample generators only write folders they own."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import TrainerCallback

from hf_tasks.args import TrainingArguments, parse
from hf_tasks.errors import BadInputError, TrainingInterrupted
from hf_tasks.run_folder import (
    RUN_MANIFEST,
    check_output_dir,
    clear_previous_run,
    newest_complete_checkpoint,
    resolve_checkpoint,
)
from hf_tasks.study import runs as study_runs
from hf_tasks.samples.images import write_shapes_tree
from hf_tasks.samples.owned_folder import OWNER_MARKER
from tests.conftest import REPO, recipe_args  # first: puts recipes/ on sys.path

import farstail  # noqa: E402

QUICK = ["--max_train_samples", "48", "--max_eval_samples", "24", "--max_predict_samples", "24",
         "--num_train_epochs", "1", "--per_device_train_batch_size", "16", "--save_strategy", "epoch"]


def run_farstail(output_dir: Path, *overrides: str):
    return farstail.main(parse(
        *farstail.ARGUMENTS, args=recipe_args("recipes/configs/farstail/tiny.yaml", output_dir, *QUICK, *overrides)))


def fingerprint(folder: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every file under `folder`."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


# --- The output folder's rule -------------------------------------------------------------------------


def arguments(output_dir: Path, **overrides) -> TrainingArguments:
    return TrainingArguments(output_dir=str(output_dir), use_cpu=True, report_to="none", do_train=True, **overrides)


def test_a_new_or_empty_output_dir_is_fine_and_any_file_stops_the_run(tmp_path):
    check_output_dir(arguments(tmp_path / "new"))
    check_output_dir(arguments(tmp_path))
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match=r"already holds files \(notes.txt\).*--overwrite_output_dir"):
        check_output_dir(arguments(tmp_path))
    check_output_dir(arguments(tmp_path, overwrite_output_dir=True))


def test_resume_auto_starts_fresh_without_a_checkpoint_and_latest_demands_one(tmp_path):
    check_output_dir(arguments(tmp_path, resume_from_checkpoint="auto"))
    with pytest.raises(BadInputError, match="no complete checkpoint-\\* folder.*--resume_from_checkpoint auto"):
        check_output_dir(arguments(tmp_path, resume_from_checkpoint="latest"))
    (tmp_path / "checkpoint-4").mkdir()
    with pytest.raises(BadInputError, match="checkpoints of an unfinished run"):
        check_output_dir(arguments(tmp_path))
    check_output_dir(arguments(tmp_path, resume_from_checkpoint="auto"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("finished")
    results = run_farstail(output_dir)
    return output_dir, results


def test_rerunning_into_a_finished_run_stops_and_changes_nothing(finished_run):
    output_dir, _ = finished_run
    before = fingerprint(output_dir)
    rerun = parse(*farstail.ARGUMENTS, args=["--config", str(output_dir / "config.yaml"), "--use_cpu", "true"])
    with pytest.raises(BadInputError, match="already holds a finished run"):
        farstail.main(rerun)
    assert fingerprint(output_dir) == before


def test_resuming_a_finished_run_with_auto_changes_nothing_and_says_it_was_finished(finished_run, capsys):
    output_dir, _ = finished_run
    before = fingerprint(output_dir)
    for word in ("auto", "latest"):
        with pytest.raises(SystemExit) as stopped:
            run_farstail(output_dir, "--resume_from_checkpoint", word)
        assert stopped.value.code == 0
        assert "holds a finished run (results.json): nothing to resume" in capsys.readouterr().err
    assert fingerprint(output_dir) == before  # the original timings stay


def test_auto_on_files_no_run_started_does_not_suggest_auto(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError) as refused:
        check_output_dir(arguments(tmp_path, resume_from_checkpoint="auto"))
    assert "files no run of this toolkit started (notes.txt)" in str(refused.value)
    assert "--resume_from_checkpoint" not in str(refused.value)


def test_an_overwrite_on_request_leaves_nothing_of_the_earlier_run(finished_run, tmp_path):
    earlier, _ = finished_run
    output_dir = tmp_path / "run"
    # A copy of the finished run, plus a file of the user's.
    subprocess.run(["cp", "-r", str(earlier), str(output_dir)], check=True)
    (output_dir / "my_notes.txt").write_text("keep me", encoding="utf-8")
    assert (output_dir / "test_predictions.csv").is_file()
    run_farstail(output_dir, "--overwrite_output_dir", "true", "--do_predict", "false")
    assert not (output_dir / "test_predictions.csv").exists()
    assert (output_dir / "my_notes.txt").read_text(encoding="utf-8") == "keep me"
    assert "test_accuracy" not in json.loads((output_dir / "results.json").read_text())
    listed = json.loads((output_dir / RUN_MANIFEST).read_text())["files"]
    assert "results.json" in listed and "my_notes.txt" not in listed


CONCURRENT_WRITER = """
import sys, time
from pathlib import Path
folder = Path(sys.argv[1])
(folder / "scratch").mkdir(exist_ok=True)
for step in range(100000):
    with open(folder / "notes.txt", "a") as notes:
        notes.write(f"line {step}\\n")
    (folder / "scratch" / f"note-{step % 5}.txt").write_text(str(step))
    (folder / f"written-meanwhile-{step % 3}.txt").write_text(str(step))
    time.sleep(0.02)
"""


def test_the_manifest_lists_only_what_the_run_wrote_never_a_concurrent_writers_files(tmp_path):
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    (output_dir / "notes.txt").write_text("the user's notes\n", encoding="utf-8")
    writer = subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, str(output_dir)])
    try:
        run_farstail(output_dir, "--overwrite_output_dir", "true")
    finally:
        writer.kill()
        writer.wait()
    listed = json.loads((output_dir / RUN_MANIFEST).read_text())["files"]
    assert {"results.json", "model.safetensors", "config.yaml"} <= set(listed)
    assert not [entry for entry in listed if "notes" in entry or "meanwhile" in entry or "scratch" in entry]
    run_farstail(output_dir, "--overwrite_output_dir", "true")
    assert (output_dir / "notes.txt").read_text(encoding="utf-8").startswith("the user's notes\n")
    assert (output_dir / "scratch").is_dir() and (output_dir / "written-meanwhile-0.txt").is_file()


# --- Interrupted runs and requeue scripts ---------------------------------------------------------------


class SigtermAtStep(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            signal.raise_signal(signal.SIGTERM)


def test_an_interrupted_run_exits_143_writes_nothing_final_and_resumes_with_auto(tmp_path, monkeypatch):
    output_dir = tmp_path / "run"
    runner_run = farstail.run
    monkeypatch.setattr(farstail, "run", lambda *args, callbacks=(), **kwargs: runner_run(
        *args, callbacks=[*callbacks, SigtermAtStep(2)], **kwargs))
    with pytest.raises(TrainingInterrupted) as stopped:
        run_farstail(output_dir, "--num_train_epochs", "2", "--resume_from_checkpoint", "auto")
    monkeypatch.undo()
    assert stopped.value.code == 143 and stopped.value.step == 2
    assert (output_dir / "checkpoint-2").is_dir()
    for final in ("results.json", "README.md", "config.yaml", "model.safetensors", RUN_MANIFEST):
        assert not (output_dir / final).exists(), final
    resumed = run_farstail(output_dir, "--num_train_epochs", "2", "--resume_from_checkpoint", "auto")
    assert resumed["epoch"] == 2.0 and (output_dir / "results.json").is_file()


def test_a_sigterm_to_the_recipe_process_exits_143_and_says_how_to_resume(tmp_path):
    """The command line as a cluster sees it: the exit status and the message, no traceback."""
    output_dir = tmp_path / "run"
    script = (
        "import os, signal, sys\n"
        "sys.path.insert(0, 'recipes')\n"
        "from transformers import TrainerCallback\n"
        "import farstail\n"
        "from hf_tasks.args import parse\n"
        "class Stop(TrainerCallback):\n"
        "    def on_step_end(self, args, state, control, **kwargs):\n"
        "        if state.global_step == 1: os.kill(os.getpid(), signal.SIGTERM)\n"
        "runner_run = farstail.run\n"
        "farstail.run = lambda *a, callbacks=(), **k: runner_run(*a, callbacks=[*callbacks, Stop()], **k)\n"
        "farstail.main(parse(*farstail.ARGUMENTS))\n"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script, *recipe_args("recipes/configs/farstail/tiny.yaml", output_dir, *QUICK)],
        cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    output = finished.stdout + finished.stderr
    assert finished.returncode == 143, output[-2000:]
    assert "--resume_from_checkpoint auto" in output and "Traceback" not in output
    assert "Training completed" not in output


# --- Sample generators write only folders they own -----------------------------------------------------


def test_a_generated_folder_is_reused_as_it_is_replaced_on_new_settings_and_refused_once_touched(tmp_path):
    root = write_shapes_tree(tmp_path / "shapes", train_per_class=2, test_per_class=1)
    assert json.loads((root / OWNER_MARKER).read_text())["generator"] == "shapes"
    first = {path: path.stat().st_mtime_ns for path in root.rglob("*.png")}
    write_shapes_tree(root, train_per_class=2, test_per_class=1)
    assert {path: path.stat().st_mtime_ns for path in root.rglob("*.png")} == first  # same settings: reused
    write_shapes_tree(root, train_per_class=1, test_per_class=1)
    assert len(list((root / "train" / "circle").glob("*.png"))) == 1  # the old second image is gone
    (root / "train" / "circle" / "mine.png").write_bytes(b"a user's image")
    with pytest.raises(BadInputError, match=r"holds files the generator did not write \(train/circle/mine.png\)"):
        write_shapes_tree(root, train_per_class=3, test_per_class=1)
    assert (root / "train" / "circle" / "mine.png").read_bytes() == b"a user's image"


# --- Deletions stay inside the folder, whatever a manifest says ------------------------------------------


def earlier_run(folder: Path, entries: list[str]) -> Path:
    """`folder` as an earlier run (or a crafted download) left it: a results file, a checkpoint, a manifest."""
    (folder / "checkpoint-4").mkdir(parents=True)
    (folder / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (folder / "results.json").write_text("{}")
    (folder / RUN_MANIFEST).write_text(json.dumps({"files": entries}))
    return folder


@pytest.mark.parametrize("entry", ["../beside.txt", "{outside}", "link/beside.txt", "sub/../../beside.txt", "."])
def test_an_overwrite_refuses_a_manifest_entry_outside_the_folder_and_removes_nothing(tmp_path, entry):
    beside = tmp_path / "beside.txt"
    beside.write_text("the user's", encoding="utf-8")
    output_dir = tmp_path / "run"
    output_dir.mkdir()
    (output_dir / "link").symlink_to(tmp_path, target_is_directory=True)
    earlier_run(output_dir, ["results.json", entry.format(outside=beside)])
    before = fingerprint(tmp_path)
    with pytest.raises(BadInputError, match=rf"{RUN_MANIFEST}: the entry .* so nothing was removed"):
        clear_previous_run(output_dir)
    assert fingerprint(tmp_path) == before


def test_an_overwrite_removes_only_listed_files_trainer_checkpoints_and_folders_it_emptied(tmp_path):
    output_dir = earlier_run(tmp_path / "run", ["results.json", "plots/curves.png"])
    (output_dir / "plots").mkdir()
    (output_dir / "plots" / "curves.png").write_bytes(b"png")
    (output_dir / "data" / "raw").mkdir(parents=True)  # the user's empty folder
    (output_dir / "checkpoint-best").mkdir()  # not a Trainer checkpoint
    (output_dir / "checkpoint-best" / "notes.txt").write_text("mine")
    clear_previous_run(output_dir)
    assert sorted(path.relative_to(output_dir).as_posix() for path in output_dir.rglob("*")) == [
        "checkpoint-best", "checkpoint-best/notes.txt", "data", "data/raw"]


def test_a_manifest_that_is_not_a_list_of_files_is_refused_in_one_line(tmp_path):
    output_dir = earlier_run(tmp_path / "run", [])
    (output_dir / RUN_MANIFEST).write_text(json.dumps({"files": {"../x": 1}}))
    with pytest.raises(BadInputError, match=f"{RUN_MANIFEST}: not a list of files"):
        clear_previous_run(output_dir)
    assert (output_dir / "results.json").is_file()


def test_a_generated_folder_whose_marker_lists_a_path_outside_it_is_refused(tmp_path):
    root = write_shapes_tree(tmp_path / "shapes", train_per_class=1, test_per_class=1)
    beside = tmp_path / "beside.txt"
    beside.write_text("the user's", encoding="utf-8")
    marker = json.loads((root / OWNER_MARKER).read_text())
    marker["files"]["../beside.txt"] = 10
    (root / OWNER_MARKER).write_text(json.dumps(marker))
    with pytest.raises(BadInputError, match=rf"{OWNER_MARKER}: the entry '../beside.txt' climbs out"):
        write_shapes_tree(root, train_per_class=2, test_per_class=1)
    assert beside.read_text(encoding="utf-8") == "the user's"


# --- One rule for the newest complete checkpoint --------------------------------------------------------


def checkpoint(folder: Path, step: int, state: str | None = '{"global_step": 1}') -> Path:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_resume_auto_and_latest_pass_over_checkpoints_a_kill_cut_short(tmp_path):
    complete = checkpoint(tmp_path, 10)
    checkpoint(tmp_path, 20, state=None)  # killed before trainer_state.json
    checkpoint(tmp_path, 30, state='{"global_st')  # killed while writing it
    checkpoint(tmp_path, 40).rename(tmp_path / "checkpoint-40-old")  # not the Trainer's name
    for word in ("auto", "latest"):
        assert resolve_checkpoint(arguments(tmp_path, resume_from_checkpoint=word)) == str(complete)
    assert newest_complete_checkpoint(tmp_path) == complete
    assert study_runs.newest_complete_checkpoint is newest_complete_checkpoint  # the study asks the same rule


def test_an_overwrite_removes_what_a_killed_atomic_write_left_and_nothing_like_it_of_the_users(tmp_path):
    output_dir = earlier_run(tmp_path / "run", ["results.json"])
    (output_dir / ".config.yaml.k2j4_5g6.tmp").write_text("half a config")  # atomic_path's temporary name
    (output_dir / "draft.tmp").write_text("the user's")
    clear_previous_run(output_dir)
    assert sorted(path.name for path in output_dir.iterdir()) == ["draft.tmp"]
