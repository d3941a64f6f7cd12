"""Head removal, and the model classes that rebuild a head-pruned encoder when loading.

transformers 5.x no longer reads `config.pruned_heads`, so a model whose attention heads were
removed (rows of the query/key/value projections, columns of the output projection) cannot load
into the stock classes: the saved weights are smaller than the layers the config describes.
`with_pruned_heads(model_class)` returns a subclass whose constructor removes the heads the config
records ({layer: [head numbers of the unpruned model]}) right after building the full-size model,
so `from_pretrained` loads the saved weights into the pruned structure.

This file imports only torch: run folders ship it (see `hf_tasks.portable`) so that a pruned model
loads with `AutoModelFor*.from_pretrained(folder, trust_remote_code=True)` without hf_tasks, and
hf_tasks' own surgery removes heads through `remove_heads` below.
"""

from __future__ import annotations

import torch
from torch import nn

# (query, key, value) attribute names of the projections, per naming family.
PROJECTION_NAMES = (("query", "key", "value"), ("q_proj", "k_proj", "v_proj"))
# The output projection on the attention module itself (ALBERT: dense, ViT: o_proj, HuBERT: out_proj);
# otherwise `output.dense` on its parent (BERT family: attention.self + attention.output.dense).
OUTPUT_NAMES = ("o_proj", "out_proj", "dense")


def projections(module: nn.Module) -> tuple[nn.Linear, nn.Linear, nn.Linear] | None:
    """The module's query, key and value projections, or None when it is no attention module."""
    for names in PROJECTION_NAMES:
        linears = tuple(getattr(module, name, None) for name in names)
        if all(isinstance(linear, nn.Linear) for linear in linears):
            return linears
    return None


def output_projection(layer: nn.Module, name: str, module: nn.Module) -> nn.Linear | None:
    """The output projection of attention `module`, found at `name` inside encoder `layer`."""
    for output_name in OUTPUT_NAMES:
        if isinstance(linear := getattr(module, output_name, None), nn.Linear):
            return linear
    parent = layer.get_submodule(name.rpartition(".")[0]) if "." in name else layer
    dense = getattr(getattr(parent, "output", None), "dense", None)
    return dense if isinstance(dense, nn.Linear) else None


def head_size(module: nn.Module, query: nn.Linear, num_attention_heads: int) -> int:
    for attribute in ("attention_head_size", "head_dim"):
        if isinstance(getattr(module, attribute, None), int):
            return getattr(module, attribute)
    return query.out_features // num_attention_heads


def _keep_rows(linear: nn.Linear, rows: torch.Tensor, dim: int) -> None:
    """Keep `rows` of the weight along `dim` (0: output features, 1: input features), in place so
    that hooks on the module stay attached."""
    weight = linear.weight
    kept = weight.detach().index_select(dim, rows.to(weight.device)).clone()
    linear.weight = nn.Parameter(kept, requires_grad=weight.requires_grad)
    if dim == 0:
        linear.out_features = len(rows)
        if linear.bias is not None:
            bias = linear.bias
            kept_bias = bias.detach().index_select(0, rows.to(bias.device)).clone()
            linear.bias = nn.Parameter(kept_bias, requires_grad=bias.requires_grad)
    else:
        linear.in_features = len(rows)


def remove_heads(module: nn.Module, output: nn.Linear, size: int, positions: list[int]) -> None:
    """Remove the heads at `positions` (in the module's current head order) from attention `module`
    with output projection `output` and `size` features per head."""
    query, key, value = projections(module)
    num_heads = query.out_features // size
    keep = [head for head in range(num_heads) if head not in set(positions)]
    rows = torch.cat([torch.arange(head * size, (head + 1) * size) for head in keep])
    for projection in (query, key, value):
        _keep_rows(projection, rows, dim=0)
    _keep_rows(output, rows, dim=1)
    for attribute in ("num_attention_heads", "num_heads"):
        if isinstance(getattr(module, attribute, None), int):
            setattr(module, attribute, len(keep))
    if isinstance(getattr(module, "all_head_size", None), int):
        module.all_head_size = len(keep) * size


def encoder_layers(model: nn.Module) -> nn.ModuleList | nn.Sequential:
    """The first list of modules each of which holds an attention module: the encoder's layers."""
    for module in model.modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(module) > 0:
            if all(any(projections(sub) is not None for sub in child.modules()) for child in module):
                return module
    raise ValueError(f"{type(model).__name__} has no encoder layers with query/key/value projections.")


def remove_recorded_heads(model: nn.Module) -> None:
    """Remove from a freshly built full-size model the heads its config records as pruned."""
    config = model.config
    recorded = getattr(config, "pruned_heads", None) or {}
    if not recorded:
        return
    # Custom heads (BiGRU, pooled audio) keep the backbone's config as `config.encoder`.
    num_attention_heads = (getattr(config, "encoder", None) or config).num_attention_heads
    layers = encoder_layers(model)
    for layer_index, heads in recorded.items():
        layer = layers[int(layer_index)]
        for name, module in layer.named_modules():
            found = projections(module)
            if found is None or "crossattention" in name:
                continue
            size = head_size(module, found[0], num_attention_heads)
            remove_heads(module, output_projection(layer, name, module), size, sorted(int(head) for head in heads))


def with_pruned_heads(model_class: type) -> type:
    """A subclass of `model_class` that removes the heads recorded in its config when built."""

    def __init__(self, config, *args, **kwargs):
        model_class.__init__(self, config, *args, **kwargs)
        remove_recorded_heads(self)

    return type(f"{model_class.__name__}WithPrunedHeads", (model_class,), {"__init__": __init__})
