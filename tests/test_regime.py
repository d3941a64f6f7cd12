"""The regime step (`hf_tasks.surgery.regime`): every training recipe offers the regimes its model family
supports, called the same way, with parameter counts moving as the regime says; what a family cannot
do is refused in one line naming it; files a task wants in the run folder reach the run manifest."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoConfig, AutoModel, BertConfig, BertForSequenceClassification

from hf_tasks import registry
from hf_tasks.errors import BadInputError
from hf_tasks.modeling.audio import PooledAudioClassifier, PooledAudioClassifierConfig
from hf_tasks.run_folder import RUN_MANIFEST
from hf_tasks.surgery import parameter_counts, train_only
from hf_tasks.surgery.lora import LoraArguments, apply_lora
from hf_tasks.surgery.regime import RegimeArguments, apply_regime
from tests.conftest import REPO, TRAINING_RECIPES, tiny_recipe_args

# A couple of optimizer steps on a few examples: enough to build, train and save every regime.
QUICK = ["--max_steps", "2", "--max_train_samples", "16", "--max_eval_samples", "8", "--do_predict", "false",
         "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false", "--logging_steps", "1"]


def run_tiny(recipe_name: str, folder, *regime: str) -> dict:
    recipe = registry.load(recipe_name)
    overrides = [*QUICK, *regime]
    if recipe_name == "cifar10":  # the plateau schedule needs an evaluation strategy
        overrides += ["--eval_strategy", "steps", "--eval_steps", "2"]
    return recipe.main(recipe.parse(tiny_recipe_args(recipe, folder, *overrides)))


def numel(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def test_parsquad_freezes_layers_and_prunes_heads(tmp_path):
    full = run_tiny("parsquad", tmp_path / "full")
    frozen = run_tiny("parsquad", tmp_path / "frozen", "--freeze", "layers:0-1")
    saved = AutoModel.from_pretrained(tmp_path / "frozen" / "run")
    assert frozen["total_params"] == full["total_params"]
    assert full["trainable_params"] - frozen["trainable_params"] == sum(numel(saved.encoder.layer[i]) for i in (0, 1))

    pruned = run_tiny("parsquad", tmp_path / "pruned", "--prune_fraction", "0.5", "--prune_importance_samples", "8")
    config = AutoConfig.from_pretrained(tmp_path / "pruned" / "run")
    heads = config.num_hidden_layers * config.num_attention_heads
    assert sum(len(removed) for removed in config.pruned_heads.values()) == heads // 2
    assert pruned["total_params"] < full["total_params"]
    assert pruned["trainable_params"] == pruned["total_params"]


def test_farstail_feature_based_trains_only_the_head(tmp_path):
    results = run_tiny("farstail", tmp_path, "--feature_based", "true")
    saved = BertForSequenceClassification.from_pretrained(tmp_path / "run")
    assert results["trainable_params"] == numel(saved.classifier) < results["total_params"]


def test_tweets_keep_the_first_layer_only(tmp_path):
    full = run_tiny("covid_fakenews", tmp_path / "full")
    kept = run_tiny("covid_fakenews", tmp_path / "kept", "--keep_layers", "first:1")
    saved = AutoModel.from_pretrained(tmp_path / "kept" / "run")
    assert saved.config.num_hidden_layers == 1
    assert full["total_params"] - kept["total_params"] == numel(saved.encoder.layer[0])  # the layers are alike
    assert kept["trainable_params"] == kept["total_params"]


def test_cifar_freezes_in_the_freeze_language_and_takes_lora(tmp_path):
    full = run_tiny("cifar10", tmp_path / "full")
    frozen = run_tiny("cifar10", tmp_path / "frozen", "--freeze", "layer1", "layer2")
    model = importlib.import_module("hf_tasks.modeling.timm_classifier").TimmForImageClassification
    saved = model.from_pretrained(tmp_path / "frozen" / "run")
    assert full["trainable_params"] - frozen["trainable_params"] == numel(saved.backbone.layer1) + numel(
        saved.backbone.layer2)

    lora = run_tiny("cifar10", tmp_path / "lora", "--peft", "lora")
    assert lora["trainable_params"] < full["trainable_params"] // 2
    adapter = json.loads((tmp_path / "lora" / "run" / "adapter_config.json").read_text())
    assert adapter["modules_to_save"] == ["head"]


def test_shemo_pooled_head_takes_lora(tmp_path):
    full = run_tiny("shemo", tmp_path / "full")
    lora = run_tiny("shemo", tmp_path / "lora", "--peft", "lora")
    adapter = json.loads((tmp_path / "lora" / "run" / "adapter_config.json").read_text())
    assert sorted(adapter["modules_to_save"]) == ["classifier", "head_dense"]
    assert lora["trainable_params"] < full["trainable_params"]
    assert lora["total_params"] > full["total_params"]  # the adapter's matrices come on top


@pytest.mark.parametrize("recipe_name", TRAINING_RECIPES)
def test_the_manifest_lists_every_file_of_the_run_folder(recipe_name, tmp_path):
    run_tiny(recipe_name, tmp_path)
    folder = tmp_path / "run"
    listed = set(json.loads((folder / RUN_MANIFEST).read_text())["files"])
    present = {str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()} - {RUN_MANIFEST}
    assert present == listed
    if recipe_name == "shemo":
        assert {"split.json", "audio_conversions.json"} <= listed


# Head pruning on a CNN is a row of the bad-inputs table (tests/test_bad_inputs.py, docs/concepts/bad-inputs.md).
@pytest.mark.parametrize(("recipe_name", "flags", "message"), [
    ("covid_fakenews", ["--feature_based", "true", "--peft", "lora"], "drop --feature_based or --peft lora"),
    ("shemo", ["--feature_based", "true", "--cache_features", "true"],
     "hubert (PooledAudioClassifier) does not read tokens"),
])
def test_what_a_family_cannot_do_is_refused_in_one_line(recipe_name, flags, message, tmp_path):
    recipe = registry.load(recipe_name)
    command = [sys.executable, str(recipe.path), *tiny_recipe_args(recipe, tmp_path, *flags)]
    finished = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    lines = finished.stderr.strip().splitlines()
    assert finished.returncode == 2, finished.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], finished.stderr[-2000:]
    assert not (tmp_path / "run" / "results.json").exists()


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                                    intermediate_size=32, vocab_size=50, num_labels=2))


def test_lora_adapts_only_the_parts_trainable_modules_leaves_training():
    model = tiny_bert()
    train_only(model, ["layers:last:1"])
    model = apply_lora(model, LoraArguments(peft="lora"))
    adapted = {name.split(".layer.")[1].split(".")[0] for name, parameter in model.named_parameters()
               if "lora_" in name and parameter.requires_grad}
    assert adapted == {"2"}


def test_the_regime_runs_structure_then_freezing_then_lora():
    model, callbacks = apply_regime(tiny_bert(), RegimeArguments(keep_layers="first:2", freeze=["layers:0"],
                                                                peft="lora"),
                                    None, SimpleNamespace(do_train=True, seed=0))
    base = model.get_base_model()
    assert len(base.bert.encoder.layer) == 2 and callbacks == []
    trainable = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    assert not any(".layer.0." in name for name in trainable)  # layer numbers after deletion
    assert any(".layer.1.attention.self.query.lora_A" in name for name in trainable)
    assert parameter_counts(model)["trainable_params"] < parameter_counts(base)["total_params"]


@pytest.mark.parametrize(("flags", "message"), [
    ({"feature_based": True, "trainable_modules": "paper"}, "--feature_based trains only the head"),
    ({"cache_features": True}, "--cache_features needs --feature_based"),
    ({"feature_based": True, "cache_features": True, "prune_fraction": 0.5}, "heads masked during training"),
])
def test_flag_combinations_the_library_cannot_honour_are_refused_when_parsed(flags, message):
    with pytest.raises(BadInputError, match=message):
        RegimeArguments(**flags)


def test_ranked_pruning_under_lora_and_a_missing_feature_encoder_are_refused_naming_the_family():
    with pytest.raises(BadInputError, match="Prune before LoRA"):
        apply_regime(tiny_bert(), RegimeArguments(prune_fraction=0.5, prune_importance="random", peft="lora"), None,
                     SimpleNamespace(do_train=True, seed=0))
    with pytest.raises(BadInputError, match=r"bert \(BertForSequenceClassification\) has no convolutional"):
        apply_regime(tiny_bert(), RegimeArguments(freeze_feature_encoder=True), None,
                     SimpleNamespace(do_train=True, seed=0))


def test_a_pooled_audio_checkpoint_saved_with_the_old_head_name_still_loads(tmp_path):
    from safetensors.torch import load_file, save_file

    encoder = AutoConfig.from_pretrained(REPO / "hf_tasks/samples/tiny-hubert")
    model = PooledAudioClassifier(PooledAudioClassifierConfig(encoder=encoder, head_hidden_size=8, num_labels=3))
    model.save_pretrained(tmp_path / "old")
    weights = tmp_path / "old" / "model.safetensors"
    renamed = {("dense." + key.removeprefix("head_dense.")) if key.startswith("head_dense.") else key: value
               for key, value in load_file(weights).items()}
    save_file(renamed, weights, metadata={"format": "pt"})
    reloaded = PooledAudioClassifier.from_pretrained(tmp_path / "old")
    assert torch.equal(reloaded.head_dense.weight, model.head_dense.weight)
    reloaded.save_pretrained(tmp_path / "new")
    assert any(key.startswith("head_dense.") for key in load_file(tmp_path / "new" / "model.safetensors"))
