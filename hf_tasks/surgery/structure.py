"""Find the parts surgery works on — backbone, embeddings, encoder layers, attention heads — in any
transformer encoder, without a table per architecture.

The encoder layers are the first `ModuleList`/`Sequential` whose every child holds an attention
block (query/key/value projections); the backbone is the module that owns them (`model.backbone`,
the Hugging Face base model such as `model.bert`, or a top-level child). This covers BERT, RoBERTa,
XLM-R, ALBERT, ViT, DeiT, HuBERT and wav2vec2 from `transformers`, timm vision transformers (for
freezing and layer deletion), and those backbones nested inside custom heads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

from hf_tasks.modeling.pruned_heads import OUTPUT_NAMES, PROJECTION_NAMES
from hf_tasks.errors import BadInputError

# Modules or parameters, relative to the backbone, that turn raw input into the first hidden states.
EMBEDDING_NAMES = (
    "embeddings",  # BERT family, ALBERT, ViT, DeiT
    "encoder.embedding_hidden_mapping_in",  # ALBERT's factorised embedding projection
    "feature_extractor",  # HuBERT / wav2vec2 convolutional feature encoder
    "feature_projection",
    "encoder.pos_conv_embed",
    "masked_spec_embed",
    "patch_embed",  # timm vision transformers
    "cls_token",
    "dist_token",
    "reg_token",
    "pos_embed",
)
# Modules of the backbone after the encoder layers that pool the sequence into one vector.
POOLER_NAMES = ("pooler",)


def _linear(module: nn.Module, name: str) -> nn.Linear | None:
    candidate = getattr(module, name, None)
    return candidate if isinstance(candidate, nn.Linear) else None


def _projections(module: nn.Module) -> tuple[nn.Linear, nn.Linear, nn.Linear] | None:
    for names in PROJECTION_NAMES:
        linears = tuple(_linear(module, name) for name in names)
        if all(linear is not None for linear in linears):
            return linears
    return None


def _is_attention(module: nn.Module) -> bool:
    return _projections(module) is not None or _linear(module, "qkv") is not None


@dataclass
class AttentionBlock:
    """One multi-head self-attention: the q/k/v projections and the output projection.

    Heads are contiguous slices of `head_size` rows of q/k/v and columns of `output`.
    """

    name: str
    module: nn.Module
    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    output: nn.Linear | None
    head_size: int

    @property
    def num_heads(self) -> int:
        return self.query.out_features // self.head_size


@dataclass
class Encoder:
    """The encoder of `model` as surgery sees it."""

    model: nn.Module
    layers_name: str
    layers: nn.ModuleList | nn.Sequential
    backbone_name: str
    backbone: nn.Module
    config: PretrainedConfig | None

    @property
    def num_layers(self) -> int:
        """Layers the forward pass runs (ALBERT runs its shared layers several times)."""
        configured = getattr(self.config, "num_hidden_layers", None)
        return configured if configured is not None and self.shares_layers else len(self.layers)

    @property
    def shares_layers(self) -> bool:
        """True for ALBERT-style models that reuse one set of layer weights for several layers."""
        configured = getattr(self.config, "num_hidden_layers", None)
        return configured is not None and configured != len(self.layers)

    def full_name(self, relative: str) -> str:
        """Dotted name in `model` of a name relative to the backbone."""
        return f"{self.backbone_name}.{relative}" if self.backbone_name else relative

    @cached_property
    def attention_blocks(self) -> list[AttentionBlock]:
        """Self-attention blocks in layer order (one per layer; ALBERT: one per shared layer)."""
        blocks = []
        for layer_index, layer in enumerate(self.layers):
            for name, module in layer.named_modules():
                projections = _projections(module)
                if projections is None or "crossattention" in name:
                    continue
                full_name = f"{self.layers_name}.{layer_index}.{name}".rstrip(".")
                blocks.append(
                    AttentionBlock(full_name, module, *projections, self._output_of(layer, name, module),
                                   self._head_size(module, projections[0]))
                )
        return blocks

    def _output_of(self, layer: nn.Module, name: str, module: nn.Module) -> nn.Linear | None:
        for output_name in OUTPUT_NAMES:
            if (linear := _linear(module, output_name)) is not None:
                return linear
        parent = layer.get_submodule(name.rpartition(".")[0]) if "." in name else layer
        output = getattr(parent, "output", None)
        return _linear(output, "dense") if output is not None else None

    def _head_size(self, module: nn.Module, query: nn.Linear) -> int:
        for attribute in ("attention_head_size", "head_dim"):
            if isinstance(getattr(module, attribute, None), int):
                return getattr(module, attribute)
        return query.out_features // self.config.num_attention_heads

    def describe(self) -> str:
        """One line naming what exists, for error messages."""
        heads = {block.num_heads for block in self.attention_blocks}
        if not heads:
            head_text = "attention with fused query/key/value projections"
        elif len(heads) == 1:
            head_text = f"{heads.pop()} heads each"
        else:
            head_text = "heads per layer " + str([block.num_heads for block in self.attention_blocks])
        if self.shares_layers:
            return (
                f"{type(self.model).__name__} runs {self.num_layers} encoder layers (0-{self.num_layers - 1}) that "
                f"share {len(self.layers)} set(s) of weights at '{self.layers_name}' (ALBERT-style), {head_text}"
            )
        return (
            f"{type(self.model).__name__} has {len(self.layers)} encoder layers (0-{len(self.layers) - 1}) at "
            f"'{self.layers_name}', {head_text}"
        )


def _backbone_of(model: nn.Module, layers_name: str) -> str:
    """Name of the module owning the encoder: `model.backbone`, a pretrained-model child such as
    `model.bert`, or "" when `model` itself is the backbone (a bare `BertModel`, a timm model)."""
    top_child = layers_name.split(".")[0]
    if "." not in layers_name:
        return ""
    if top_child == "backbone" or isinstance(model.get_submodule(top_child), PreTrainedModel):
        return top_child
    return ""


def _config_of(model: nn.Module, backbone: nn.Module) -> PretrainedConfig | None:
    for owner in (backbone, model):
        if isinstance(getattr(owner, "config", None), PretrainedConfig):
            return owner.config
    return None


def find_encoder(model: nn.Module) -> Encoder:
    """The encoder of `model`; `BadInputError` when it has none surgery recognises."""
    for name, module in model.named_modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(module) > 0:
            if all(any(_is_attention(sub) for sub in child.modules()) for child in module):
                backbone_name = _backbone_of(model, name)
                backbone = model.get_submodule(backbone_name) if backbone_name else model
                return Encoder(model, name, module, backbone_name, backbone, _config_of(model, backbone))
    raise BadInputError(
        f"{type(model).__name__}: found no transformer encoder (a list of layers with query/key/value "
        "projections). Surgery supports BERT, RoBERTa, XLM-R, ALBERT, ViT, DeiT, HuBERT and wav2vec2 "
        "encoders, also nested as model.backbone."
    )


LAYER_SET_HELP = "'0-8', '0,2,4', '0-3,8', 'first:9', 'last:3' or 'every:2' (every other layer from 0)"


def parse_layer_set(spec: str, num_layers: int, what: str | None = None) -> list[int]:
    """Sorted layer indices named by `spec` (see `LAYER_SET_HELP`), checked against `num_layers`.

    `what` names the spec in error messages (default: "layer set '<spec>'")."""
    what = what or f"layer set {spec!r}"
    text = str(spec).strip().replace(" ", "")
    keyword = re.fullmatch(r"(first|last|every):(\d+)", text)
    if keyword:
        kind, count = keyword.group(1), int(keyword.group(2))
        if count < 1 or (kind != "every" and count > num_layers):
            raise BadInputError(f"{what}: {kind}:N needs 1 <= N <= {num_layers} (the model has {num_layers} layers).")
        if kind == "first":
            return list(range(count))
        if kind == "last":
            return list(range(num_layers - count, num_layers))
        return list(range(0, num_layers, count))
    indices: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise BadInputError(f"{what}: cannot read {part!r}; write {LAYER_SET_HELP}.")
        start, end = int(match.group(1)), int(match.group(2) or match.group(1))
        if start > end or end >= num_layers:
            raise BadInputError(
                f"{what}: {part!r} is outside the model's layers 0-{num_layers - 1} ({num_layers} layers)."
            )
        indices.update(range(start, end + 1))
    return sorted(indices)
