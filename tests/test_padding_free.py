"""Padding-free classification batches (`--padding_free`): the flattened row, logits equal to the padded
model's, first losses equal to the padded run's, and one-line refusals where it cannot work."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from hf_tasks.args import parse
from hf_tasks.errors import BadInputError
from hf_tasks.modeling.bigru import BiGRUConfig, BiGRUForSequenceClassification
from hf_tasks.modeling.padding_free import enable_padding_free
from hf_tasks.tasks.text import FlattenedSequences
from tests.conftest import REPO, recipe_args
from tests.test_golden_losses import SHORT_RUN

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=120)
LENGTHS = (7, 3, 12, 5)


def features(with_token_types: bool = True) -> list[dict]:
    generator = torch.Generator().manual_seed(3)
    rows = []
    for index, length in enumerate(LENGTHS):
        row = {"input_ids": torch.randint(1, 120, (length,), generator=generator).tolist(), "label": index % 3,
               "attention_mask": [1] * length}
        if with_token_types:
            row["token_type_ids"] = [0] * (length // 2) + [1] * (length - length // 2)
        rows.append(row)
    return rows


def padded_batch(rows: list[dict]) -> dict:
    lengths = [len(row["input_ids"]) for row in rows]
    longest = max(lengths)
    batch = {key: torch.tensor([row[key] + [0] * (longest - len(row[key])) for row in rows])
             for key in ("input_ids", "token_type_ids", "attention_mask")}
    batch["labels"] = torch.tensor([row["label"] for row in rows])
    return batch


def test_a_flattened_batch_is_one_row_with_positions_restarting_and_one_label_per_sequence():
    batch = FlattenedSequences()(features())
    assert list(batch) == ["labels", "input_ids", "token_type_ids", "position_ids"]  # labels first: rows counted
    assert batch["labels"].tolist() == [0, 1, 2, 0]
    assert batch["input_ids"].shape == batch["position_ids"].shape == batch["token_type_ids"].shape == (1, 27)
    assert batch["position_ids"][0].tolist() == [*range(7), *range(3), *range(12), *range(5)]
    assert batch["input_ids"][0].tolist() == [token for row in features() for token in row["input_ids"]]
    assert "attention_mask" not in batch


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_a_first_token_head_gives_each_sequence_the_padded_logits(attention):
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**TINY, num_labels=3, attn_implementation=attention)).eval()
    rows = features()
    with torch.no_grad():
        padded = model(**padded_batch(rows))
        enable_padding_free(model)
        flat = model(**FlattenedSequences()(rows))
    assert flat.logits.shape == (4, 3)
    assert torch.allclose(flat.logits, padded.logits, atol=1e-5, rtol=0)
    assert flat.loss.item() == pytest.approx(padded.loss.item(), abs=1e-5)
    with torch.no_grad():  # padded batches still pass through the hooked model untouched
        assert torch.allclose(model(**padded_batch(rows)).logits, padded.logits, atol=0, rtol=0)


def test_the_bigru_head_runs_over_each_sequences_own_span():
    torch.manual_seed(0)
    config = BiGRUConfig(encoder=BertConfig(**TINY).to_dict(), gru_hidden_size=8, num_labels=3)
    model = BiGRUForSequenceClassification(config).eval()
    rows = features()
    with torch.no_grad():
        padded = model(**padded_batch(rows)).logits
        assert enable_padding_free(model) is None  # reads flattened rows itself: no hooks
        flat = model(**FlattenedSequences()(rows)).logits
    assert torch.allclose(flat, padded, atol=1e-5, rtol=0)


def test_a_model_whose_positions_start_elsewhere_is_refused_in_one_line():
    model = RobertaForSequenceClassification(RobertaConfig(**TINY, num_labels=3, pad_token_id=1))
    with pytest.raises(BadInputError, match=r"--padding_free: RobertaForSequenceClassification \(roberta, sdpa "
                                            r"attention\) gives two flattened sequences other logits") as raised:
        enable_padding_free(model)
    assert "\n" not in str(raised.value)
    assert not model._forward_pre_hooks  # the hooks it tried are gone
    assert model.training  # the check put the model back in training mode


def test_the_qa_recipe_refuses_padding_free(tmp_path):
    import parsquad

    arguments = recipe_args("recipes/configs/parsquad/tiny.yaml", tmp_path / "run", "--padding_free", "true")
    refusal = r"--padding_free: the QuestionAnsweringTask cannot take it \(the span head"
    with pytest.raises(BadInputError, match=refusal):
        parsquad.main(parse(*parsquad.ARGUMENTS, args=arguments))


def without_dropout(model_folder, tmp_path):
    """A copy of a tiny model folder whose config turns dropout off: dropout draws masks of the batch's shape,
    so only without it can a padded and a flattened run see the same numbers."""
    copy = tmp_path / "model"
    shutil.copytree(REPO / model_folder, copy)
    config = json.loads((copy / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


@pytest.mark.parametrize("recipe_name, model_folder, extra", [
    ("farstail", "hf_tasks/samples/tiny-bert-farstail", []),
    ("covid_fakenews", "hf_tasks/samples/tiny-bert-en", ["--head", "bigru", "--head_dropout", "0"]),
])
def test_a_padding_free_run_has_the_padded_runs_losses(recipe_name, model_folder, extra, tmp_path):
    import importlib

    recipe = importlib.import_module(recipe_name)
    model = without_dropout(model_folder, tmp_path)
    losses = {}
    for padding_free in ("false", "true"):
        folder = tmp_path / f"padding_free_{padding_free}"
        arguments = recipe_args(f"recipes/configs/{recipe_name}/tiny.yaml", folder, *SHORT_RUN, *extra,
                                "--config_name", str(model), "--padding_free", padding_free)
        results = recipe.main(parse(*recipe.ARGUMENTS, args=arguments))
        history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
        losses[padding_free] = ([row["loss"] for row in history if "loss" in row], results["eval_loss"],
                                results["eval_accuracy"])
    (padded, padded_eval, padded_accuracy), (flat, flat_eval, flat_accuracy) = losses["false"], losses["true"]
    assert len(flat) == 4
    assert flat == pytest.approx(padded, rel=1e-5, abs=0)
    assert flat_eval == pytest.approx(padded_eval, rel=1e-5, abs=0)
    assert flat_accuracy == padded_accuracy


def test_the_benchmark_compares_variants_on_the_same_real_tokens():
    from tests.benchmarks.bench_padding_free import measure

    figures = measure("constraint", "tiny", steps=2, rounds=1)
    assert figures["padding_free_padding_percent"] == 0.0
    # Length grouping pads no more than random order; buckets of 64 pad at least to each batch's longest row.
    padding = [figures[f"{name}_padding_percent"] for name in ("grouped", "dynamic", "buckets")]
    assert padding == sorted(padding)
    assert figures["padding_free_over_dynamic"].rounds == 1
