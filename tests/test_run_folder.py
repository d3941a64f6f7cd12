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

import numpy as np
import pytest
import soundfile
from transformers import TrainerCallback

from hf_tasks.args import TrainingArguments, parse
from hf_tasks.errors import BadInputError, TrainingInterrupted
from hf_tasks.run_folder import RUN_MANIFEST, check_output_dir
from hf_tasks.samples.images import write_shapes_tree
from hf_tasks.samples.owned_folder import OWNER_MARKER
from tests.conftest import REPO, recipe_args  # first: puts recipes/ on sys.path

import cifar10  # noqa: E402
import farstail  # noqa: E402
import shemo  # noqa: E402

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
    with pytest.raises(BadInputError, match="no checkpoint-\\* folder.*--resume_from_checkpoint auto"):
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


def users_clips(folder: Path) -> Path:
    """A folder as a user would have it: a real-looking ShEMO clip in female/ and a notes file."""
    (folder / "female").mkdir(parents=True)
    rate = 16000
    speech = 0.1 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate).astype(np.float32)
    soundfile.write(folder / "female" / "F01A01.wav", speech, rate, subtype="PCM_16")
    (folder / "notes.txt").write_text("recorded 2024-03, consent forms in the cabinet\n", encoding="utf-8")
    return folder


def test_the_shemo_recipe_refuses_to_generate_into_a_users_folder(tmp_path):
    data_dir = users_clips(tmp_path / "my_shemo")
    before = fingerprint(data_dir)
    args = parse(*shemo.ARGUMENTS, args=recipe_args("recipes/configs/shemo/tiny.yaml", tmp_path / "run",
                                                    "--data_dir", str(data_dir)))
    with pytest.raises(BadInputError, match="my_shemo: is not empty.*Drop --generate_synthetic_data"):
        shemo.main(args)
    assert fingerprint(data_dir) == before
    assert not (tmp_path / "run").exists()


def test_the_cifar10_recipe_refuses_to_generate_into_a_users_folder(tmp_path):
    data_dir = tmp_path / "photos"
    (data_dir / "train" / "cat").mkdir(parents=True)
    (data_dir / "train" / "cat" / "tom.png").write_bytes(b"\x89PNG not really")
    before = fingerprint(data_dir)
    args = parse(*cifar10.ARGUMENTS, args=recipe_args("recipes/configs/cifar10/tiny.yaml", tmp_path / "run",
                                                      "--data_dir", str(data_dir)))
    with pytest.raises(BadInputError, match="photos: is not empty"):
        cifar10.main(args)
    assert fingerprint(data_dir) == before


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
