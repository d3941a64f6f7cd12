"""Building image classifiers for transfer, and the paper's "single trainable block" of each.

`build_image_classifier` picks `TimmForImageClassification` (a timm backbone with the paper's head,
defined in the self-contained `timm_classifier` module that run folders ship) or
`AutoModelForImageClassification` (HF image models such as `facebook/deit-small-distilled-patch16-224`).
`PAPER_TRAINABLE_MODULES` holds the paper's "single block" per model, which `--trainable_modules paper`
trains (the regime step, `hf_tasks.surgery.regime`, freezes the rest of the backbone).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import timm
from torch import nn
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification, PreTrainedModel

from hf_tasks.modeling.head_choice import IMAGE_CLASSIFIER_HEADS
from hf_tasks.modeling.labels import label_maps
from hf_tasks.modeling.timm_classifier import TimmForImageClassification
from hf_tasks.errors import BadInputError

logger = logging.getLogger(__name__)


@dataclass
class TransferArguments:
    """How to build the image classifier."""

    pretrained_backbone: bool = field(
        default=True,
        metadata={"help": "Load the backbone's pretrained weights. false: random weights (offline tests, counts)."},
    )
    head: str = IMAGE_CLASSIFIER_HEADS.dataclass_field(default="mlp")
    head_hidden_size: int = field(default=256, metadata={"help": "Hidden units of the paper head."})
    head_dropout: float = field(default=0.5, metadata={"help": "Dropout of the paper head."})
    timm_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": "JSON of extra timm.create_model arguments, e.g. '{\"img_size\": 32}'."},
    )

    def __post_init__(self):
        if isinstance(self.timm_kwargs, str):
            self.timm_kwargs = json.loads(self.timm_kwargs) if self.timm_kwargs.strip() else None
        self.head = IMAGE_CLASSIFIER_HEADS.canonical(self.head)


def is_timm_name(name: str) -> bool:
    """True for a timm model name (`densenet201`, `vit_base_patch16_224.augreg_in21k`) or a timm
    source (`hf-hub:...`, `local-dir:...`)."""
    if name.startswith(("hf-hub:", "local-dir:")):
        return True
    return "/" not in name and not Path(name).exists() and timm.is_model(name.split(".")[0])


def build_image_classifier(
    name_or_path: str, label_names: Sequence[str], transfer: TransferArguments, **pretrained_kwargs: Any
) -> PreTrainedModel:
    """An image classifier for `label_names`.

    A timm name builds `TimmForImageClassification` with `transfer.head`; a folder saved by it loads
    back; anything else (hub id or folder) goes through `AutoModelForImageClassification` with a new
    classifier sized for the labels. `pretrained_kwargs` go to `from_pretrained` (cache_dir, revision, ...).
    """
    names = [str(name) for name in label_names]
    labels = label_maps(names)
    if is_timm_name(name_or_path):
        try:
            return TimmForImageClassification.from_timm(
                name_or_path,
                names,
                pretrained_backbone=transfer.pretrained_backbone,
                timm_kwargs=transfer.timm_kwargs,
                head=transfer.head,
                head_hidden_size=transfer.head_hidden_size,
                head_dropout=transfer.head_dropout,
            )
        except ValueError as error:  # the self-contained model module cannot raise hf_tasks' own error
            raise BadInputError(str(error)) from error
    if transfer.pretrained_backbone:
        return AutoModelForImageClassification.from_pretrained(
            name_or_path, ignore_mismatched_sizes=True, **labels, **pretrained_kwargs
        )
    config = AutoConfig.from_pretrained(name_or_path, **labels, **pretrained_kwargs)
    return AutoModelForImageClassification.from_config(config)


def backbone_statistics(
    model: nn.Module, name_or_path: str, **pretrained_kwargs: Any
) -> tuple[list[float], list[float]] | None:
    """The (mean, std) the backbone was pretrained with: timm's data config, or the image processor
    saved with a transformers model; None when neither is available (e.g. offline without one)."""
    if isinstance(model, TimmForImageClassification):
        data_config = timm.data.resolve_data_config({}, model=model.backbone)
        return list(data_config["mean"]), list(data_config["std"])
    try:
        processor = AutoImageProcessor.from_pretrained(name_or_path, **pretrained_kwargs)
    except (OSError, ValueError):
        return None
    mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
    return (list(mean), list(std)) if mean is not None and std is not None else None


# The paper's "single trainable block" per architecture (module paths relative to the backbone),
# matched by the longest prefix of the timm architecture or the transformers model_type.
PAPER_TRAINABLE_MODULES: dict[str, tuple[str, ...]] = {
    "timm:densenet": ("features.denseblock4", "features.norm5"),
    "timm:vgg19": ("features.28", "features.30", "features.32", "features.34"),  # the four convs of block 5
    "timm:vgg16": ("features.24", "features.26", "features.28"),
    "timm:cait": ("blocks_token_only.-1", "norm"),  # the last class-attention block
    "timm:deit": ("blocks.-1", "norm", "fc_norm"),
    "timm:vit": ("blocks.-1", "norm", "fc_norm"),
    "timm:resnet": ("layer4",),
    "timm:test_resnet": ("layer4",),
    "hf:deit": ("layers.-1", "layernorm"),
    "hf:vit": ("layers.-1", "layernorm"),
}


def architecture_key(model: PreTrainedModel) -> str:
    """`timm:<architecture>` or `hf:<model_type>`, the key `PAPER_TRAINABLE_MODULES` is matched on."""
    if isinstance(model, TimmForImageClassification):
        architecture = getattr(model.backbone, "pretrained_cfg", {}).get("architecture") or model.config.timm_name
        return f"timm:{architecture}"
    return f"hf:{model.config.model_type}"


def paper_trainable_modules(model: PreTrainedModel) -> tuple[str, ...]:
    key = architecture_key(model)
    matches = [prefix for prefix in PAPER_TRAINABLE_MODULES if key.startswith(prefix)]
    if not matches:
        top_level = ", ".join(name for name, _ in model.base_model.named_children())
        raise BadInputError(
            f"No paper 'single trainable block' is known for {key}; pass --trainable_modules with module paths "
            f"relative to the backbone (top-level modules: {top_level}), or 'all' / 'none'."
        )
    return PAPER_TRAINABLE_MODULES[max(matches, key=len)]
