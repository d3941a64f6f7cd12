"""Make a saved model folder load with transformers alone, following transformers' custom-code convention.

A model whose class transformers lacks (BiGRU, pooled audio, timm, MLP heads) or whose attention
heads were pruned (transformers 5.x ignores `config.pruned_heads`) cannot load from its folder
without hf_tasks. `ship_code` writes the modeling code beside the weights and points
`config.json`'s `auto_map` at it, so that anyone can load the folder (or its Hub copy) with
`AutoModelFor*.from_pretrained(folder, trust_remote_code=True)`:

- custom models ship their defining module (`hf_tasks.modeling.bigru`, ...) and the sibling modules
  it imports relatively (`pruned_heads.py`), which import only torch, transformers and timm;
  `auto_map` names the config and model classes, and the model removes recorded heads itself;
- pruned transformers models ship `pruned_heads.py` and a three-line module that subclasses the
  transformers class with one that removes the recorded heads when built;
- question-answering models ship `pipeline_question_answering.py` (`hf_tasks.modeling.qa_pipeline`),
  named under "question-answering" in `config.json`'s `custom_pipelines`: transformers 5.x has no QA
  pipeline of its own, and this one answers as the recipe does, no-answer threshold included, with
  `pipeline("question-answering", model=folder, trust_remote_code=True)`.

Every shipped file starts with a line naming the hf_tasks version it came from. transformers copies
the files into its module cache keyed by their content, so folders from different versions coexist.
"""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path

import transformers
from transformers.dynamic_module_utils import get_relative_import_files
from transformers import (
    AutoModel,
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

import hf_tasks
from hf_tasks.modeling import CUSTOM_MODELS, pruned_heads, qa_pipeline
from hf_tasks.files import write_atomic

logger = logging.getLogger(__name__)

# Auto classes a run folder's model may load through, most specific first.
AUTO_CLASSES = (
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForAudioClassification,
    AutoModelForImageClassification,
    AutoModelForTokenClassification,
    AutoModel,
)
PRUNED_MODEL_MODULE = "modeling_hf_tasks_pruned"
QA_PIPELINE_MODULE = "pipeline_question_answering"
# The `transformers.pipeline` task of each Auto class a run folder loads through.
PIPELINE_TASKS = {
    "AutoModelForQuestionAnswering": "question-answering",
    "AutoModelForSequenceClassification": "text-classification",
    "AutoModelForAudioClassification": "audio-classification",
    "AutoModelForImageClassification": "image-classification",
    "AutoModelForTokenClassification": "token-classification",
}


def _header(source: str) -> str:
    return (
        f"# Shipped by hf_tasks {hf_tasks.__version__} ({source}); loads with "
        "AutoModelFor*.from_pretrained(folder, trust_remote_code=True).\n"
    )


def _module_files(module) -> dict[str, str]:
    """`module`'s source, and its sibling modules imported relatively, by file name."""
    path = Path(inspect.getsourcefile(module))
    files = {}
    for sibling in [path, *map(Path, get_relative_import_files(path))]:
        files[sibling.name] = _header(f"{module.__package__}.{sibling.stem}") + sibling.read_text(encoding="utf-8")
    return files


def auto_class_names(model) -> list[str]:
    """Names of the Auto classes that build `type(model)` from its config (e.g. ["AutoModelForQuestionAnswering"])."""
    names = []
    for auto_class in AUTO_CLASSES:
        try:
            if auto_class._model_mapping[type(model.config)] is type(model):
                names.append(auto_class.__name__)
        except KeyError:
            continue
    return names


def pipeline_task(model) -> str | None:
    """The `transformers.pipeline` task that runs `model`, if any."""
    return next((PIPELINE_TASKS[name] for name in auto_class_names(model) if name in PIPELINE_TASKS), None)


def is_custom(model) -> bool:
    """True for models defined in hf_tasks.modeling, which transformers alone does not know."""
    return any(type(model) is model_class for _, _, model_class in CUSTOM_MODELS)


def ships_pipeline(model) -> bool:
    """True for question-answering models, whose pipeline transformers 5.x no longer has."""
    return pipeline_task(model) == "question-answering"


def needs_shipped_model_code(model) -> bool:
    return is_custom(model) or bool(getattr(model.config, "pruned_heads", None))


def needs_shipped_code(model) -> bool:
    return needs_shipped_model_code(model) or ships_pipeline(model)


def ship_code(model, folder: str | Path) -> list[Path]:
    """Write the code that loads `model` (already saved in `folder`) and the pipeline that runs it beside
    it, and point `config.json`'s `auto_map` and `custom_pipelines` at them. Returns the files written;
    none for models that transformers loads and runs by itself."""
    if not needs_shipped_code(model):
        return []
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} holds no config.json: save the model there before shipping its code.")
    files: dict[str, str] = {}
    auto_map: dict[str, str] = {}
    if needs_shipped_model_code(model):
        files, auto_map = _model_code(model)
    custom_pipelines = {}
    if ships_pipeline(model):
        files[f"{QA_PIPELINE_MODULE}.py"] = _module_files(qa_pipeline)[Path(qa_pipeline.__file__).name]
        custom_pipelines["question-answering"] = {
            "impl": f"{QA_PIPELINE_MODULE}.{qa_pipeline.QuestionAnsweringPipeline.__name__}",
            "pt": ["AutoModelForQuestionAnswering"]}

    written = []
    for name, text in files.items():
        path = folder / name
        written.append(write_atomic(path, text))
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if auto_map:
        config["auto_map"] = {**config.get("auto_map", {}), **auto_map}
    if custom_pipelines:
        config["custom_pipelines"] = {**config.get("custom_pipelines", {}), **custom_pipelines}
    write_atomic(config_path, json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    logger.info("Shipped %s with the model (auto_map %s, custom_pipelines %s).", ", ".join(files), auto_map,
                list(custom_pipelines))
    return written


def _model_code(model) -> tuple[dict[str, str], dict[str, str]]:
    """The files that build a custom or head-pruned `model`, by name, and the `auto_map` that points at them."""
    auto_names = auto_class_names(model)
    if not auto_names:
        raise ValueError(f"No transformers Auto class builds {type(model).__name__}; "
                         "its folder cannot name one in auto_map.")
    model_class = type(model)
    files: dict[str, str] = {}
    auto_map: dict[str, str] = {}
    if is_custom(model):
        module_name = f"modeling_{model.config.model_type}"
        module_files = _module_files(inspect.getmodule(model_class))
        files[f"{module_name}.py"] = module_files.pop(Path(inspect.getsourcefile(model_class)).name)
        files.update(module_files)
        auto_map["AutoConfig"] = f"{module_name}.{type(model.config).__name__}"
        # The class itself removes recorded heads when built (`rebuilds_pruned_heads`).
        model_reference = f"{module_name}.{model_class.__name__}"
    elif getattr(transformers, model_class.__name__, None) is not model_class:
        raise ValueError(f"{model_class.__name__} is neither a transformers class nor an hf_tasks model; "
                         "cannot ship its code.")
    else:
        files.update(_module_files(pruned_heads))
        pruned_name = f"{model_class.__name__}WithPrunedHeads"
        files[f"{PRUNED_MODEL_MODULE}.py"] = (
            _header("hf_tasks.portable")
            + f'"""{model_class.__name__} that removes the attention heads its config records as pruned."""\n\n'
            + f"from transformers import {model_class.__name__}\n\nfrom .pruned_heads import with_pruned_heads\n\n"
            + f"{pruned_name} = with_pruned_heads({model_class.__name__})\n"
        )
        model_reference = f"{PRUNED_MODEL_MODULE}.{pruned_name}"
    auto_map.update({name: model_reference for name in auto_names})
    return files, auto_map
