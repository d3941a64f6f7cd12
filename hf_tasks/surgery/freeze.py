"""The one freezing language: parts of a model named by a small spec such as `["embeddings", "layers:0-8"]`.

`freeze` stops the parts a spec names from training (`--freeze`); `train_only` freezes the backbone
except the parts it names (`--trainable_modules` of the image recipe). Frozen parameters get
`requires_grad=False`; the Trainer builds its optimizer from parameters that require gradients only,
so they are never in it (tests check this). Groups that need a transformer encoder (embeddings,
layers, pooler) exist only where `find_encoder` finds one; `backbone` and module names work on any
model, CNNs and MLPs included.
"""

from __future__ import annotations

import logging

from typing import Sequence

from torch import nn

from hf_tasks.surgery.structure import (
    EMBEDDING_NAMES,
    LAYER_SET_HELP,
    POOLER_NAMES,
    Encoder,
    find_encoder,
    parse_layer_set,
)
from hf_tasks.errors import BadInputError

logger = logging.getLogger(__name__)

FREEZE_HELP = (
    "Parts to freeze: embeddings, layers:<set> (" + LAYER_SET_HELP + "), all_layers, pooler, backbone "
    "(everything but the task head: feature-based training), or any module/parameter name of the model or "
    "of its backbone, negative indices counting from the end (blocks.-1: the last block)."
)


def _named_prefixes(encoder: Encoder, names: tuple[str, ...]) -> list[str]:
    """Full names of those of `names` (relative to the backbone) that exist and hold parameters."""
    found = []
    for name in names:
        full = encoder.full_name(name)
        try:
            target = encoder.model.get_submodule(full)
            has_parameters = any(True for _ in target.parameters())
        except AttributeError:
            target = getattr(encoder.backbone, name, None) if "." not in name else None
            has_parameters = isinstance(target, nn.Parameter)
        if has_parameters:
            found.append(full)
    return found


def _layer_prefixes(encoder: Encoder, item: str, spec: str) -> list[str]:
    indices = parse_layer_set(spec, encoder.num_layers, what=f"freeze item {item!r}")
    if encoder.shares_layers and len(indices) != encoder.num_layers:
        raise BadInputError(
            f"freeze item {item!r}: {encoder.describe()}. Freezing some of its layers would freeze the "
            "shared weights of all of them; use all_layers."
        )
    if encoder.shares_layers:
        indices = list(range(len(encoder.layers)))
    return [f"{encoder.layers_name}.{index}" for index in indices]


def _encoder_of(model: nn.Module) -> Encoder | None:
    """The transformer encoder of `model`; None for models without one (CNNs, MLPs)."""
    try:
        return find_encoder(model)
    except BadInputError:
        return None


def _backbone_name(model: nn.Module, encoder: Encoder | None) -> str:
    """Name of the module that owns the encoder or, without one, of the Hugging Face base model;
    "" when `model` is its own backbone."""
    if encoder is not None:
        return encoder.backbone_name
    base = getattr(model, "base_model", model)
    return next((name for name, module in model.named_modules() if module is base and name), "")


def _backbone_prefixes(model: nn.Module, backbone_name: str) -> list[str]:
    """The backbone; for a model that is its own backbone (timm), all but its classifier."""
    if backbone_name:
        return [backbone_name]
    get_classifier = getattr(model, "get_classifier", None)
    classifier = get_classifier() if callable(get_classifier) else None
    if not isinstance(classifier, nn.Module):
        return [""]
    head = {id(parameter) for parameter in classifier.parameters()}
    return [name for name, parameter in model.named_parameters() if id(parameter) not in head]


def _children(module: nn.Module) -> str:
    return ", ".join(name for name, _ in module.named_children()) or "(none)"


def _backbone_path(backbone: nn.Module, path: str) -> str:
    """`path` relative to the backbone with negative indices resolved ("blocks.-1" → "blocks.11");
    a `LookupError` saying where the walk stopped when it names nothing."""
    module, walked = backbone, []
    parts = path.split(".")
    for position, part in enumerate(parts):
        where = f"'{'.'.join(walked)}'" if walked else "the backbone"
        if part.lstrip("-").isdigit() and isinstance(module, (nn.Sequential, nn.ModuleList)):
            index = int(part)
            if not -len(module) <= index < len(module):
                raise LookupError(f"{where} has {len(module)} children (0..{len(module) - 1}); {index} is out of range")
            part = str(index % len(module))
            module = module[index]
        elif module._modules.get(part) is not None:
            module = module._modules[part]
        elif position == len(parts) - 1 and module._parameters.get(part) is not None:
            pass  # a parameter such as a vision transformer's cls_token
        else:
            raise LookupError(f"{where} has no module {part!r} (its modules: {_children(module)})")
        walked.append(part)
    return ".".join(walked)


def freeze_targets(model: nn.Module, spec: Sequence[str]) -> list[str]:
    """Name prefixes (module or parameter names of `model`) that `spec` selects, with errors that list
    what exists."""
    encoder = _encoder_of(model)
    backbone_name = _backbone_name(model, encoder)
    backbone = model.get_submodule(backbone_name) if backbone_name else model
    groups = {"backbone": _backbone_prefixes(model, backbone_name)}
    if encoder is not None:
        groups = {
            "embeddings": _named_prefixes(encoder, EMBEDDING_NAMES),
            "all_layers": [encoder.layers_name],
            "pooler": _named_prefixes(encoder, POOLER_NAMES),
            **groups,
        }
    available = [name for name, prefixes in groups.items() if prefixes]
    module_names = {name for name, _ in model.named_modules()} | {name for name, _ in model.named_parameters()}
    prefixes: list[str] = []
    for item in spec:
        item = str(item).strip()
        if item.startswith("layers:"):
            prefixes += _layer_prefixes(encoder or find_encoder(model), item, item.removeprefix("layers:"))
        elif groups.get(item):
            prefixes += groups[item]
        elif item and item in module_names:
            prefixes.append(item)
        else:
            try:
                relative = _backbone_path(backbone, item)
            except LookupError as error:
                structure = f"{encoder.describe()}. " if encoder is not None else ""
                layers = f", layers:<set> with <set> like {LAYER_SET_HELP}" if encoder is not None else ""
                example = f" such as '{encoder.layers_name}.0'" if encoder is not None else ""
                raise BadInputError(
                    f"freeze item {item!r} names nothing in this model: {error}; the backbone's top-level modules: "
                    f"{_children(backbone)}. {structure}Available: {', '.join(available)}{layers}, "
                    f"or a module name{example}."
                ) from None
            prefixes.append(f"{backbone_name}.{relative}" if backbone_name else relative)
    return prefixes


def _selected(name: str, prefixes: list[str]) -> bool:
    return any(prefix == "" or name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def freeze(model: nn.Module, spec: Sequence[str]) -> list[str]:
    """Set `requires_grad=False` on the parameters `spec` selects (see `FREEZE_HELP`).

    Returns the names of the frozen parameters.
    """
    prefixes = freeze_targets(model, spec)
    frozen = []
    for name, parameter in model.named_parameters():
        if _selected(name, prefixes):
            parameter.requires_grad_(False)
            frozen.append(name)
    logger.info("Froze %d parameter tensors selected by %s.", len(frozen), list(spec))
    return frozen


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of what `backbone` names: all but the task head."""
    backbone = freeze_targets(model, ["backbone"])
    return [parameter for name, parameter in model.named_parameters() if _selected(name, backbone)]


def train_only(model: nn.Module, parts: Sequence[str]) -> list[str]:
    """Freeze the backbone except `parts` (items of the freeze language, see `FREEZE_HELP`); everything
    outside the backbone (the task head) trains. `["backbone"]` trains the whole model, `[]` only the head.

    Returns `parts`. Call before the Trainer builds its optimizer.
    """
    backbone = freeze_targets(model, ["backbone"])
    trainable = freeze_targets(model, parts)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(not _selected(name, backbone) or _selected(name, trainable))
    logger.info("Training the head and %s of the backbone.", ", ".join(parts) or "no part")
    return list(parts)
