"""Freeze parts of a model by a small spec such as `["embeddings", "layers:0-8"]`.

Frozen parameters get `requires_grad=False`; the Trainer builds its optimizer from parameters that
require gradients only, so they are never in it (tests check this).
"""

from __future__ import annotations

import logging

from torch import nn

from hf_tasks.surgery.structure import EMBEDDING_NAMES, LAYER_SET_HELP, POOLER_NAMES, Encoder, find_encoder, parse_layer_set
from hf_tasks.errors import BadInputError

logger = logging.getLogger(__name__)

FREEZE_HELP = (
    "Parts to freeze: embeddings, layers:<set> (" + LAYER_SET_HELP + "), all_layers, pooler, backbone "
    "(everything but the task head: feature-based training), or any module/parameter name of the model."
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


def _backbone_prefixes(encoder: Encoder) -> list[str]:
    """The backbone; for a model that is its own backbone (timm), all but its classifier."""
    if encoder.backbone_name:
        return [encoder.backbone_name]
    get_classifier = getattr(encoder.model, "get_classifier", None)
    classifier = get_classifier() if callable(get_classifier) else None
    if not isinstance(classifier, nn.Module):
        return [""]
    head = {id(parameter) for parameter in classifier.parameters()}
    return [name for name, parameter in encoder.model.named_parameters() if id(parameter) not in head]


def freeze_targets(model: nn.Module, spec: list[str]) -> list[str]:
    """Name prefixes (module or parameter names of `model`) that `spec` selects, with errors that list
    what exists."""
    encoder = find_encoder(model)
    groups = {
        "embeddings": _named_prefixes(encoder, EMBEDDING_NAMES),
        "all_layers": [encoder.layers_name],
        "pooler": _named_prefixes(encoder, POOLER_NAMES),
        "backbone": _backbone_prefixes(encoder),
    }
    available = [name for name, prefixes in groups.items() if prefixes]
    module_names = {name for name, _ in model.named_modules()} | {name for name, _ in model.named_parameters()}
    prefixes: list[str] = []
    for item in spec:
        item = str(item).strip()
        if item.startswith("layers:"):
            prefixes += _layer_prefixes(encoder, item, item.removeprefix("layers:"))
        elif groups.get(item):
            prefixes += groups[item]
        elif item and item in module_names:
            prefixes.append(item)
        else:
            raise BadInputError(
                f"freeze item {item!r} names nothing in this model. {encoder.describe()}. "
                f"Available: {', '.join(available)}, layers:<set> with <set> like {LAYER_SET_HELP}, "
                f"or a module name such as '{encoder.layers_name}.0'."
            )
    return prefixes


def _selected(name: str, prefixes: list[str]) -> bool:
    return any(prefix == "" or name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def freeze(model: nn.Module, spec: list[str]) -> list[str]:
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
