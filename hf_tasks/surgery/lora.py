"""LoRA with `peft`: low-rank adapters on the backbone's attention projections, the task head trained
fully and saved with the adapter.

`apply_lora` wraps any recipe's model after its surgery (layer deletion, named head pruning) and
returns a `peft.PeftModel`: the backbone is frozen, LoRA matrices are added to the modules of
`default_target_modules` (or `--lora_target_modules`), and every module of the task head (QA span
head, classifier, BiGRU, pooled audio head, the paper's MLP head) trains fully and is saved in the
adapter (`modules_to_save`). `--freeze` still applies afterwards, so `--freeze layers:0-8` keeps
LoRA out of the first nine layers.

peft finds `modules_to_save` by name suffix, so a head named like the end of an encoder module (the
pooled audio head's `dense`, beside HuBERT's `output_dense`) is refused: the adapter would not load.

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
from hf_tasks.surgery.freeze import freeze_targets
from hf_tasks.surgery.training import SurgeryArguments

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
                f"as peft would take {clashes[0]!r} for it too. Use a head without such a name (ShEMO: --head auto)."
            )


def apply_lora(model: nn.Module, lora_args: LoraArguments, surgery_args: SurgeryArguments | None = None,
               *, training: bool = True):
    """`model` with LoRA adapters as `lora_args` ask (unchanged without --peft), after `apply_surgery`
    ran `surgery_args`: their --freeze is applied again so that it covers the new LoRA weights too."""
    if lora_args.peft is None:
        return model
    if surgery_args is not None and surgery_args.ranks_heads and training:
        raise BadInputError(
            "--peft lora with ranked head pruning during training (--prune_fraction / --prune_heads_per_layer): "
            "heads cannot be removed from LoRA-wrapped projections. Prune before LoRA (--prune_heads layer:heads) "
            "or after it (run the merged/ folder of a --merge_lora run without --do_train and with the pruning flags)."
        )
    from peft import LoraConfig, get_peft_model

    heads = head_modules(model)
    _check_unambiguous(model, heads)
    # Resolved on the model before LoRA: the layers' structure is what surgery recognises.
    frozen = freeze_targets(model, surgery_args.freeze) if surgery_args is not None and surgery_args.freeze else []
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
    for name, parameter in peft_model.get_base_model().named_parameters():
        if any(name == prefix or name.startswith(f"{prefix}.") for prefix in frozen):
            parameter.requires_grad_(False)
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

