"""Every bad input a user can cause stops the recipe before training with one line on stderr, status 2 and
no traceback, naming the file, row or flag and the fix.

The cases double as the table of docs/concepts/bad-inputs.md: `python -m tests.test_bad_inputs` runs them and
prints its rows (tests/test_docs.py checks that the page has a row for each).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import REPO

SAMPLES = REPO / "hf_tasks" / "samples"


@dataclass(frozen=True)
class BadInput:
    """What a user did wrong, the recipe and config it reaches, how to make it, and what the line must name."""

    what: str
    recipe: str
    make: Callable[[Path], list[str]]  # writes what it needs under the folder; returns the extra flags
    named: tuple[str, ...]


def missing_model_folder(folder: Path) -> list[str]:
    return ["--config_name", "none", "--model_name_or_path", str(folder / "my-model")]


def yaml_syntax_error(folder: Path) -> list[str]:
    config = folder / "broken.yaml"
    config.write_text("learning_rate: 1e-3\nnum_train_epochs: [3\n", encoding="utf-8")
    return ["--config", str(config)]


def zero_training_samples(folder: Path) -> list[str]:
    return ["--max_train_samples", "0"]


def clashing_trainer_flags(folder: Path) -> list[str]:
    return ["--load_best_model_at_end", "true", "--eval_strategy", "epoch", "--save_strategy", "no"]


def non_utf8_tsv(folder: Path) -> list[str]:
    lines = (SAMPLES / "farstail" / "train.tsv").read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"\t", b" \x92\t", 1)  # a cp1252 right quote on line 3
    path = folder / "train.tsv"
    path.write_bytes(b"\n".join(lines))
    return ["--train_file", str(path)]


def missing_data_file(folder: Path) -> list[str]:
    return ["--train_file", str(folder / "no-such-train.tsv")]


def wrong_column(folder: Path) -> list[str]:
    text = (SAMPLES / "farstail" / "train.tsv").read_text(encoding="utf-8")
    path = folder / "train.tsv"
    path.write_text(text.replace("premise", "sentence1", 1), encoding="utf-8")
    return ["--train_file", str(path)]


def unknown_tweet_labels(folder: Path) -> list[str]:
    with (SAMPLES / "constraint" / "train.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    rows[1][2], rows[2][2] = "FAKE", "Real"
    path = folder / "train.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return ["--train_file", str(path)]


def answer_without_start(folder: Path) -> list[str]:
    document = json.loads((SAMPLES / "pquad" / "train.json").read_text(encoding="utf-8"))
    question = next(qa for article in document["data"] for paragraph in article["paragraphs"]
                    for qa in paragraph["qas"] if qa["answers"])
    del question["answers"][0]["answer_start"]
    path = folder / "train.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return ["--train_file", str(path)]


def corrupt_image(folder: Path) -> list[str]:
    from hf_tasks.samples.images import write_shapes_tree

    root = write_shapes_tree(folder / "shapes", train_per_class=3, test_per_class=1)
    (root / "train" / "circle" / "broken.png").write_bytes(b"\x89PNG not really")
    return ["--data_dir", str(root), "--generate_synthetic_data", "false"]


def unreadable_clip(folder: Path) -> list[str]:
    from hf_tasks.samples.shemo import write_synthetic_shemo

    clips = write_synthetic_shemo(folder / "clips", utterances=1, fear_utterances=1)
    (clips / "female" / "F01A09.wav").write_bytes(b"not a wav file at all")
    return ["--data_dir", str(clips), "--generate_synthetic_data", "false"]


CASES = {
    "missing_model_folder": BadInput("a --model_name_or_path folder that does not exist", "farstail",
                                     missing_model_folder, ("--model_name_or_path", "my-model", "no such folder")),
    "yaml_syntax_error": BadInput("a YAML syntax error in --config", "farstail", yaml_syntax_error,
                                  ("broken.yaml:3:", "not valid YAML")),
    "zero_training_samples": BadInput("--max_train_samples 0", "farstail", zero_training_samples,
                                      ("--max_train_samples 0", "at least 1")),
    "clashing_trainer_flags": BadInput("flags the Trainer's own checks refuse together", "farstail",
                                       clashing_trainer_flags, ("--load_best_model_at_end", "save and eval strategy")),
    "non_utf8_tsv": BadInput("a FarsTail TSV saved as cp1252", "farstail", non_utf8_tsv,
                             ("train.tsv", "line 3", "byte 0x92", "iconv")),
    "missing_data_file": BadInput("a --train_file that does not exist", "farstail", missing_data_file,
                                  ("no-such-train.tsv", "--train_file", "no such file")),
    "wrong_column": BadInput("a table without the premise column", "farstail", wrong_column,
                             ("train.tsv", "'premise'", "--premise_column")),
    "unknown_tweet_labels": BadInput("tweet labels spelled FAKE / Real", "covid_fakenews", unknown_tweet_labels,
                                     ("train.csv", "'FAKE'", "--label_map", '"FAKE": "fake"', '"Real": "real"')),
    "answer_without_start": BadInput("a SQuAD answer without answer_start", "parsquad", answer_without_start,
                                     ("train.json", "answer_start", "question id", "--skip_bad_rows")),
    "corrupt_image": BadInput("a corrupt PNG in an ImageFolder tree", "cifar10", corrupt_image,
                              ("train/circle/broken.png", "cannot read the image", "--skip_bad_rows")),
    "unreadable_clip": BadInput("an unreadable wav in a ShEMO folder", "shemo", unreadable_clip,
                                ("F01A09.wav", "unreadable audio", "--skip_bad_rows")),
    "pruning_a_cnn": BadInput("head pruning on a CNN backbone", "cifar10", lambda folder: ["--prune_fraction", "0.5"],
                              ("--prune_fraction", "test_resnet (TimmForImageClassification) has none")),
}


def run_case(case: BadInput, folder: Path) -> subprocess.CompletedProcess:
    extra = case.make(folder)
    config = [] if "--config" in extra else ["--config", str(REPO / "recipes" / "configs" / case.recipe / "tiny.yaml")]
    arguments = [*config, "--output_dir", str(folder / "run"), "--use_cpu", "true",
                 "--report_to", "none", "--dataset_cache_dir", str(folder / "cache"), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("HF_TASKS_DEBUG", None)
    return subprocess.run([sys.executable, str(REPO / "recipes" / f"{case.recipe}.py"), *arguments],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bad_input_stops_in_one_line_naming_what_and_how_to_fix_it(name, tmp_path):
    case = CASES[name]
    finished = run_case(case, tmp_path)
    lines = finished.stderr.strip().splitlines()
    assert finished.returncode == 2, finished.stderr[-3000:]
    assert "Traceback" not in finished.stderr and len(lines) == 1, finished.stderr[-3000:]
    assert lines[0].startswith("error: ")
    missing = [fragment for fragment in case.named if fragment not in lines[0]]
    assert missing == [], lines[0]
    assert not (tmp_path / "run" / "results.json").exists()


if __name__ == "__main__":
    import tempfile

    print("| you gave | the recipe says (stderr, exit status 2) |\n|---|---|")
    for name, case in CASES.items():
        with tempfile.TemporaryDirectory() as folder:
            line = run_case(case, Path(folder)).stderr.strip().replace(folder, "…").replace("|", "\\|")
        print(f"| {case.what} (`{case.recipe}`) | {line} |")
