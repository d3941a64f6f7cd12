"""Delete encoder layers: keep a chosen set (first 9, every other, ...) and update the config so
that `from_pretrained` of the saved folder builds the smaller model and gives identical logits."""

from __future__ import annotations

import logging

from torch import nn

from hf_tasks.surgery.structure import find_encoder, parse_layer_set
from hf_tasks.errors import BadInputError

logger = logging.getLogger(__name__)


def _renumber_layer_indices(layer: nn.Module, index: int) -> None:
    """Attention modules keep their layer index (`layer_idx`) for caches; keep it consistent."""
    for module in layer.modules():
        if isinstance(getattr(module, "layer_idx", None), int):
            module.layer_idx = index


def keep_layers(model: nn.Module, spec: str) -> list[int]:
    """Keep only the encoder layers `spec` names (e.g. "first:9", "0-8", "every:2"); delete the rest.

    The kept layers are renumbered 0..k-1 (later surgery and the saved config use the new numbers).
    Returns the original indices of the kept layers.
    """
    encoder = find_encoder(model)
    kept = parse_layer_set(spec, encoder.num_layers, what=f"keep_layers {spec!r}")
    config = encoder.config
    if encoder.shares_layers:
        # ALBERT runs its shared layer weights num_hidden_layers times; fewer layers = fewer runs.
        if kept != list(range(len(kept))) or config.num_hidden_groups != 1:
            raise BadInputError(
                f"keep_layers {spec!r}: {encoder.describe()}. Its layers share weights, so deleting layers "
                f"only means running the shared layer fewer times: use keep_layers 'first:N'"
                + ("" if config.num_hidden_groups == 1 else " (and only with num_hidden_groups=1)")
                + "."
            )
        config.num_hidden_layers = len(kept)
        logger.info("Kept %d of the shared layer runs (ALBERT-style weight sharing).", len(kept))
        return kept

    new_layers = [encoder.layers[index] for index in kept]
    for new_index, layer in enumerate(new_layers):
        _renumber_layer_indices(layer, new_index)
    parent_name, _, attribute = encoder.layers_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    replacement = nn.ModuleList(new_layers) if isinstance(encoder.layers, nn.ModuleList) else nn.Sequential(*new_layers)
    setattr(parent, attribute, replacement)

    if config is not None:
        old_count = config.num_hidden_layers
        config.num_hidden_layers = len(kept)
        if getattr(config, "num_hidden_groups", None) == old_count:  # ALBERT without sharing
            config.num_hidden_groups = len(kept)
        if isinstance(getattr(config, "layer_types", None), list) and len(config.layer_types) == old_count:
            config.layer_types = [config.layer_types[index] for index in kept]
        pruned = getattr(config, "pruned_heads", None)
        if pruned:
            renumbered = {str(kept.index(int(layer))): heads for layer, heads in pruned.items() if int(layer) in kept}
            config.pruned_heads = renumbered
    logger.info("Kept encoder layers %s of %d.", kept, len(encoder.layers))
    return kept
