"""LoRA with `peft`: low-rank adapters on the backbone's attention projections, the task head trained
fully and saved with the adapter.

`apply_lora` is the last step of the regime (`hf_tasks.surgery.regime`), after structure changes and
freezing, and returns a `peft.PeftModel`: the backbone is frozen, LoRA matrices are added to the modules
of `default_target_modules` (or `--lora_target_modules`) that still trained before it, so
`--freeze layers:0-8` keeps LoRA out of the first nine layers, and every module of the task head (QA
span head, classifier, BiGRU, pooled audio head, the paper's MLP head) trains fully and is saved in the
adapter (`modules_to_save`).

peft finds `modules_to_save` by name suffix, so a head named like the end of an encoder module (a
`dense` head beside HuBERT's `output_dense`) is refused: the adapter would not load. The heads defined
here are named so that this cannot happen.

A LoRA run folder holds the adapter, `base_model/` (`frozen_base`: the model the adapter applies to;
a base built from a config or changed by surgery exists nowhere else) and, with `--merge_lora`,
`merged/` (`merged_model`), which loads with transformers alone; the runner writes them.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

from torch import nn

from hf_tasks.errors import BadInputError
from hf_tasks.surgery.counts import parameter_counts

logger = logging.getLogger(__name__)

ADAPTER_NAME = "default"
BASE_MODEL_FOLDER = "base_model"
MERGED_MODEL_FOLDER = "merged"

# Per model family, the attention projections LoRA adapts by default (queries and values, as in Hu et
# al. 2021), recognised by the names the family gives its linear layers. The first family whose
# names all occur in the backbone wins.
DEFAULT_TARGET_MODULES = (
    ("BERT, RoBERTa, XLM-R, ALBERT, ELECTRA, ViT, DeiT, BEiT (transformers)", ("query", "value")),
    ("HuBERT, wav2vec2", ("q_proj", "v_proj")),
    ("DistilBERT", ("q_lin", "v_lin")),
    ("timm vision transformers (ViT, DeiT, CaiT)", ("qkv",)),
)


@dataclass
class LoraArguments:
    peft: str | None = field(
        default=None, metadata={"help": "Parameter-efficient fine-tuning method: 'lora' (peft), or unset for none."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (the update is scaled by alpha/r)."})
    lora_dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA branch's input."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Backbone modules to adapt, by name or name suffix (e.g. query value), or all-linear. "
                          "Unset: the attention query and value projections of the model's family (BERT-likes, "
                          "ViT/DeiT/BEiT, HuBERT/wav2vec2, timm ViTs), or every convolution of a timm CNN."},
    )
    merge_lora: bool = field(
        default=False,
        metadata={"help": "Also write merged/: the adapter merged into the weights, a model that loads with "
                          "transformers alone."},
    )

    def __post_init__(self):
        if self.peft not in (None, "lora"):
            raise BadInputError(f"--peft must be 'lora' (or unset), got {self.peft!r}.")
        if self.peft is None and self.merge_lora:
            raise BadInputError("--merge_lora merges a LoRA adapter: add --peft lora.")
        if self.lora_r < 1:
            raise BadInputError(f"--lora_r must be at least 1, got {self.lora_r}.")
        if not 0 <= self.lora_dropout < 1:
            raise BadInputError(f"--lora_dropout must be in [0, 1), got {self.lora_dropout}.")


def is_peft_model(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def _backbone_name(model: nn.Module) -> str:
    prefix = getattr(model, "base_model_prefix", "")
    if not prefix or not isinstance(getattr(model, prefix, None), nn.Module):
        raise BadInputError(
            f"--peft lora adapts a pretrained backbone, but {type(model).__name__} has none (base_model_prefix "
            f"{prefix!r}); train it fully instead."
        )
    return prefix


def head_modules(model: nn.Module) -> list[str]:
    """Names of the model's top-level modules outside the backbone that hold parameters: the task head."""
    backbone = _backbone_name(model)
    return [name for name, module in model.named_children()
            if name != backbone and any(True for _ in module.parameters())]


def default_target_modules(model: nn.Module) -> list[str]:
    """The attention projections of the backbone's family (see DEFAULT_TARGET_MODULES); for a timm
    CNN, the full name of every convolution in it."""
    backbone = _backbone_name(model)
    linear_names = {name.rsplit(".", 1)[-1] for name, module in getattr(model, backbone).named_modules()
                    if isinstance(module, nn.Linear)}
    for _, names in DEFAULT_TARGET_MODULES:
        if set(names) <= linear_names:
            return list(names)
    convolutions = [f"{backbone}.{name}" for name, module in getattr(model, backbone).named_modules()
                    if isinstance(module, nn.Conv2d)]
    if convolutions:
        return convolutions
    families = "; ".join(family for family, _ in DEFAULT_TARGET_MODULES)
    raise BadInputError(
        f"No default LoRA targets for {type(model).__name__}: its backbone has none of the attention projections "
        f"of {families}. Name them with --lora_target_modules (e.g. all-linear)."
    )


def _check_unambiguous(model: nn.Module, heads: list[str]) -> None:
    """peft finds `modules_to_save` by name suffix, when training and when loading the adapter; a head
    whose name ends another module's name (a `dense` head beside an encoder's `output_dense`) would
    drag that module along."""
    for head in heads:
        # Parameterless matches (a timm backbone's Identity `head`) have nothing to save or load.
        clashes = [name for name, module in model.named_modules()
                   if name != head and name.endswith(head) and any(True for _ in module.parameters())]
        if clashes:
            raise BadInputError(
                f"--peft lora: the head module {head!r} of {type(model).__name__} cannot be saved with the adapter, "
                f"as peft would take {clashes[0]!r} for it too; give the head module a name no other module ends with."
            )


def _adapted_module(parameter_name: str) -> str | None:
    """The name (in the model before LoRA) of the module a LoRA parameter adapts; None for others."""
    if ".lora_" not in parameter_name:
        return None
    return parameter_name.split(".lora_", 1)[0]


def apply_lora(model: nn.Module, lora_args: LoraArguments):
    """`model` with LoRA adapters as `lora_args` ask (unchanged without --peft).

    LoRA adapts only target modules whose weights train when it is applied: what the regime step froze
    before (`--freeze`, `--trainable_modules`) stays out of reach of the adapter too. The head modules
    train fully and are saved with the adapter.
    """
    if lora_args.peft is None:
        return model
    from peft import LoraConfig, get_peft_model

    heads = head_modules(model)
    _check_unambiguous(model, heads)
    trainable_before = {name for name, parameter in model.named_parameters() if parameter.requires_grad}
    targets = lora_args.lora_target_modules or default_target_modules(model)
    target_modules = targets[0] if targets == ["all-linear"] else targets
    config = LoraConfig(
        r=lora_args.lora_r,
        lora_alpha=lora_args.lora_alpha,
        lora_dropout=lora_args.lora_dropout,
        target_modules=target_modules,
        modules_to_save=heads,
    )
    before = parameter_counts(model)
    try:
        peft_model = get_peft_model(model, config, adapter_name=ADAPTER_NAME)
    except ValueError as error:
        raise BadInputError(f"--lora_target_modules {' '.join(targets)}: {error}") from None
    adapted = 0
    for name, parameter in peft_model.get_base_model().named_parameters():
        module = _adapted_module(name)
        if module is None:
            continue
        if f"{module}.weight" in trainable_before:
            adapted += parameter.numel()
        else:
            parameter.requires_grad_(False)
    if adapted == 0:
        raise BadInputError(
            f"--peft lora: every LoRA target ({' '.join(targets)}) lies in parts --freeze or --trainable_modules "
            "froze, so the adapter would learn nothing; let some of them train or drop --peft lora."
        )
    after = parameter_counts(peft_model)
    logger.info("LoRA (r=%s, alpha=%s) on %s; heads trained and saved with the adapter: %s. Trainable: %s of %s "
                "parameters (full fine-tuning: %s).", lora_args.lora_r, lora_args.lora_alpha, target_modules,
                heads, after["trainable_params"], after["total_params"], before["trainable_params"])
    return peft_model


def frozen_base(peft_model) -> nn.Module:
    """A copy of the model the adapter applies to: LoRA layers removed, the heads as they were built."""
    from peft.utils import ModulesToSaveWrapper

    copied = copy.deepcopy(peft_model)
    inner = copied.get_base_model()
    for name, module in list(inner.named_children()):
        if isinstance(module, ModulesToSaveWrapper):
            setattr(inner, name, module.original_module)
    return copied.unload()


def merged_model(peft_model) -> nn.Module:
    """A copy of the model with the adapter merged into its weights and the trained heads in place."""
    return copy.deepcopy(peft_model).merge_and_unload()

