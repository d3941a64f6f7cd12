"""LoRA (`--peft lora`): default targets per family, heads trained and saved with the adapter, merged
equals unmerged, adapter save → reload, and end to end on the FarsTail, PQuAD and COVID recipes."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    HubertForSequenceClassification,
)

import covid_fakenews  # recipes/ is on sys.path through conftest
import farstail
import parsquad
from hf_tasks.args import parse
from hf_tasks.errors import BadInputError
from hf_tasks.modeling.audio import PooledAudioClassifier, PooledAudioClassifierConfig
from hf_tasks.modeling.bigru import BiGRUConfig, BiGRUForSequenceClassification
from hf_tasks.modeling.timm_classifier import TimmConfig, TimmForImageClassification
from hf_tasks.surgery import freeze, parameter_counts
from hf_tasks.surgery.lora import LoraArguments, apply_lora, frozen_base, merged_model
from tests.conftest import REPO, launch_two_processes, recipe_args
from tests.test_audio_model import tiny_hubert

LORA = LoraArguments(peft="lora")
TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100)


def bert_classifier():
    return BertForSequenceClassification(BertConfig(**TINY_BERT, num_labels=3))


def text_inputs():
    return {"input_ids": torch.randint(1, 100, (3, 9), generator=torch.Generator().manual_seed(0))}


# (name, model builder, inputs, head modules, targeted module suffix)
MODELS = {
    "bert_classifier": (bert_classifier, text_inputs, ["classifier"], "query"),
    "bert_qa": (lambda: BertForQuestionAnswering(BertConfig(**TINY_BERT)), text_inputs, ["qa_outputs"], "query"),
    "bigru": (lambda: BiGRUForSequenceClassification(BiGRUConfig(encoder=BertConfig(**TINY_BERT), gru_hidden_size=8,
                                                                 num_labels=2)),
              text_inputs, ["gru", "classifier"], "query"),
    "hubert": (lambda: HubertForSequenceClassification(tiny_hubert(True)),
               lambda: {"input_values": torch.randn(2, 4000, generator=torch.Generator().manual_seed(0))},
               ["projector", "classifier"], "q_proj"),
    "timm_cnn": (lambda: TimmForImageClassification(TimmConfig(timm_name="test_resnet", num_labels=3)),
                 lambda: {"pixel_values": torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))},
                 ["head"], "conv1"),
    "timm_vit": (lambda: TimmForImageClassification(TimmConfig(timm_name="test_vit", num_labels=3)),
                 lambda: {"pixel_values": torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))},
                 ["head"], "qkv"),
}


def logits(outputs) -> torch.Tensor:
    return outputs.start_logits if hasattr(outputs, "start_logits") else outputs.logits


def trained_lora(build) -> PeftModel:
    """LoRA on a fresh model, with every trainable weight moved away from its start (B starts at zero,
    so an untrained adapter would change nothing and hide mistakes)."""
    torch.manual_seed(0)
    model = apply_lora(build(), LORA)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter) * 0.05)
    return model.eval()


@pytest.mark.parametrize("name", list(MODELS))
def test_heads_train_fully_and_only_adapters_train_in_the_backbone(name):
    build, _, heads, target = MODELS[name]
    model = apply_lora(build(), LORA)
    trainable = [key for key, parameter in model.named_parameters() if parameter.requires_grad]
    for key in trainable:
        assert "lora_" in key or any(f"model.{head}.modules_to_save." in key for head in heads), key
    assert any(f"{target}.lora_A" in key for key in trainable)
    inner = model.get_base_model()
    for head in heads:
        head_parameters = list(getattr(inner, head).modules_to_save["default"].parameters())
        assert head_parameters and all(parameter.requires_grad for parameter in head_parameters)


@pytest.mark.parametrize("name", list(MODELS))
def test_merged_and_reloaded_adapter_give_the_same_logits(name, tmp_path):
    build, inputs, _, _ = MODELS[name]
    model = trained_lora(build)
    batch = inputs()
    with torch.no_grad():
        expected = logits(model(**batch))
        merged = merged_model(model).eval()
        assert not hasattr(merged, "peft_config")
        model.save_pretrained(tmp_path / "adapter")
        frozen_base(model).save_pretrained(tmp_path / "base")
        base = type(model.get_base_model()).from_pretrained(tmp_path / "base").eval()
        without_adapter = logits(base(**batch))
        reloaded = logits(PeftModel.from_pretrained(base, tmp_path / "adapter").eval()(**batch))
        torch.testing.assert_close(logits(merged(**batch)), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(reloaded, expected, atol=0, rtol=0)
    # The adapter holds what training changed (LoRA and the heads): the base alone gives other logits.
    assert not torch.allclose(without_adapter, expected)


def test_trainable_share_under_five_percent_for_bert_base_with_default_targets():
    model = apply_lora(BertForSequenceClassification(BertConfig(num_labels=3)), LORA)
    counts = parameter_counts(model)
    assert counts["trainable_params"] / counts["total_params"] < 0.05, counts


def test_freeze_keeps_lora_out_of_frozen_layers():
    model = bert_classifier()
    freeze(model, ["layers:0"])
    model = apply_lora(model, LORA)
    trainable = [key for key, parameter in model.named_parameters() if parameter.requires_grad]
    assert not any("layer.0." in key for key in trainable)
    assert any("layer.1.attention.self.query.lora_A" in key for key in trainable)


def test_a_head_peft_could_not_tell_from_encoder_modules_is_refused():
    model = bert_classifier()
    model.dense = torch.nn.Linear(4, 4)  # `dense` also ends the encoder's attention.output.dense
    with pytest.raises(BadInputError, match="'dense'.*name no other module ends with"):
        apply_lora(model, LORA)


def test_the_pooled_audio_head_takes_lora_and_its_head_is_saved_with_the_adapter():
    model = PooledAudioClassifier(PooledAudioClassifierConfig(encoder=tiny_hubert(True), head_hidden_size=16))
    peft_model = apply_lora(model, LORA)
    assert sorted(peft_model.peft_config["default"].modules_to_save) == ["classifier", "head_dense"]
    wrapped = [name for name, _ in peft_model.named_modules() if name.endswith("modules_to_save.default")]
    assert not any("encoder" in name for name in wrapped), wrapped


def test_bad_lora_flags_fail_with_one_message():
    with pytest.raises(BadInputError, match="--peft must be 'lora'"):
        LoraArguments(peft="prefix")
    with pytest.raises(BadInputError, match="add --peft lora"):
        LoraArguments(merge_lora=True)
    with pytest.raises(BadInputError, match="--lora_target_modules nowhere"):
        apply_lora(bert_classifier(), LoraArguments(peft="lora", lora_target_modules=["nowhere"]))


def test_feature_based_training_refuses_lora(tmp_path):
    with pytest.raises(BadInputError, match="drop --feature_based or --peft lora"):
        parse(*covid_fakenews.ARGUMENTS, args=recipe_args(
            "recipes/configs/covid_fakenews/tiny.yaml", tmp_path, "--feature_based", "true", "--cache_features",
            "true", "--peft", "lora"))


def run_recipe(recipe, config, output_dir, *overrides):
    return recipe.main(parse(*recipe.ARGUMENTS, args=recipe_args(config, output_dir, *overrides)))


def reloaded_logits_agree(output_dir, auto_class, batch):
    """The adapter on base_model/ (peft) and merged/ (transformers alone) give the same logits."""
    base = auto_class.from_pretrained(output_dir / "base_model", trust_remote_code=True)
    adapter = PeftModel.from_pretrained(base, output_dir).eval()
    merged = auto_class.from_pretrained(output_dir / "merged", trust_remote_code=True).eval()
    with torch.no_grad():
        unmerged_outputs, merged_outputs = adapter(**batch), merged(**batch)
    names = ("start_logits", "end_logits") if "start_logits" in unmerged_outputs else ("logits",)
    for name in names:
        torch.testing.assert_close(merged_outputs[name], unmerged_outputs[name], atol=1e-5, rtol=0)


def test_farstail_learns_with_lora_and_its_run_folder_loads(tmp_path):
    output_dir = tmp_path / "run"
    results = run_recipe(farstail, "recipes/configs/farstail/tiny.yaml", output_dir, "--peft", "lora",
                         "--merge_lora", "true", "--learning_rate", "0.005", "--eval_strategy", "no")
    assert results["test_accuracy"] > 1 / 3 + 0.2, results
    assert results["trainable_share"] == pytest.approx(results["trainable_params"] / results["total_params"], abs=1e-6)
    assert results["trainable_share"] < 0.06
    saved = json.loads((output_dir / "results.json").read_text())
    assert saved["trainable_share"] == results["trainable_share"]
    assert json.loads((output_dir / "adapter_config.json").read_text())["modules_to_save"] == ["classifier"]
    assert not (output_dir / "config.json").exists()  # the root is the adapter, not a full model
    tokenizer_batch = {"input_ids": torch.randint(5, 100, (4, 12), generator=torch.Generator().manual_seed(1))}
    reloaded_logits_agree(output_dir, AutoModelForSequenceClassification, tokenizer_batch)
    card = (output_dir / "README.md").read_text()
    namespace = {}
    exec(card.split("```python\n")[1].split("```")[0], namespace)
    assert isinstance(namespace["base"], BertForSequenceClassification)
    assert callable(namespace["predict"])


def test_parsquad_lora_run_folder_holds_adapter_with_the_span_head(tmp_path):
    output_dir = tmp_path / "run"
    results = run_recipe(parsquad, "recipes/configs/parsquad/tiny.yaml", output_dir, "--peft", "lora",
                         "--merge_lora", "true", "--max_train_samples", "32", "--max_eval_samples", "16",
                         "--max_predict_samples", "16", "--max_steps", "2", "--save_strategy", "no")
    assert "eval_f1" in results and results["trainable_params"] < results["total_params"]
    assert json.loads((output_dir / "adapter_config.json").read_text())["modules_to_save"] == ["qa_outputs"]
    batch = {"input_ids": torch.randint(5, 100, (2, 20), generator=torch.Generator().manual_seed(2))}
    reloaded_logits_agree(output_dir, AutoModelForQuestionAnswering, batch)


def test_covid_bigru_lora_run_folder_loads_through_shipped_code(tmp_path):
    output_dir = tmp_path / "run"
    run_recipe(covid_fakenews, "recipes/configs/covid_fakenews/tiny.yaml", output_dir, "--head", "bigru",
               "--peft", "lora", "--merge_lora", "true", "--max_train_samples", "32", "--max_eval_samples", "16",
               "--max_predict_samples", "16", "--max_steps", "2", "--save_strategy", "no")
    assert json.loads((output_dir / "adapter_config.json").read_text())["modules_to_save"] == ["gru", "classifier"]
    assert (output_dir / "merged" / "modeling_bigru_classifier.py").is_file()
    batch = {"input_ids": torch.randint(5, 100, (2, 16), generator=torch.Generator().manual_seed(3)),
             "attention_mask": torch.ones(2, 16, dtype=torch.long)}
    reloaded_logits_agree(output_dir, AutoModelForSequenceClassification, batch)


@pytest.mark.parametrize("config", sorted(str(path) for path in REPO.glob("recipes/configs/*/*lora.yaml")))
def test_every_lora_config_parses_with_its_recipe(config):
    recipe = importlib.import_module(Path(config).parent.name)
    arguments = parse(*recipe.ARGUMENTS, args=["--config", config, "--bf16", "false"])
    lora_args = arguments[LoraArguments]
    assert lora_args.peft == "lora" and lora_args.merge_lora


def no_dropout_tiny_bert(folder: Path) -> Path:
    """The FarsTail sample's tiny BERT config with two layers and no dropout: dropout draws differ per process
    and per resume, and without them a step depends only on the weights and the batch."""
    shutil.copytree(REPO / "hf_tasks/samples/tiny-bert-farstail", folder)
    config = BertConfig.from_pretrained(folder)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.num_hidden_layers = 2
    config.save_pretrained(folder)
    return folder


def logged_losses(output_dir: Path) -> list[tuple[int, float]]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]


def scored_results(results: dict) -> dict:
    """Metrics and losses, without times and throughputs."""
    return {key: value for key, value in results.items() if key.startswith(("eval_", "test_", "train_loss"))
            and not key.endswith(("_runtime", "_per_second", "_preparation_time"))}


@pytest.mark.distributed
def test_two_processes_with_half_batches_train_lora_like_one_process(tmp_path):
    """2 x batch 8 and 1 x batch 16 see the same examples per step: the LoRA run's logged training losses,
    evaluations and test metrics must agree."""
    model = no_dropout_tiny_bert(tmp_path / "no-dropout-bert")
    steps = ("--config_name", str(model), "--peft", "lora", "--lora_dropout", "0", "--learning_rate", "0.005",
             "--max_train_samples", "64", "--num_train_epochs", "2", "--logging_steps", "1",
             "--eval_strategy", "epoch", "--save_strategy", "no")
    config = "recipes/configs/farstail/tiny.yaml"
    single = run_recipe(farstail, config, tmp_path / "one", *steps, "--per_device_train_batch_size", "16")
    launch_two_processes(str(REPO / "recipes/farstail.py"),
                         *recipe_args(config, tmp_path / "two", *steps, "--per_device_train_batch_size", "8"))
    double = json.loads((tmp_path / "two" / "results.json").read_text())

    one, two = logged_losses(tmp_path / "one"), logged_losses(tmp_path / "two")
    assert [step for step, _ in two] == [step for step, _ in one] == list(range(1, 9))
    for (step, first), (_, second) in zip(one, two):
        assert second == pytest.approx(first, rel=1e-4), step
    assert set(scored_results(double)) == set(scored_results(single))
    for key, value in scored_results(single).items():
        assert double[key] == pytest.approx(value, rel=1e-4), key
    assert double["trainable_share"] == single["trainable_share"]
    assert json.loads((tmp_path / "two" / "adapter_config.json").read_text())["modules_to_save"] == ["classifier"]


def test_a_lora_run_interrupted_at_an_epoch_end_resumes_to_the_straight_runs_results(tmp_path, monkeypatch):
    """Stopped by SIGTERM after epoch 1 (its checkpoint holds the adapter and the trained classifier) and
    resumed with --resume_from_checkpoint auto, the run ends where the straight run ends."""
    from safetensors.torch import load_file

    from hf_tasks.errors import TrainingInterrupted
    from tests.test_run_folder import SigtermAtStep

    model = no_dropout_tiny_bert(tmp_path / "no-dropout-bert")
    steps = ("--config_name", str(model), "--peft", "lora", "--lora_dropout", "0", "--learning_rate", "0.005",
             "--max_train_samples", "64", "--max_eval_samples", "32", "--max_predict_samples", "32",
             "--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--logging_steps", "1",
             "--eval_strategy", "epoch", "--save_strategy", "epoch", "--resume_from_checkpoint", "auto")
    config = "recipes/configs/farstail/tiny.yaml"
    straight = run_recipe(farstail, config, tmp_path / "straight", *steps)

    resumed_dir = tmp_path / "resumed"
    runner_run = farstail.run
    monkeypatch.setattr(farstail, "run", lambda *args, callbacks=(), **kwargs: runner_run(
        *args, callbacks=[*callbacks, SigtermAtStep(4)], **kwargs))
    with pytest.raises(TrainingInterrupted) as stopped:
        run_recipe(farstail, config, resumed_dir, *steps)
    monkeypatch.undo()
    assert stopped.value.step == 4
    checkpoint = resumed_dir / "checkpoint-4"
    saved = load_file(checkpoint / "adapter_model.safetensors")
    assert any("classifier" in key for key in saved), sorted(saved)
    # The adapter moved from its start (B = 0), so a resume that dropped it would change the losses below.
    assert any("lora_B" in key and value.abs().max() > 0 for key, value in saved.items()), sorted(saved)

    resumed = run_recipe(farstail, config, resumed_dir, *steps)
    straight_losses, resumed_losses = logged_losses(tmp_path / "straight"), logged_losses(resumed_dir)
    assert [step for step, _ in resumed_losses] == [step for step, _ in straight_losses] == list(range(1, 9))
    for (step, first), (_, second) in zip(straight_losses, resumed_losses):
        assert second == pytest.approx(first, rel=1e-5), step
    for key, value in scored_results(straight).items():
        assert resumed[key] == pytest.approx(value, rel=1e-5), key
    assert resumed["train_loss"] == pytest.approx(straight["train_loss"], rel=1e-5)
