"""Run folders load with transformers alone: custom heads and pruned encoders ship their code (auto_map).

Each model family the recipes train is built tiny, saved with `hf_tasks.portable.ship_code`, and
loaded in a subprocess where `import hf_tasks` fails, through `AutoModelFor*.from_pretrained(folder,
trust_remote_code=True)`; its logits must equal the in-process model's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers
from transformers import (
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    HubertConfig,
    HubertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
    ViTConfig,
    ViTForImageClassification,
)
from transformers.dynamic_module_utils import get_imports

from hf_tasks.modeling.audio import PooledAudioClassifier, PooledAudioClassifierConfig
from hf_tasks.modeling.bigru import BiGRUConfig, BiGRUForSequenceClassification
from hf_tasks.modeling.mlp import build_mlp_classifier
from hf_tasks.modeling.timm_classifier import TimmForImageClassification
from hf_tasks.portable import ship_code
from hf_tasks.surgery import keep_layers, prune_heads

from .conftest import TINY_SPEECH_FEATURE_ENCODER

TEXT = dict(vocab_size=60, hidden_size=16, num_hidden_layers=3, num_attention_heads=4, intermediate_size=32)
LABELS = dict(num_labels=3, id2label={0: "e", 1: "c", 2: "n"}, label2id={"e": 0, "c": 1, "n": 2})


def text_inputs():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 60, (2, 7), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.tensor([[1] * 7, [1] * 5 + [0] * 2])}


def audio_inputs():
    generator = torch.Generator().manual_seed(0)
    return {"input_values": torch.randn(2, 1600, generator=generator)}


def image_inputs(size: int = 32):
    generator = torch.Generator().manual_seed(0)
    return {"pixel_values": torch.randn(2, 3, size, size, generator=generator)}


def tiny_hubert():
    return HubertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
                        **TINY_SPEECH_FEATURE_ENCODER, **LABELS)


def pruned(model, heads={0: [1, 3], 1: [0]}):
    prune_heads(model, heads)
    return model


def bert_pruned_and_layer_deleted():
    model = BertForSequenceClassification(BertConfig(**TEXT, **LABELS))
    keep_layers(model, "0,2")
    return pruned(model)


# name → (Auto class the folder loads through, model builder, inputs)
FAMILIES = {
    "bert_pairs": ("AutoModelForSequenceClassification",
                   lambda: BertForSequenceClassification(BertConfig(**TEXT, **LABELS)), text_inputs),
    "bert_qa": ("AutoModelForQuestionAnswering", lambda: BertForQuestionAnswering(BertConfig(**TEXT)), text_inputs),
    "bigru": ("AutoModelForSequenceClassification",
              lambda: BiGRUForSequenceClassification(BiGRUConfig(encoder=BertConfig(**TEXT), gru_hidden_size=8,
                                                                 **LABELS)),
              text_inputs),
    "pooled_audio": ("AutoModelForAudioClassification",
                     lambda: PooledAudioClassifier(PooledAudioClassifierConfig(encoder=tiny_hubert(),
                                                                               head_hidden_size=8, **LABELS)),
                     audio_inputs),
    "mlp": ("AutoModelForImageClassification",
            lambda: build_mlp_classifier(["a", "b", "c"], hidden_sizes=[16, 8]), image_inputs),
    "timm": ("AutoModelForImageClassification",
             lambda: TimmForImageClassification.from_timm("test_resnet", ["a", "b", "c"], pretrained_backbone=False,
                                                          head_hidden_size=8),
             image_inputs),
    "bert_pruned": ("AutoModelForSequenceClassification",
                    lambda: pruned(BertForSequenceClassification(BertConfig(**TEXT, **LABELS))), text_inputs),
    "bert_pruned_layers_deleted": ("AutoModelForSequenceClassification", bert_pruned_and_layer_deleted, text_inputs),
    "roberta_pruned": ("AutoModelForSequenceClassification",
                       lambda: pruned(RobertaForSequenceClassification(RobertaConfig(**TEXT, **LABELS))), text_inputs),
    "vit_pruned": ("AutoModelForImageClassification",
                   lambda: pruned(ViTForImageClassification(ViTConfig(image_size=32, patch_size=8, hidden_size=16,
                                                                       num_hidden_layers=2, num_attention_heads=4,
                                                                       intermediate_size=32, **LABELS))),
                   image_inputs),
    "hubert_pruned": ("AutoModelForAudioClassification",
                      lambda: pruned(HubertForSequenceClassification(tiny_hubert())), audio_inputs),
    "bigru_pruned": ("AutoModelForSequenceClassification",
                     lambda: pruned(BiGRUForSequenceClassification(BiGRUConfig(encoder=BertConfig(**TEXT),
                                                                               gru_hidden_size=8, **LABELS))),
                     text_inputs),
}

LOAD_WITHOUT_HF_TASKS = """
import json, sys, torch, transformers
try:
    import hf_tasks
except ImportError:
    pass
else:
    sys.exit("hf_tasks imported although it must not be importable here")
cases = json.loads(sys.argv[1])
report = {}
for name, case in cases.items():
    auto_class = getattr(transformers, case["auto_class"])
    model = auto_class.from_pretrained(case["folder"], trust_remote_code=True).eval()
    inputs = torch.load(case["inputs"])
    expected = torch.load(case["logits"])
    with torch.no_grad():
        logits = model(**inputs)
    logits = logits.start_logits if case["auto_class"] == "AutoModelForQuestionAnswering" else logits.logits
    report[name] = {"max_abs_diff": (logits - expected).abs().max().item(), "class": type(model).__name__,
                    "module": type(model).__module__}
print(json.dumps(report))
"""


def without_hf_tasks(tmp_path: Path) -> dict[str, str]:
    """Environment of a Python where `import hf_tasks` fails (an hf_tasks package on the path that
    raises), with its own transformers module cache."""
    blocker = tmp_path / "blocker" / "hf_tasks"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('hf_tasks is not installed here')\n")
    return {**os.environ, "PYTHONPATH": str(blocker.parent), "HF_MODULES_CACHE": str(tmp_path / "modules"),
            "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def logits_of(model, inputs):
    with torch.no_grad():
        output = model(**inputs)
    return output.start_logits if hasattr(output, "start_logits") else output.logits


def test_every_model_family_loads_without_hf_tasks_with_identical_logits(tmp_path):
    cases = {}
    for name, (auto_class, build, make_inputs) in FAMILIES.items():
        torch.manual_seed(0)
        model = build().eval()
        inputs = make_inputs()
        folder = tmp_path / "runs" / name
        model.save_pretrained(folder)
        ship_code(model, folder)
        torch.save(inputs, tmp_path / f"{name}-inputs.pt")
        torch.save(logits_of(model, inputs), tmp_path / f"{name}-logits.pt")
        cases[name] = {"auto_class": auto_class, "folder": str(folder), "inputs": str(tmp_path / f"{name}-inputs.pt"),
                       "logits": str(tmp_path / f"{name}-logits.pt")}
    finished = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_HF_TASKS, json.dumps(cases)], cwd=tmp_path,
                              env=without_hf_tasks(tmp_path), capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-4000:]
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert set(report) == set(FAMILIES)
    for name, loaded in report.items():
        assert loaded["max_abs_diff"] <= 1e-5, (name, loaded)
    # Custom and pruned models ran the shipped code; the others are transformers' own classes.
    assert report["bert_pairs"]["module"].startswith("transformers.models.")
    assert report["bigru"]["module"].startswith("transformers_modules.")
    assert report["hubert_pruned"]["class"] == "HubertForSequenceClassificationWithPrunedHeads"
    assert report["bigru_pruned"]["module"].startswith("transformers_modules.")


def test_shipped_files_are_self_contained_and_versioned(tmp_path):
    import hf_tasks

    expected = {
        "bigru_pruned": (["modeling_bigru_classifier.py", "pruned_heads.py"], {
            "AutoConfig": "modeling_bigru_classifier.BiGRUConfig",
            "AutoModelForSequenceClassification": "modeling_bigru_classifier.BiGRUForSequenceClassification"}),
        "roberta_pruned": (["modeling_hf_tasks_pruned.py", "pruned_heads.py"], {
            "AutoModelForSequenceClassification":
                "modeling_hf_tasks_pruned.RobertaForSequenceClassificationWithPrunedHeads"}),
        "timm": (["modeling_hf_tasks_timm.py"], {
            "AutoConfig": "modeling_hf_tasks_timm.TimmConfig",
            "AutoModelForImageClassification": "modeling_hf_tasks_timm.TimmForImageClassification"}),
    }
    for name, (file_names, auto_map) in expected.items():
        model = FAMILIES[name][1]()
        model.save_pretrained(tmp_path / name)
        written = ship_code(model, tmp_path / name)
        assert sorted(path.name for path in written) == file_names
        for path in written:
            assert path.read_text().startswith(f"# Shipped by hf_tasks {hf_tasks.__version__} ")
            assert "hf_tasks" not in get_imports(path), path.name
        assert json.loads((tmp_path / name / "config.json").read_text())["auto_map"] == auto_map


@pytest.mark.parametrize("name", ["bigru_pruned", "pooled_audio", "bert_pruned"])
def test_trust_remote_code_loads_the_same_model_where_hf_tasks_is_imported(tmp_path, name):
    """hf_tasks' registered classes win over the shipped code here: they must rebuild pruned heads too."""
    auto_class, build, make_inputs = FAMILIES[name]
    torch.manual_seed(0)
    model = build().eval()
    model.save_pretrained(tmp_path)
    ship_code(model, tmp_path)
    loaded = getattr(transformers, auto_class).from_pretrained(tmp_path, trust_remote_code=True).eval()
    inputs = make_inputs()
    assert (logits_of(loaded, inputs) - logits_of(model, inputs)).abs().max() <= 1e-5


def test_models_transformers_loads_by_itself_ship_nothing(tmp_path):
    model = BertForSequenceClassification(BertConfig(**TEXT, **LABELS))
    model.save_pretrained(tmp_path)
    assert ship_code(model, tmp_path) == []
    assert "auto_map" not in json.loads((tmp_path / "config.json").read_text())


def test_shipping_code_needs_the_saved_model_first(tmp_path):
    with pytest.raises(FileNotFoundError, match="save the model there"):
        ship_code(pruned(BertForSequenceClassification(BertConfig(**TEXT, **LABELS))), tmp_path)


def test_question_answering_models_ship_the_pipeline_transformers_lacks(tmp_path):
    plain = BertForQuestionAnswering(BertConfig(**TEXT))
    plain.save_pretrained(tmp_path / "plain")
    written = ship_code(plain, tmp_path / "plain")
    assert [path.name for path in written] == ["pipeline_question_answering.py"]
    assert "hf_tasks" not in get_imports(written[0])
    config = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert "auto_map" not in config
    assert config["custom_pipelines"] == {"question-answering": {
        "impl": "pipeline_question_answering.QuestionAnsweringPipeline", "pt": ["AutoModelForQuestionAnswering"]}}
    # A pruned QA model ships its model code as well, and the pipeline loads it through auto_map.
    pruned_qa = pruned(BertForQuestionAnswering(BertConfig(**TEXT)))
    pruned_qa.save_pretrained(tmp_path / "pruned")
    assert sorted(path.name for path in ship_code(pruned_qa, tmp_path / "pruned")) == [
        "modeling_hf_tasks_pruned.py", "pipeline_question_answering.py", "pruned_heads.py"]
    config = json.loads((tmp_path / "pruned" / "config.json").read_text())
    assert set(config) >= {"auto_map", "custom_pipelines"}
