"""A timm backbone with the paper's MLP head, as a Hugging Face model.

`TimmForImageClassification` wraps any timm model (`densenet201`, `vgg19`, `cait_s24_224`,
`deit_base_distilled_patch16_224`, `hf-hub:timm/...`, `local-dir:/path`) as a `PreTrainedModel`, so
the Trainer, `save_pretrained`, `from_pretrained` and `push_to_hub` work unchanged. The `mlp` head follows
Malpure et al. 2021: flatten → Linear(256) → ELU → Dropout(0.5) → Linear(classes) on the backbone's
pooled features; the `auto` head is the single linear layer timm itself puts there. Distilled DeiT
gets one head on the class token and one on the distillation token, and its logits are the average
of the two.

This file imports only torch, timm and transformers: run folders ship it so that they load with
`AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True)` without hf_tasks.
"""

from __future__ import annotations

from typing import Sequence

import timm
import torch
from timm.models.vgg import ConvMlp as VggConvMlp
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

#: The heads this wrapper builds, named as `--head` names them in every recipe (hf_tasks.options.HEAD_FAMILIES).
HEAD_KINDS = ("auto", "mlp")
#: Spellings of earlier versions, which saved configs and user configs may still hold.
HEAD_SYNONYMS = {"linear": "auto", "paper": "mlp"}


class ClassifierMLP(nn.Sequential):
    """The paper head `mlp` (flatten → Linear(hidden) → ELU → Dropout → Linear) or `auto`, a single linear layer."""

    def __init__(self, kind: str, in_features: int, num_labels: int, hidden_size: int = 256, dropout: float = 0.5):
        kind = HEAD_SYNONYMS.get(kind, kind)
        if kind == "mlp":
            layers = [
                nn.Flatten(),
                nn.Linear(in_features, hidden_size),
                nn.ELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden_size, num_labels),
            ]
        elif kind == "auto":
            layers = [nn.Flatten(), nn.Linear(in_features, num_labels)]
        else:
            raise ValueError(f"Unknown head {kind!r}; choose one of {HEAD_KINDS}.")
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
    head: str = "mlp"
    head_hidden_size: int = 256
    head_dropout: float = 0.5
    # Provenance only: whether the backbone started from pretrained weights. Loading a saved model
    # always builds random weights and then reads the saved ones.
    pretrained_backbone: bool = False


def create_backbone(config: TimmConfig, pretrained: bool) -> nn.Module:
    """The timm model without its classifier, giving pooled features from `forward_head(pre_logits=True)`."""
    try:
        backbone = timm.create_model(
            config.timm_name, pretrained=pretrained, num_classes=0, **(config.timm_kwargs or {})
        )
    except RuntimeError as error:
        if "Unknown model" in str(error):
            raise ValueError(
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
        self.backbone = backbone if backbone is not None else create_backbone(config, pretrained=False)
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
        head: str = "mlp",
        head_hidden_size: int = 256,
        head_dropout: float = 0.5,
    ) -> "TimmForImageClassification":
        """A new classifier for `label_names` on `timm_name`, with its pretrained weights if asked."""
        names = [str(name) for name in label_names]
        config = TimmConfig(
            timm_name=timm_name,
            timm_kwargs=timm_kwargs,
            head=HEAD_SYNONYMS.get(head, head),
            head_hidden_size=head_hidden_size,
            head_dropout=head_dropout,
            pretrained_backbone=pretrained_backbone,
            id2label=dict(enumerate(names)),
            label2id={name: index for index, name in enumerate(names)},
        )
        return cls(config, backbone=create_backbone(config, pretrained=pretrained_backbone))

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
