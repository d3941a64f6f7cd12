"""The user's folder wins: a demo config that generates sample data (`generate_synthetic_data: true`)
reads a `--data_dir` holding the user's own data as it is, without generating, and says so in the start
block; generation still fills a new, empty or generated folder, and a generated folder the user added
files to stops the run untouched."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest

from hf_tasks.args import parse
from hf_tasks.errors import BadInputError
from hf_tasks.samples.images import draw_shape, write_shapes_tree
from hf_tasks.samples.owned_folder import OWNER_MARKER
from hf_tasks.samples.shemo import write_synthetic_shemo
from tests.conftest import recipe_args  # first: puts recipes/ on sys.path

import cifar10  # noqa: E402
import shemo  # noqa: E402

# Evaluation only: these tests are about which data is read, not about learning.
EVALUATE_ONLY = ["--do_train", "false", "--do_predict", "false", "--load_best_model_at_end", "false"]
USERS_DATA = "your data, read as it is: the sample generator (generate_synthetic_data) did not run"


def fingerprint(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def start_block(caplog) -> str:
    return "\n".join(record.getMessage() for record in caplog.records if record.name == "hf_tasks")


def users_images(folder: Path) -> Path:
    """An ImageFolder tree of the user's: two classes the shapes generator never makes, and a notes file."""
    rng = np.random.default_rng(7)
    for split, count in (("train", 6), ("test", 2)):
        for label, shape in (("round", "circle"), ("boxy", "square")):
            (folder / split / label).mkdir(parents=True)
            for index in range(count):
                draw_shape(shape, rng).save(folder / split / label / f"photo{index}.png")
    (folder / "notes.txt").write_text("taken 2024-03\n", encoding="utf-8")
    return folder


def users_clips(folder: Path) -> Path:
    """ShEMO-named recordings of the user's: the generator's clips with its marker gone, and a notes file."""
    write_synthetic_shemo(folder, utterances=2, fear_utterances=1, seed=3)
    (folder / OWNER_MARKER).unlink()
    (folder / "notes.txt").write_text("recorded 2024-03, consent forms in the cabinet\n", encoding="utf-8")
    return folder


def test_cifar10_reads_the_users_image_folder_instead_of_generating(tmp_path, caplog):
    data_dir = users_images(tmp_path / "my_photos")
    before = fingerprint(data_dir)
    args = parse(*cifar10.ARGUMENTS, args=recipe_args("recipes/configs/cifar10/tiny.yaml", tmp_path / "run",
                                                      "--data_dir", str(data_dir), *EVALUATE_ONLY))
    assert args[cifar10.Cifar10Arguments].generate_synthetic_data  # the config asks for the demo data; the folder wins
    with caplog.at_level(logging.INFO, logger="hf_tasks"):
        results = cifar10.main(args)
    assert fingerprint(data_dir) == before  # nothing written, nothing replaced
    log = start_block(caplog)
    assert f"Data: folder {data_dir} ({USERS_DATA}" in log
    assert "Classes: boxy, round" in log
    assert "eval_accuracy" in results


def test_shemo_reads_the_users_recordings_instead_of_generating(tmp_path, caplog):
    data_dir = users_clips(tmp_path / "my_shemo")
    before = fingerprint(data_dir)
    args = parse(*shemo.ARGUMENTS, args=recipe_args("recipes/configs/shemo/tiny.yaml", tmp_path / "run",
                                                    "--data_dir", str(data_dir), *EVALUATE_ONLY))
    assert args[shemo.AudioArguments].generate_synthetic_data
    with caplog.at_level(logging.INFO, logger="hf_tasks"):
        results = shemo.main(args)
    assert fingerprint(data_dir) == before
    assert f"Data: folder {data_dir} ({USERS_DATA}" in start_block(caplog)
    assert "eval_uar" in results


def test_the_generator_fills_a_new_folder_and_the_start_block_says_the_data_is_synthetic(tmp_path, caplog):
    data_dir = tmp_path / "new" / "shapes"
    args = parse(*cifar10.ARGUMENTS, args=recipe_args("recipes/configs/cifar10/tiny.yaml", tmp_path / "run",
                                                      "--data_dir", str(data_dir), *EVALUATE_ONLY))
    with caplog.at_level(logging.INFO, logger="hf_tasks"):
        cifar10.main(args)
    assert (data_dir / OWNER_MARKER).is_file()
    assert f"Data: folder {data_dir} (synthetic data from the sample generator)" in start_block(caplog)


def test_a_generated_folder_with_the_users_files_added_stops_untouched(tmp_path):
    data_dir = write_shapes_tree(tmp_path / "shapes", train_per_class=2, test_per_class=1)
    (data_dir / "train" / "circle" / "mine.png").write_bytes(b"a user's image")
    before = fingerprint(data_dir)
    args = parse(*cifar10.ARGUMENTS, args=recipe_args("recipes/configs/cifar10/tiny.yaml", tmp_path / "run",
                                                      "--data_dir", str(data_dir), *EVALUATE_ONLY))
    with pytest.raises(BadInputError, match=r"holds files the generator did not write \(train/circle/mine.png\)"):
        cifar10.main(args)
    assert fingerprint(data_dir) == before
