"""Train/validation/test splits of one pool of clips: stratified by class, or speaker-independent.

Speaker-independent splits put every speaker in exactly one split, so a model is scored on voices
it never heard — the honest setting for speech emotion recognition. Class proportions are kept as
close as whole speakers allow (scikit-learn's `StratifiedGroupKFold`, one fold held out per split).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from hf_tasks.errors import BadInputError

SPLIT_METHODS = ("speaker", "stratified")


def _check_fractions(validation_fraction: float, test_fraction: float) -> None:
    if validation_fraction < 0 or test_fraction < 0 or validation_fraction + test_fraction >= 1:
        raise ValueError(
            f"--validation_fraction ({validation_fraction}) and --test_fraction ({test_fraction}) must be >= 0 "
            "and leave some data for training (sum < 1)."
        )


def stratified_split(
    labels: Sequence[int], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Row indices per split, each split with the class proportions of the whole."""
    _check_fractions(validation_fraction, test_fraction)
    labels = np.asarray(labels)
    rest, held = np.arange(labels.size), {}
    for name, fraction in (("test", test_fraction), ("validation", validation_fraction / (1 - test_fraction))):
        if fraction == 0:
            continue
        try:
            rest, held[name] = train_test_split(rest, test_size=fraction, stratify=labels[rest], random_state=seed)
        except ValueError as error:
            raise BadInputError(
                f"Cannot make a stratified {name} split of {rest.size} clips: {error}. "
                "Lower the fraction, add clips of the rare classes or use --split speaker."
            ) from None
    return {"train": np.sort(rest), **{name: np.sort(indices) for name, indices in held.items()}}


def _hold_out_speakers(
    indices: np.ndarray, labels: np.ndarray, speakers: np.ndarray, fraction: float, seed: int, name: str
) -> tuple[np.ndarray, np.ndarray]:
    folds = max(2, round(1 / fraction))
    available = np.unique(speakers[indices]).size
    if available < folds:
        raise BadInputError(
            f"A speaker-independent {name} split of {fraction:.0%} needs at least {folds} speakers, but only "
            f"{available} remain. Raise the fraction, add speakers or use --split stratified."
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # A class rarer than the number of folds (ShEMO's fear) is expected; its per-class results show it.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        folds_made = list(splitter.split(indices, labels[indices], speakers[indices]))
    # The splitter's shuffle only reorders speakers with equal class profiles, so the seed also
    # picks which fold is held out.
    keep, held = folds_made[np.random.default_rng(seed).integers(folds)]
    return indices[keep], indices[held]


def speaker_split(
    labels: Sequence[int], speakers: Sequence[str], validation_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Row indices per split such that no speaker appears in two splits.

    Fractions are met to the nearest 1/k of the speakers (one of k folds, chosen by `seed`, is held out).
    """
    _check_fractions(validation_fraction, test_fraction)
    labels, speakers = np.asarray(labels), np.asarray(speakers)
    missing = [row for row, speaker in enumerate(speakers) if speaker in ("", None)]
    if missing:
        raise BadInputError(
            f"Row {missing[0]} (and {len(missing) - 1} more) has no speaker; a speaker-independent split needs "
            "one for every clip. Give a speaker column or use --split stratified."
        )
    rest, held = np.arange(labels.size), {}
    if test_fraction > 0:
        rest, held["test"] = _hold_out_speakers(rest, labels, speakers, test_fraction, seed, "test")
    if validation_fraction > 0:
        relative = validation_fraction / (1 - test_fraction)
        rest, held["validation"] = _hold_out_speakers(rest, labels, speakers, relative, seed, "validation")
    return {"train": np.sort(rest), **{name: np.sort(indices) for name, indices in held.items()}}


def split_pool(
    method: str,
    labels: Sequence[int],
    speakers: Sequence[str] | None,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """`speaker_split` or `stratified_split` by name (see `SPLIT_METHODS`)."""
    if method == "stratified":
        return stratified_split(labels, validation_fraction, test_fraction, seed)
    if method == "speaker":
        if speakers is None:
            raise BadInputError(
                "--split speaker needs a speaker for every clip, but the data has none (ShEMO file names carry "
                "it; CSV files need a speaker column; hub data --speaker_column). Use --split stratified otherwise."
            )
        return speaker_split(labels, speakers, validation_fraction, test_fraction, seed)
    raise ValueError(f"--split {method!r}: choose one of {SPLIT_METHODS}.")
