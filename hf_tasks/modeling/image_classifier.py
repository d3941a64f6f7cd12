"""Building image classifiers for transfer, and the paper's "single trainable block" of each backbone.

`build_model` (the builder contract every model family shares, `hf_tasks.modeling`) picks
`TimmForImageClassification` (a timm backbone with the paper's head, defined in the self-contained
`timm_classifier` module that run folders ship) or `AutoModelForImageClassification` (HF image models such as
`facebook/deit-small-distilled-patch16-224`). `paper_trainable_modules` names the paper's "single block" of a
backbone, which `--trainable_modules paper` trains (the regime step, `hf_tasks.surgery.regime`, freezes the
rest): timm's own grouping of the backbone where it agrees with the paper, `PAPER_BLOCKS` where it does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import timm
from timm.models._manipulate import group_parameters
from torch import nn
from transformers import AutoImageProcessor, AutoModelForImageClassification, PreTrainedModel

from hf_tasks.errors import BadInputError
from hf_tasks.modeling import auto
from hf_tasks.modeling.labels import ClassLabels
from hf_tasks.modeling.timm_classifier import TimmForImageClassification
from hf_tasks.options import TIMM_SOURCE_PREFIXES, ImageHeadArguments, ImageModelArguments


def is_timm_name(name: str) -> bool:
    """True for a timm model name (`densenet201`, `vit_base_patch16_224.augreg_in21k`) or a timm
    source (`hf-hub:...`, `local-dir:...`)."""
    if name.startswith(TIMM_SOURCE_PREFIXES):
        return True
    return "/" not in name and not Path(name).exists() and timm.is_model(name.split(".")[0])


def load_processor(model_args: ImageModelArguments):
    """The checkpoint's image processor (whose mean/std it was pretrained with); None for a timm backbone,
    whose statistics are timm's own, or where none was saved (e.g. offline without one)."""
    if is_timm_name(model_args.tokenizer_name or model_args.source):
        return None
    try:
        return auto.load_processor(model_args, AutoImageProcessor)
    except (OSError, ValueError):
        return None


def build_model(model_args: ImageModelArguments, head_args: ImageHeadArguments, labels: ClassLabels,
                processor) -> PreTrainedModel:
    """An image classifier for `labels`; `processor` is the checkpoint's image processor (`load_processor`),
    which building does not need: the task normalises with its statistics (`backbone_statistics`).

    A timm name builds `TimmForImageClassification` with `--head`; a folder saved by it loads back;
    anything else (hub id or folder) goes through `AutoModelForImageClassification` with a new classifier
    sized for the labels.
    """
    source = model_args.source
    if is_timm_name(source):
        try:
            return TimmForImageClassification.from_timm(
                source,
                labels.names,
                pretrained_backbone=model_args.pretrained_backbone,
                timm_kwargs=model_args.timm_kwargs,
                head=head_args.head,
                head_hidden_size=head_args.head_hidden_size,
                head_dropout=head_args.head_dropout,
            )
        except ValueError as error:  # the self-contained model module cannot raise hf_tasks' own error
            raise BadInputError(str(error)) from error
    config = labels.config()
    if model_args.pretrained_backbone:
        return AutoModelForImageClassification.from_pretrained(
            source, ignore_mismatched_sizes=True, **config, **model_args.pretrained_kwargs()
        )
    return AutoModelForImageClassification.from_config(auto.load_config(model_args, **config))


def backbone_statistics(model: nn.Module, processor) -> tuple[list[float], list[float]] | None:
    """The (mean, std) the backbone was pretrained with: timm's data config, or the checkpoint's image
    processor; None when neither has them."""
    if isinstance(model, TimmForImageClassification):
        data_config = timm.data.resolve_data_config({}, model=model.backbone)
        return list(data_config["mean"]), list(data_config["std"])
    mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
    return (list(mean), list(std)) if mean is not None and std is not None else None


# The paper's "single trainable block" where timm's grouping of the backbone (`group_matcher`) says otherwise,
# and for transformers models, which have no such grouping: module paths relative to the backbone, matched by
# the longest prefix of the timm architecture or the transformers model_type.
PAPER_BLOCKS: dict[str, tuple[str, ...]] = {
    # timm groups each VGG conv alone; the paper's block 5 is the four (three) convs after the fourth pooling.
    "timm:vgg19": ("features.28", "features.30", "features.32", "features.34"),
    "timm:vgg16": ("features.24", "features.26", "features.28"),
    # timm groups the last self-attention block with the class-attention ones; the paper trains the last
    # class-attention block.
    "timm:cait": ("blocks_token_only.-1", "norm"),
    "hf:deit": ("layers.-1", "layernorm"),
    "hf:vit": ("layers.-1", "layernorm"),
}


def architecture_key(model: PreTrainedModel) -> str:
    """`timm:<architecture>` or `hf:<model_type>`, the key `PAPER_BLOCKS` is matched on."""
    if isinstance(model, TimmForImageClassification):
        architecture = getattr(model.backbone, "pretrained_cfg", {}).get("architecture") or model.config.timm_name
        return f"timm:{architecture}"
    return f"hf:{model.config.model_type}"


def _outermost_modules(backbone: nn.Module, parameter_names: Sequence[str],
                       reserved: frozenset[str]) -> tuple[str, ...]:
    """The fewest module paths whose parameters are exactly `parameter_names` (`layer4`, not its 150 tensors).
    A path in `reserved` (a name the wrapping model uses too, such as its `head`) is named by its children."""
    chosen = set(parameter_names)
    owned = {name: {f"{name}.{parameter}" if name else parameter for parameter, _ in module.named_parameters()}
             for name, module in backbone.named_modules()}
    paths = []
    for parameter in parameter_names:
        module = parameter.rsplit(".", 1)[0] if "." in parameter else ""
        parts = module.split(".")
        # The highest ancestor all of whose parameters are chosen.
        outer = next(".".join(parts[:depth]) for depth in range(1, len(parts) + 1)
                     if owned[".".join(parts[:depth])] <= chosen and ".".join(parts[:depth]) not in reserved)
        if outer not in paths:
            paths.append(outer)
    return tuple(paths)


def _timm_last_block(model: TimmForImageClassification) -> tuple[str, ...] | None:
    """The backbone's last block by timm's own coarse grouping: the last group of parameters, and the one before
    it when the last holds only a final norm (DenseNet's norm5, a ViT's fc_norm); None for a model timm does
    not group."""
    backbone = model.backbone
    if not hasattr(backbone, "group_matcher"):
        return None
    groups = group_parameters(backbone, backbone.group_matcher(coarse=True))
    *_, before, last = sorted(groups)
    names = list(groups[last])
    if all("norm" in name.rpartition(".")[0].rpartition(".")[2] for name in names):  # each one's module is a norm
        names = list(groups[before]) + names
    return _outermost_modules(backbone, names, reserved=frozenset(model._modules))


def paper_trainable_modules(model: PreTrainedModel) -> tuple[str, ...]:
    """The paper's "single trainable block" of the model's backbone, as module paths relative to it."""
    key = architecture_key(model)
    matches = [prefix for prefix in PAPER_BLOCKS if key.startswith(prefix)]
    if matches:
        return PAPER_BLOCKS[max(matches, key=len)]
    block = _timm_last_block(model) if isinstance(model, TimmForImageClassification) else None
    if block is None:
        top_level = ", ".join(name for name, _ in model.base_model.named_children())
        raise BadInputError(
            f"No paper 'single trainable block' is known for {key}; pass --trainable_modules with module paths "
            f"relative to the backbone (top-level modules: {top_level}), or 'all' / 'none'."
        )
    return block
