"""timm backbones as Hugging Face models, the paper's MLP head, and "single trainable block" freezing.

`TimmForImageClassification` wraps any timm model (`densenet201`, `vgg19`, `cait_s24_224`,
`deit_base_distilled_patch16_224`, `hf-hub:timm/...`, `local-dir:/path`) as a `PreTrainedModel`
registered with `AutoConfig`/`AutoModelForImageClassification`, so the Trainer, `save_pretrained`,
`from_pretrained` and `push_to_hub` work unchanged (import this module before loading a saved one).

The head follows Malpure et al. 2021: flatten → Linear(256) → ELU → Dropout(0.5) → Linear(classes)
on the backbone's pooled features; distilled DeiT gets one such head on the class token and one on
the distillation token, and its logits are the average of the two.

`build_image_classifier` picks the timm wrapper or `AutoModelForImageClassification` (HF image
models such as `facebook/deit-small-distilled-patch16-224`), and `train_only` freezes a backbone
except the modules a spec names (`PAPER_TRAINABLE_MODULES` holds the paper's "single block" per model).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import timm
import torch
from timm.models.vgg import ConvMlp as VggConvMlp
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModelForImageClassification,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import ImageClassifierOutput

from hf_tasks.tasks.base import BadInputError

logger = logging.getLogger(__name__)

HEADS = ("paper", "linear")


@dataclass
class TransferArguments:
    """How to build the image classifier and which part of its backbone trains."""

    pretrained_backbone: bool = field(
        default=True,
        metadata={"help": "Load the backbone's pretrained weights. false: random weights (offline tests, counts)."},
    )
    head: str = field(
        default="paper",
        metadata={"help": "timm models: 'paper' (Linear(256), ELU, Dropout, Linear) or 'linear'; HF keep theirs."},
    )
    head_hidden_size: int = field(default=256, metadata={"help": "Hidden units of the paper head."})
    head_dropout: float = field(default=0.5, metadata={"help": "Dropout of the paper head."})
    trainable_modules: str = field(
        default="paper",
        metadata={
            "help": "Backbone parts that train, the head always does: 'paper' (the model's last block, see "
            "PAPER_TRAINABLE_MODULES), 'all', 'none' (head only), or comma-separated module paths relative to "
            "the backbone, negative indices allowed (e.g. 'blocks.-1,norm')."
        },
    )
    timm_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": "JSON of extra timm.create_model arguments, e.g. '{\"img_size\": 32}'."},
    )

    def __post_init__(self):
        if isinstance(self.timm_kwargs, str):
            self.timm_kwargs = json.loads(self.timm_kwargs) if self.timm_kwargs.strip() else None
        if self.head not in HEADS:
            raise ValueError(f"--head {self.head!r}: choose one of {HEADS}.")


class ClassifierMLP(nn.Sequential):
    """The paper head (flatten → Linear(hidden) → ELU → Dropout → Linear) or a single linear layer."""

    def __init__(self, kind: str, in_features: int, num_labels: int, hidden_size: int = 256, dropout: float = 0.5):
        if kind == "paper":
            layers = [
                nn.Flatten(),
                nn.Linear(in_features, hidden_size),
                nn.ELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden_size, num_labels),
            ]
        elif kind == "linear":
            layers = [nn.Flatten(), nn.Linear(in_features, num_labels)]
        else:
            raise ValueError(f"Unknown head {kind!r}; choose one of {HEADS}.")
        super().__init__(*layers)

    def reset_parameters(self) -> None:
        for layer in self:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()


class TimmConfig(PreTrainedConfig):
    """A timm backbone (`timm_name` + `timm_kwargs` for `timm.create_model`) with a classification head."""

    model_type = "hf_tasks_timm"

    timm_name: str = "resnet18"
    timm_kwargs: dict | None = None
    head: str = "paper"
    head_hidden_size: int = 256
    head_dropout: float = 0.5
    # Provenance only: whether the backbone started from pretrained weights. Loading a saved model
    # always builds random weights and then reads the saved ones.
    pretrained_backbone: bool = False


def _create_backbone(config: TimmConfig, pretrained: bool) -> nn.Module:
    """The timm model without its classifier, giving pooled features from `forward_head(pre_logits=True)`."""
    try:
        backbone = timm.create_model(
            config.timm_name, pretrained=pretrained, num_classes=0, **(config.timm_kwargs or {})
        )
    except RuntimeError as error:
        if "Unknown model" in str(error):
            raise BadInputError(
                f"timm has no model {config.timm_name!r}; see timm.list_models() (or use 'hf-hub:org/name' / "
                "'local-dir:/path')."
            ) from error
        raise
    # timm's VGG puts fc6/fc7 (a 7x7 ConvMlp, ~119.5M parameters) before its classifier; the paper's
    # head replaces them and sits on the globally pooled 512-channel conv output instead.
    if isinstance(getattr(backbone, "pre_logits", None), VggConvMlp):
        backbone.pre_logits = nn.Identity()
        backbone.head_hidden_size = backbone.num_features
    return backbone


class TimmForImageClassification(PreTrainedModel):
    """Image classifier: a timm backbone and `ClassifierMLP` head(s); returns `ImageClassifierOutput`."""

    config_class = TimmConfig
    base_model_prefix = "backbone"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: TimmConfig, backbone: nn.Module | None = None):
        super().__init__(config)
        self.backbone = backbone if backbone is not None else _create_backbone(config, pretrained=False)
        features = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        head_args = (config.head, features, config.num_labels, config.head_hidden_size, config.head_dropout)
        self.head = ClassifierMLP(*head_args)
        # Distilled DeiT: a second head on the distillation token (the paper heads both tokens).
        self.head_dist = ClassifierMLP(*head_args) if getattr(self.backbone, "dist_token", None) is not None else None
        self.post_init()

    @classmethod
    def from_timm(
        cls,
        timm_name: str,
        label_names: Sequence[str],
        *,
        pretrained_backbone: bool = True,
        timm_kwargs: dict | None = None,
        head: str = "paper",
        head_hidden_size: int = 256,
        head_dropout: float = 0.5,
    ) -> "TimmForImageClassification":
        """A new classifier for `label_names` on `timm_name`, with its pretrained weights if asked."""
        names = [str(name) for name in label_names]
        config = TimmConfig(
            timm_name=timm_name,
            timm_kwargs=timm_kwargs,
            head=head,
            head_hidden_size=head_hidden_size,
            head_dropout=head_dropout,
            pretrained_backbone=pretrained_backbone,
            id2label=dict(enumerate(names)),
            label2id={name: index for index, name in enumerate(names)},
        )
        return cls(config, backbone=_create_backbone(config, pretrained=pretrained_backbone))

    def _init_weights(self, module: nn.Module) -> None:
        # Backbone weights come from timm's own initialisation (or the checkpoint); the generic
        # transformers init (normal(0.02) for every conv and linear) would overwrite them.
        if isinstance(module, ClassifierMLP):
            module.reset_parameters()
        if hasattr(module, "init_non_persistent_buffers"):
            module.init_non_persistent_buffers()

    def train(self, mode: bool = True) -> "TimmForImageClassification":
        """Train mode, except that frozen BatchNorm layers stay in eval mode: a frozen layer keeps its
        pretrained running statistics instead of drifting to the new data (as Keras freezes them)."""
        super().train(mode)
        if mode:
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
                    parameter.requires_grad for parameter in module.parameters()
                ):
                    module.eval()
        return self

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> ImageClassifierOutput:
        features = self.backbone.forward_features(pixel_values.to(self.dtype))
        if self.head_dist is not None:
            # Tokens 0 and 1 are the class and distillation tokens (after the final norm).
            logits = (self.head(features[:, 0]) + self.head_dist(features[:, 1])) / 2
        else:
            logits = self.head(self.backbone.forward_head(features, pre_logits=True))
        loss = None if labels is None else nn.functional.cross_entropy(logits.float(), labels)
        return ImageClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(TimmConfig.model_type, TimmConfig, exist_ok=True)
AutoModelForImageClassification.register(TimmConfig, TimmForImageClassification, exist_ok=True)


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
    labels = {
        "num_labels": len(names),
        "id2label": dict(enumerate(names)),
        "label2id": {name: index for index, name in enumerate(names)},
    }
    if is_timm_name(name_or_path):
        return TimmForImageClassification.from_timm(
            name_or_path,
            names,
            pretrained_backbone=transfer.pretrained_backbone,
            timm_kwargs=transfer.timm_kwargs,
            head=transfer.head,
            head_hidden_size=transfer.head_hidden_size,
            head_dropout=transfer.head_dropout,
        )
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
        raise BadInputError(
            f"No paper 'single trainable block' is known for {key}; pass --trainable_modules with module paths "
            f"relative to the backbone (top-level modules: {', '.join(_children(_backbone_of(model)))}), "
            "or 'all' / 'none'."
        )
    return PAPER_TRAINABLE_MODULES[max(matches, key=len)]


def _backbone_of(model: PreTrainedModel) -> nn.Module:
    backbone = model.base_model
    if backbone is model:
        raise BadInputError(f"{type(model).__name__} has no separate backbone (base_model) to freeze.")
    return backbone


def _children(module: nn.Module) -> list[str]:
    return [name for name, _ in module.named_children()]


def resolve_module(root: nn.Module, path: str) -> nn.Module:
    """The submodule at dotted `path`; integer parts index lists and sequences (negative from the end)."""
    module, walked = root, []
    for part in path.split("."):
        children = module._modules
        if part.lstrip("-").isdigit() and isinstance(module, (nn.Sequential, nn.ModuleList)):
            index = int(part)
            if not -len(module) <= index < len(module):
                raise BadInputError(
                    f"Module path {path!r}: '{'.'.join(walked) or '(backbone)'}' has {len(module)} children "
                    f"(0..{len(module) - 1}); {index} is out of range."
                )
            module = module[index]
        elif children.get(part) is not None:
            module = children[part]
        else:
            where = ".".join(walked)
            raise BadInputError(
                f"Module path {path!r}: {where or 'the backbone'} has no module {part!r}. Its modules: "
                f"{', '.join(_children(module)) or '(none)'}. Top-level backbone modules: {', '.join(_children(root))}."
            )
        walked.append(part)
    return module


def train_only(model: PreTrainedModel, spec: str = "paper") -> list[str]:
    """Freeze the backbone (`model.base_model`) except the modules `spec` names; the head keeps training.

    `spec`: 'paper' (`paper_trainable_modules`), 'all', 'none', or comma-separated module paths
    relative to the backbone. Returns the module paths left trainable (['all'] for 'all'). Call before the Trainer
    builds its optimizer.
    """
    spec = spec.strip()
    if spec == "all":
        model.requires_grad_(True)
        return ["all"]
    backbone = _backbone_of(model)
    if spec == "none":
        paths = []
    elif spec == "paper":
        paths = list(paper_trainable_modules(model))
    else:
        paths = [path.strip() for path in spec.split(",") if path.strip()]
    if spec != "none" and not paths:
        raise BadInputError("--trainable_modules is empty; give 'paper', 'all', 'none' or module paths.")
    modules = [resolve_module(backbone, path) for path in paths]
    backbone.requires_grad_(False)
    for module in modules:
        module.requires_grad_(True)
    return paths


def trainable_counts(model: PreTrainedModel) -> dict[str, int]:
    """Trainable and total parameters of the backbone (`base_model`) and of the head (everything else)."""
    backbone = model.base_model if model.base_model is not model else None
    backbone_ids = {id(parameter) for parameter in backbone.parameters()} if backbone is not None else set()
    counts = {"backbone_trainable_params": 0, "backbone_params": 0, "head_trainable_params": 0, "head_params": 0}
    seen: set[int] = set()
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        part = "backbone" if id(parameter) in backbone_ids else "head"
        counts[f"{part}_params"] += parameter.numel()
        if parameter.requires_grad:
            counts[f"{part}_trainable_params"] += parameter.numel()
    return counts
