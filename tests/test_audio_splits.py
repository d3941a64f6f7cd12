"""Splitting a pool of clips: speaker-independent and stratified."""

import numpy as np
import pytest

from hf_tasks.data.pool_splits import speaker_split, split_pool, stratified_split
from hf_tasks.errors import BadInputError


def shemo_like_pool(seed=0):
    """30 speakers with different numbers of clips per emotion; class 1 (fear) is rare."""
    rng = np.random.default_rng(seed)
    labels, speakers = [], []
    for speaker in range(30):
        for label in range(6):
            count = int(rng.integers(0, 2)) if label == 1 else int(rng.integers(2, 8))
            labels += [label] * count
            speakers += [f"{'F' if speaker < 12 else 'M'}{speaker:02d}"] * count
    return np.array(labels), np.array(speakers)


def test_speaker_split_shares_no_speaker_and_uses_every_clip_once():
    labels, speakers = shemo_like_pool()
    splits = speaker_split(labels, speakers, 0.1, 0.2, seed=3)
    assert set(splits) == {"train", "validation", "test"}
    every = np.concatenate(list(splits.values()))
    assert np.array_equal(np.sort(every), np.arange(labels.size))
    voices = {name: set(speakers[rows]) for name, rows in splits.items()}
    assert not voices["train"] & voices["validation"]
    assert not voices["train"] & voices["test"]
    assert not voices["validation"] & voices["test"]
    # Whole speakers only approximate the fractions.
    assert 0.1 <= len(splits["test"]) / labels.size <= 0.3
    assert 0.04 <= len(splits["validation"]) / labels.size <= 0.18


def test_speaker_split_keeps_classes_in_every_split_and_depends_on_the_seed():
    labels, speakers = shemo_like_pool()
    first = speaker_split(labels, speakers, 0.1, 0.2, seed=3)
    assert all(set(labels[rows]) >= {0, 2, 3, 4, 5} for rows in first.values())
    again = speaker_split(labels, speakers, 0.1, 0.2, seed=3)
    other = speaker_split(labels, speakers, 0.1, 0.2, seed=4)
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert not np.array_equal(first["test"], other["test"])


def test_stratified_split_keeps_class_proportions():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    splits = stratified_split(labels, 0.1, 0.1, seed=0)
    for rows in splits.values():
        shares = np.bincount(labels[rows], minlength=4) / rows.size
        np.testing.assert_allclose(shares, [0.5, 0.25, 0.15, 0.1], atol=0.03)
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(labels.size))


def test_zero_fractions_leave_out_the_split():
    labels, speakers = shemo_like_pool()
    assert set(speaker_split(labels, speakers, 0.0, 0.2, seed=0)) == {"train", "test"}
    assert set(stratified_split(labels, 0.2, 0.0, seed=0)) == {"train", "validation"}


def test_impossible_splits_say_what_to_change():
    labels = np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(BadInputError, match="needs at least 5 speakers"):
        speaker_split(labels, np.array(["a", "a", "b", "b", "c", "c"]), 0.0, 0.2, seed=0)
    with pytest.raises(BadInputError, match="no speaker"):
        speaker_split(labels, np.array(["a", "", "b", "b", "c", "c"]), 0.0, 0.5, seed=0)
    with pytest.raises(BadInputError, match="--split stratified"):
        split_pool("speaker", labels, None, 0.2, 0.2, seed=0)
    with pytest.raises(ValueError, match="leave some data"):
        stratified_split(labels, 0.5, 0.5, seed=0)
