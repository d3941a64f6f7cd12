"""Audio clip listings: ShEMO wav trees, `path,label[,speaker]` tables and hub audio datasets.

`load` turns any of the three into a `ClipListings` (a `DatasetDict`) with one row per clip:

- `file`: how messages, split.json and prediction files name the clip (its path relative to the
  folder or table as written, or the hub dataset's file name);
- `path` (local files) or `audio` (hub data: the undecoded `Audio` value, or a path string): where
  its samples are;
- `label`: a `ClassLabel`; -1 when the clip has no label (an unlabelled test split);
- `speaker`: "" when unknown;
- `source`: the folder, table or hub split it was listed from, which bad-row messages name.

No audio is read here: the audio task decodes clips and reports unreadable ones through the same
bad-row policy (`bad_rows`). A single pool of clips (a folder, or data with only a training
split) is split here, speaker-independent or stratified (`pool_splits`); `ClipListings.split_record`
says how, for the run folder's split.json.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Audio, ClassLabel, Dataset, DatasetDict, Features, Value

from hf_tasks.data.bad_rows import BadRows, RowProblem, require_usable
from hf_tasks.data.fetch import fetch_hint
from hf_tasks.data.pool_splits import SPLIT_METHODS, split_pool
from hf_tasks.data.sources import class_names_of, label_values, load_hub_splits, load_splits, require_columns
from hf_tasks.data.splits import limit_splits
from hf_tasks.data.tables import read_table
from hf_tasks.errors import BadInputError
from hf_tasks.files import visible_files

SHEMO_EMOTIONS = {"A": "anger", "F": "fear", "H": "happiness", "N": "neutral", "S": "sadness", "W": "surprise"}
SHEMO_NAME = re.compile(r"(?P<gender>[FM])(?P<number>\d+)(?P<emotion>[A-Z])(?P<utterance>\d+)", re.IGNORECASE)
SHEMO_NAME_FIX = (f"rename or remove the files (ShEMO names read e.g. F03A02.wav: gender F/M, speaker number, "
                  f"emotion letter {'/'.join(SHEMO_EMOTIONS)}, utterance number)")
#: Columns a hub dataset may name its speakers by, tried in order when --speaker_column is unset.
SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id")
CLIP_TABLE_COLUMNS = ("path", "label")


@dataclass
class ClipArguments:
    """Where clips come from and how one pool of them is split."""

    split: str = field(
        default="speaker",
        metadata={"help": f"How to split one pool of clips: {' or '.join(SPLIT_METHODS)} "
                          "(speaker: no speaker in two splits)."},
    )
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of a pool held out for validation."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share of a pool held out for testing."})
    split_seed: int = field(default=42, metadata={"help": "Seed of the split (saved in split.json)."})
    audio_column: str = field(default="audio", metadata={"help": "Audio column of a hub dataset."})
    label_column: str = field(default="label", metadata={"help": "Label column of a hub dataset."})
    speaker_column: str | None = field(
        default=None, metadata={"help": f"Speaker column of a hub dataset (default: the first of {SPEAKER_COLUMNS})."}
    )

    def __post_init__(self):
        if self.split not in SPLIT_METHODS:
            raise ValueError(f"--split {self.split!r}: choose one of {SPLIT_METHODS}.")


class ClipListings(DatasetDict):
    """Clip listings by split, and how the splits were made (`split_record`: method, seed and
    fractions; method "given" when the data came split)."""

    def __init__(self, splits: dict[str, Dataset], split_record: dict[str, Any]):
        super().__init__(splits)
        self.split_record = split_record


GIVEN_SPLITS = {"method": "given", "seed": None, "validation_fraction": None, "test_fraction": None}


@dataclass(frozen=True)
class ShemoName:
    """What a ShEMO file name says: `F03A02` is female speaker 3, anger, utterance 2."""

    gender: str
    speaker: str
    emotion: str
    utterance: int


def _shemo_name_or_problem(path: str | Path) -> ShemoName | str:
    match = SHEMO_NAME.fullmatch(Path(path).stem)
    if match is None:
        return "not a ShEMO file name"
    gender, letter = match["gender"].upper(), match["emotion"].upper()
    if letter not in SHEMO_EMOTIONS:
        return (f"unknown emotion letter {letter!r}; ShEMO uses "
                + ", ".join(f"{key}={name}" for key, name in SHEMO_EMOTIONS.items()))
    return ShemoName(gender, f"{gender}{int(match['number']):02d}", SHEMO_EMOTIONS[letter], int(match["utterance"]))


def parse_shemo_name(path: str | Path) -> ShemoName:
    """Parse a ShEMO file name; `BadInputError` naming the file when it does not follow the scheme."""
    parsed = _shemo_name_or_problem(path)
    if isinstance(parsed, str):
        raise BadInputError(f"{path}: {parsed}. {SHEMO_NAME_FIX[:1].upper()}{SHEMO_NAME_FIX[1:]}.")
    return parsed


def list_shemo_folder(data_dir: str | Path) -> tuple[list[dict[str, Any]], list[RowProblem]]:
    """Rows (file, path, label, speaker, source) of every wav file under `data_dir` at any depth (outside
    hidden folders), and a problem for each file whose name is not a ShEMO name."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BadInputError(f"--data_dir {data_dir}: no such folder; point it at ShEMO's folder "
                            f"(with female/ and male/).{fetch_hint(data_dir)}")
    paths = sorted(path for path in visible_files(data_dir) if path.suffix.lower() == ".wav" and path.is_file())
    if not paths:
        raise BadInputError(f"--data_dir {data_dir}: no .wav files in it or below it.")
    rows, problems = [], []
    for path in paths:
        relative = str(path.relative_to(data_dir))
        parsed = _shemo_name_or_problem(relative)
        if isinstance(parsed, str):
            problems.append(RowProblem("clip", relative, parsed))
            continue
        rows.append({"file": relative, "path": str(path), "label": parsed.emotion, "speaker": parsed.speaker,
                     "source": str(data_dir)})
    return rows, problems


def read_clip_table(path: Path, split: str, bad_rows) -> list[dict[str, Any]]:
    """Rows of a `path,label[,speaker]` table (CSV, TSV or JSON); clip paths are relative to the
    table's folder unless absolute. Rows with an empty path or label go to `bad_rows`."""
    table = read_table(path, CLIP_TABLE_COLUMNS)
    rows, problems = [], []
    for row in table:
        values = {column: str(row.values.get(column) or "").strip() for column in (*CLIP_TABLE_COLUMNS, "speaker")}
        empty = [column for column in CLIP_TABLE_COLUMNS if not values[column]]
        if empty:
            problems.append(RowProblem("line", row.line, f"empty {' and '.join(empty)}", {"split": split}))
            continue
        audio = Path(values["path"])
        rows.append({"file": values["path"], "path": str(audio if audio.is_absolute() else path.parent / audio),
                     "label": values["label"], "speaker": values["speaker"], "source": str(path)})
    bad_rows.settle(str(path), problems, "fill in the path and label, or delete the line")
    require_usable(str(path), len(rows), len(table), "rows below the header", "the header must be path,label[,speaker]")
    return rows


def _listing(rows: list[dict[str, Any]], label_names: list[str]) -> Dataset:
    columns = ("file", "path", "label", "speaker", "source")
    features = Features({column: ClassLabel(names=label_names) if column == "label" else Value("string")
                         for column in columns})
    return Dataset.from_dict({column: [row[column] for row in rows] for column in columns}, features=features)


def _hub_listings(data_args, args: ClipArguments) -> dict[str, Dataset]:
    splits = load_hub_splits(data_args)
    first = next(iter(splits.values()))
    require_columns(first.column_names, (args.audio_column, args.label_column),
                    f"--dataset_name {data_args.dataset_name}", "--audio_column / --label_column")
    speaker_column = args.speaker_column or next((c for c in SPEAKER_COLUMNS if c in first.column_names), None)
    if speaker_column is not None:
        require_columns(first.column_names, (speaker_column,), f"--dataset_name {data_args.dataset_name}",
                        "--speaker_column")
    label_names = class_names_of(splits, args.label_column)
    ids = {name: index for index, name in enumerate(label_names)}
    audio_column = args.audio_column
    listings = {}
    for name, split in splits.items():
        source = f"{data_args.dataset_name}[{name}]"
        if isinstance(split.features[audio_column], Audio):
            # Decoding is the task's (soundfile + soxr), so that every failure names its clip.
            split = split.cast_column(audio_column, Audio(decode=False))
        labels = [-1 if label is None else ids[label] for label in label_values(split, args.label_column)]

        def describe(batch, rows, split_name=name, source=source):
            return {
                "file": [(item.get("path") if isinstance(item, dict) else item) or f"{split_name} row {row}"
                         for item, row in zip(batch[audio_column], rows)],
                "speaker": [str(s) for s in batch[speaker_column]] if speaker_column else [""] * len(rows),
                "source": [source] * len(rows),
            }

        listing = split.map(
            describe, batched=True, with_indices=True,
            remove_columns=[column for column in split.column_names if column != audio_column],
            features=Features({audio_column: split.features[audio_column], "file": Value("string"),
                               "speaker": Value("string"), "source": Value("string")}),
            desc=f"Listing {name} clips",
        )
        if audio_column != "audio":
            listing = listing.rename_column(audio_column, "audio")
        listings[name] = listing.add_column("label", labels, feature=ClassLabel(names=label_names))
    return listings


def _without_unlabelled(listing: Dataset, bad_rows) -> Dataset:
    """`listing` less its clips without a label, which training (or a pool to split) cannot use."""
    labels = np.asarray(listing["label"])
    unlabelled = np.flatnonzero(labels < 0)
    if not len(unlabelled):
        return listing
    problems: dict[str, list[RowProblem]] = {}
    for row in listing.select(unlabelled).select_columns(["file", "source"]):
        problems.setdefault(row["source"], []).append(RowProblem("clip", row["file"], "no label"))
    for source, found in problems.items():
        bad_rows.settle(source, found, "label the clips, or leave them out of the training data")
    return listing.select(np.flatnonzero(labels >= 0))


def split_listing(pool: Dataset, args: ClipArguments, data_args) -> ClipListings:
    """One pool of labelled clips split by `--split` (speaker-independent or stratified), each split
    in a seeded order so that `--max_*_samples` ("the first N") takes a sample of it."""
    speakers = pool["speaker"]
    indices = split_pool(args.split, pool["label"], speakers if all(speakers) else None,
                         args.validation_fraction, args.test_fraction, args.split_seed)
    order = np.random.default_rng(args.split_seed)
    splits = {name: pool.select(order.permutation(rows)) for name, rows in indices.items()}
    record = {"method": args.split, "seed": args.split_seed, "validation_fraction": args.validation_fraction,
              "test_fraction": args.test_fraction}
    return ClipListings(limit_splits(splits, data_args), record)


def load(data_args, args: ClipArguments, *, bad_rows: BadRows) -> ClipListings:
    """Clip listings from `--data_dir` (a ShEMO folder), `--dataset_name` or `--train_file` etc."""
    if data_args.data_dir and (data_args.dataset_name or data_args.train_file):
        raise BadInputError("Give either --data_dir (ShEMO folder) or --dataset_name/--train_file, not both.")
    if data_args.data_dir:
        rows, problems = list_shemo_folder(data_args.data_dir)
        bad_rows.settle(str(data_args.data_dir), problems, SHEMO_NAME_FIX)
        require_usable(f"--data_dir {data_args.data_dir}", len(rows), len(rows) + len(problems), "ShEMO file names")
        return split_listing(_listing(rows, list(SHEMO_EMOTIONS.values())), args, data_args)
    if data_args.dataset_name:
        splits = _hub_listings(data_args, args)
    else:
        tables = load_splits(data_args, lambda path, split: read_clip_table(path, split, bad_rows))
        label_names = sorted({row["label"] for rows in tables.values() for row in rows})
        splits = {name: _listing(rows, label_names) for name, rows in tables.items()}
    if set(splits) == {"train"}:
        return split_listing(_without_unlabelled(splits["train"], bad_rows), args, data_args)
    if "train" in splits:
        splits["train"] = _without_unlabelled(splits["train"], bad_rows)
    return ClipListings(limit_splits(splits, data_args), GIVEN_SPLITS)
