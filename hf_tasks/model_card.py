"""The model card a run folder carries: the code that loads the model (transformers alone, or peft for
a LoRA adapter), the results, the hyperparameters, and the Hub's metadata (model-index and friends).
"""

from __future__ import annotations

import json
import platform
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hf_tasks.portable import (
    auto_class_names,
    needs_shipped_code,
    needs_shipped_model_code,
    pipeline_task,
    ships_pipeline,
)
from hf_tasks.surgery.lora import BASE_MODEL_FOLDER, MERGED_MODEL_FOLDER
from hf_tasks.data.splits import SPLIT_OF_METRIC_PREFIX


def loading_code(model, location: str) -> str:
    """Python that loads the saved model with transformers alone: through its Auto class, with
    `trust_remote_code=True` when the folder ships its code (custom heads, pruned heads), and the
    `transformers.pipeline` that runs it."""
    quoted = json.dumps(location, ensure_ascii=False)
    auto_names = auto_class_names(model)
    name = auto_names[0] if auto_names else type(model).__name__
    remote = ", trust_remote_code=True" if needs_shipped_model_code(model) else ""
    code = f"from transformers import {name}\n\nmodel = {name}.from_pretrained({quoted}{remote})"
    task = pipeline_task(model)
    if task is not None:
        remote = ", trust_remote_code=True" if needs_shipped_code(model) else ""
        code += (f"\n\n# or, with its tokenizer or processor:\nfrom transformers import pipeline\n\n"
                 f"predict = pipeline({json.dumps(task)}, model={quoted}{remote})")
        if ships_pipeline(model):
            code += ('\n# "" when the question has no answer in the context (the threshold stored with the model)\n'
                     'answer = predict(question="...", context="...")["answer"]')
    return code


def lora_loading_code(folders: dict[str, Any], location: str) -> str:
    """Python that loads a LoRA run: the adapter on base_model/ with peft, and the merged model (if
    written) with transformers alone."""
    base = folders[BASE_MODEL_FOLDER]
    code = loading_code(base, f"{location}/{BASE_MODEL_FOLDER}").replace("model = ", "base = ", 1).split("\n\n# or")[0]
    code += (f"\n\nfrom peft import PeftModel\n\nmodel = PeftModel.from_pretrained(base, "
             f"{json.dumps(location, ensure_ascii=False)})")
    if MERGED_MODEL_FOLDER in folders:
        code += ("\n\n# or the merged model (the adapter folded into the weights), with transformers alone:\n"
                 + loading_code(folders[MERGED_MODEL_FOLDER], f"{location}/{MERGED_MODEL_FOLDER}"))
    return code


# The packages whose versions decide a run's numbers; a study reruns on the same stack with
# `pip install -e ".[all,test]" -c constraints.txt` or by pinning these.
RECORDED_PACKAGES = ("torch", "transformers", "datasets", "accelerate", "tokenizers", "peft", "timm", "numpy")


def package_versions() -> dict[str, str]:
    """Python's version and the installed version of each of `RECORDED_PACKAGES` that is installed."""
    versions = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            continue
    return versions


# Words of result keys that count, time or configure rather than score (throughput: `tokens_per_second`,
# `mfu_percent`); everything else numeric under eval_/test_ is a metric the Hub's model-index shows.
NOT_METRICS = ("loss", "runtime", "per_second", "samples", "total", "thresh", "threshold", "epoch", "second", "mfu")


def _hub_id(value: str | None) -> str | None:
    """`value` when it names a Hub repository ("org/name") rather than a local path. Bare names (timm
    architectures such as `densenet201`, legacy ids) are left out: the Hub checks `base_model`."""
    return value if value and "/" in value and not Path(value).exists() else None


def eval_results(results: dict, task_type: str, dataset_name: str, dataset_type: str) -> list[EvalResult]:
    """One Hub `EvalResult` per scored metric of the validation and test splits."""
    rows = []
    for key, value in results.items():
        prefix, _, metric = key.partition("_")
        if prefix not in SPLIT_OF_METRIC_PREFIX or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if any(part in metric.lower().split("_") for part in NOT_METRICS):
            continue
        rows.append(EvalResult(task_type=task_type, dataset_type=dataset_type, dataset_name=dataset_name,
                               dataset_split=SPLIT_OF_METRIC_PREFIX[prefix], metric_type=metric, metric_name=metric,
                               metric_value=value))
    return rows


def card_metadata(config: dict, results: dict, card: dict, pipeline_tag: str | None) -> ModelCardData:
    """The Hub's metadata for a run: what it is (task, pipeline tag, language, tags), what it came from
    (base model, dataset) and how it scored (model-index), from the resolved config, the results and the
    recipe's `model_card` facts (`task_type`, `dataset`, `language`, `tags`)."""
    dataset_id = _hub_id(config.get("dataset_name"))
    dataset_name = card.get("dataset") or dataset_id or "local files"
    task_type = card.get("task_type") or pipeline_tag
    name = config.get("hub_model_id") or Path(config.get("output_dir", "model")).name
    return ModelCardData(
        model_name=name.split("/")[-1],
        base_model=_hub_id(config.get("model_name_or_path")),
        datasets=[dataset_id] if dataset_id else None,
        language=card.get("language"),
        license=config.get("hub_license") or "unknown",
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=["hf_tasks", *card.get("tags", [])],
        eval_results=eval_results(results, task_type, dataset_name, dataset_id or dataset_name) if task_type else None,
    )


def model_card_text(config: dict, results: dict, card: dict, usage: str, notes: str = "",
                pipeline_tag: str | None = None) -> str:
    base_model = config.get("model_name_or_path")
    dataset = config.get("dataset_name")
    metadata = card_metadata(config, results, card, pipeline_tag)
    metric_rows = "\n".join(
        f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |"
        for name, value in results.items()
        if name.startswith(("eval_", "test_")) and not name.endswith(("_runtime", "_per_second", "_mfu_percent"))
    )
    hyper = ["learning_rate", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
             "warmup_steps", "weight_decay", "seed", "max_seq_length"]
    hyper_rows = "\n".join(f"| {name} | {config[name]} |" for name in hyper if name in config)
    title = card.get("title") or Path(config.get("output_dir", "model")).name
    body = (
        f"# {title}\n\n{card.get('description', '')}\n\n"
        f"Base model: `{base_model or config.get('config_name')}`. "
        f"Data: `{dataset or config.get('train_file') or config.get('data_dir')}`.\n\n"
        f"## Results\n\n| metric | value |\n|---|---|\n{metric_rows}\n\n"
        f"{notes}"
        f"## Load it\n\n```python\n{usage}\n```\n\n"
        f"## Training\n\n| hyperparameter | value |\n|---|---|\n{hyper_rows}\n\n"
        f"Trainable parameters: {results.get('trainable_params')} of {results.get('total_params')}. "
        "The full configuration is in `config.yaml`; rerun it with "
        f"`python {card.get('recipe', 'recipes/<recipe>.py')} --config config.yaml --output_dir <a new folder>`.\n"
    )
    versions = results.get("versions")
    if isinstance(versions, dict) and versions:
        body += "\nFramework versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".\n"
    return str(ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n{body}"))
