"""The preprocessing cache can never serve stale features.

Its key holds each preprocessing's version constant, this package's version and every table and
setting that feeds the preprocessing. The versions are only as good as their bumps, so the source of
each preprocessing function is recorded here (as a hash of its syntax tree: comments and layout do not
count) beside the version it was written for, and a change without a bump fails.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap

import pytest
from datasets import ClassLabel, Dataset, DatasetDict
from transformers import AutoTokenizer

import hf_tasks
from hf_tasks.options import DataArguments
from hf_tasks.tasks import pairs, qa, text
from hf_tasks.tasks.pairs import PairArguments, PairClassificationTask
from hf_tasks.tasks.text import TextArguments, TextClassificationTask
from hf_tasks.text import persian, tweets
from hf_tasks.text.persian import normalize_persian
from hf_tasks.text.tweets import TweetNormalizer

TOKENIZER = "hf_tasks/samples/tiny-bert-farstail"

# module, its version constant, the functions whose output it versions
PREPROCESSING = {
    "text": (text, "PREPROCESSING_VERSION", [TextClassificationTask.tokenize, TextArguments.normalizer]),
    "tweets": (tweets, "NORMALIZATION_VERSION", [TweetNormalizer.__call__]),
    "persian": (persian, "NORMALIZATION_VERSION", [normalize_persian]),
    "pairs": (pairs, "PREPROCESSING_VERSION", [PairClassificationTask.tokenize]),
    "qa": (qa, "WINDOWS_VERSION", [qa.QuestionAnsweringTask.tokenize_windows]),
}
# The version each preprocessing is at and the hash of its functions' source at that version.
RECORDED = {
    "text": (1, "0fd44a9938130fcd"),
    "tweets": (1, "4ad54108fbad43d7"),
    "persian": (1, "c2fba94a6c0ca7e4"),
    "pairs": (1, "ebfb451d71de0267"),
    "qa": (1, "d35c931b59b78bb6"),
}


def source_hash(functions) -> str:
    trees = [ast.dump(ast.parse(textwrap.dedent(inspect.getsource(function)))) for function in functions]
    return hashlib.sha256("\n".join(trees).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", list(PREPROCESSING))
def test_a_preprocessing_source_change_comes_with_a_version_bump(name):
    module, constant, functions = PREPROCESSING[name]
    version, recorded = getattr(module, constant), RECORDED[name]
    current = source_hash(functions)
    assert (version, current) == recorded, (
        f"{name} preprocessing: source hash {current!r} at {module.__name__}.{constant} = {version}, recorded "
        f"{recorded}. If the change can alter what it produces, bump {constant} to {recorded[0] + 1} and record "
        f"({recorded[0] + 1}, {current!r}) for {name!r} in RECORDED; if it cannot (a docstring), record "
        f"({recorded[0]}, {current!r})."
    )


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(TOKENIZER)


ROWS = Dataset.from_list([{"premise": "كتاب علي", "hypothesis": "کتاب", "label": 0}])
LABELS = ClassLabel(names=["entailment", "contradiction", "neutral"])


def pairs_key(tokenizer) -> str:
    data = DatasetDict({"train": ROWS.cast_column("label", LABELS)})
    task = PairClassificationTask(data, tokenizer, DataArguments(), PairArguments(normalize_persian=True))
    return task.features_cache(ROWS)["new_fingerprint"]


def test_the_persian_normalisation_table_is_in_the_key(tokenizer, monkeypatch):
    before = pairs_key(tokenizer)
    assert pairs_key(tokenizer) == before  # the key is stable, so a second run reads the cache
    monkeypatch.setattr(persian, "_TABLE", {**persian._TABLE, ord("ک"): "ك"})  # KEHEH back to ARABIC KAF
    assert normalize_persian("کتاب") == "كتاب"  # the table is what normalisation uses
    assert pairs_key(tokenizer) != before


@pytest.mark.parametrize("change", [
    lambda monkeypatch: monkeypatch.setattr(pairs, "PREPROCESSING_VERSION", pairs.PREPROCESSING_VERSION + 1),
    lambda monkeypatch: monkeypatch.setattr(persian, "NORMALIZATION_VERSION", persian.NORMALIZATION_VERSION + 1),
    lambda monkeypatch: monkeypatch.setattr(hf_tasks, "__version__", hf_tasks.__version__ + ".post1"),
], ids=["pairs version", "persian version", "package version"])
def test_versions_are_in_the_key(tokenizer, monkeypatch, change):
    before = pairs_key(tokenizer)
    change(monkeypatch)
    assert pairs_key(tokenizer) != before


def test_tweet_normaliser_settings_patterns_and_version_are_in_the_key(tokenizer, monkeypatch):
    rows = Dataset.from_list([{"tweet": "@who masks work https://t.co/x", "label": 0}])
    data = DatasetDict({"train": rows.cast_column("label", ClassLabel(names=["real", "fake"]))})

    def key(**text_options) -> str:
        task = TextClassificationTask(data, tokenizer, DataArguments(), TextArguments(**text_options),
                                      text_column="tweet")
        return task.features_cache(rows)["new_fingerprint"]

    before = key()
    assert key(url_token="URL") != before
    assert key(demojize=False) != before
    monkeypatch.setattr(tweets, "MENTION_PATTERN", tweets.re.compile(r"@\w+"))
    assert key() != before
    monkeypatch.undo()
    monkeypatch.setattr(tweets, "NORMALIZATION_VERSION", tweets.NORMALIZATION_VERSION + 1)
    assert key() != before
