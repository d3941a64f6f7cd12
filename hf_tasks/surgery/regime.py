"""How a model trains: one argument group (`RegimeArguments`) and one function (`apply_regime`) that every
training recipe calls on the model it built.

The order is fixed and documented here once:

1. structure: delete layers (`--keep_layers`), prune named heads (`--prune_heads`); heads ranked by
   importance (`--prune_fraction`, `--prune_heads_per_layer`) are pruned during training by a callback;
2. freezing: `--trainable_modules` (the backbone parts that train; the head always does), the speech
   encoders' convolutional feature encoder (`--freeze_feature_encoder`), `--freeze`; or `--feature_based`
   (the whole backbone frozen and run without dropout, its outputs optionally cached per example);
3. LoRA (`--peft lora`): adapters on the target modules that still train after step 2, so `--freeze`
   and `--trainable_modules` keep LoRA out of the parts they freeze; the head trains fully.

Every combination the library cannot honour is refused here, in one line: combinations of flags when
the arguments are parsed (`RegimeArguments.__post_init__`), what a model family lacks when the regime
meets the model (`refuse_for_family`), each message naming the family.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import ClassVar
from torch import nn
from transformers import TrainerCallback

from hf_tasks.errors import BadInputError
from hf_tasks.modeling.feature_cache import FEATURE_BASED_LORA, FeatureCache, backbone_of, cache_mode, feature_based
from hf_tasks.surgery.counts import parameter_counts
from hf_tasks.surgery.freeze import freeze, train_only
from hf_tasks.surgery.lora import LoraArguments, apply_lora
from hf_tasks.surgery.structure import find_encoder
from hf_tasks.surgery.training import SurgeryArguments, change_structure

logger = logging.getLogger(__name__)

TRAINABLE_MODULES_HELP = (
    "Backbone parts that train (the head always does): 'all' (unset: the same), 'none' (head only), 'paper' "
    "(an image backbone's last block, after Malpure et al. 2021), or comma-separated parts in the --freeze "
    "language (e.g. 'blocks.-1,norm' or 'layers:last:2'). With --peft lora, LoRA adapts only these parts."
)


@dataclass
class RegimeArguments(SurgeryArguments, LoraArguments):
    """How the model trains: structure changes, freezing or feature-based training, LoRA."""

    one_help_group: ClassVar[bool] = True  # --help lists the surgery and LoRA fields under this one heading

    trainable_modules: str | None = field(default=None, metadata={"help": TRAINABLE_MODULES_HELP})
    freeze_feature_encoder: bool | None = field(
        default=None,
        metadata={"help": "Keep a speech encoder's convolutional waveform encoder fixed (unset: yes for speech "
                          "encoders such as HuBERT and wav2vec2; other families have none)."},
    )
    feature_based: bool = field(
        default=False,
        metadata={"help": "Freeze the whole backbone (run without dropout) and train only the head."},
    )
    cache_features: bool = field(
        default=False,
        metadata={"help": "With --feature_based on a text encoder: compute the frozen backbone's outputs once per "
                          "example and reuse them in later epochs and evaluations."},
    )

    def __post_init__(self):
        SurgeryArguments.__post_init__(self)
        LoraArguments.__post_init__(self)
        if self.cache_features and not self.feature_based:
            raise BadInputError("--cache_features needs --feature_based (only a frozen backbone's outputs can be "
                                "reused).")
        if self.feature_based and self.peft:
            raise BadInputError(FEATURE_BASED_LORA)
        if self.feature_based and self.trainable_modules not in (None, "none"):
            raise BadInputError(f"--feature_based trains only the head, but --trainable_modules "
                                f"{self.trainable_modules} trains backbone parts; drop one of them.")
        if self.cache_features and self.ranks_heads:
            raise BadInputError("--cache_features with ranked head pruning (--prune_fraction / "
                                "--prune_heads_per_layer): heads masked during training change the backbone's "
                                "outputs the cache keeps; prune named heads (--prune_heads) or drop the cache.")

    @property
    def changes_structure(self) -> list[str]:
        return [f"--{name}" for name in ("keep_layers", "prune_heads", "prune_fraction", "prune_heads_per_layer")
                if getattr(self, name)]


def family_of(model: nn.Module) -> str:
    """The model family in words for messages: the encoder's or timm architecture's name and the class."""
    config = getattr(model, "config", None)
    encoder = getattr(config, "encoder", None)
    kind = (getattr(encoder, "model_type", None) or getattr(config, "timm_name", None)
            or getattr(config, "model_type", None) or "model")
    return f"{kind} ({type(model).__name__})"


def has_feature_encoder(model: nn.Module) -> bool:
    return callable(getattr(model, "freeze_feature_encoder", None))


def refuse_for_family(model: nn.Module, regime: RegimeArguments, *, training: bool) -> None:
    """Stop, in one line naming the model family, when `model` cannot train the way `regime` asks."""
    family = family_of(model)
    if regime.changes_structure:
        try:
            find_encoder(model)
        except BadInputError:
            raise BadInputError(
                f"{' / '.join(regime.changes_structure)}: deleting layers and pruning heads need a transformer "
                f"encoder, and {family} has none (CNNs and MLPs have no attention heads); drop the flag or choose "
                "a transformer backbone."
            ) from None
    if regime.feature_based:
        try:
            backbone_of(model)
        except ValueError:
            raise BadInputError(f"--feature_based trains a head on a frozen backbone, and {family} has no separate "
                                "backbone; use --trainable_modules none on a model with one.") from None
    if regime.cache_features and cache_mode(model) is None:
        raise BadInputError(f"--cache_features keys its cache by token ids, and {family} does not read tokens; "
                            "use --feature_based without it.")
    if regime.freeze_feature_encoder and not has_feature_encoder(model):
        raise BadInputError(f"--freeze_feature_encoder: {family} has no convolutional feature encoder to freeze "
                            "(speech encoders do); leave the flag unset.")
    if regime.peft and regime.ranks_heads and training:
        raise BadInputError(
            "--peft lora with ranked head pruning during training (--prune_fraction / --prune_heads_per_layer): "
            "heads cannot be removed from LoRA-wrapped projections. Prune before LoRA (--prune_heads layer:heads) "
            "or after it (run the merged/ folder of a --merge_lora run without --do_train and with the pruning flags)."
        )


class FeatureCacheReport(TrainerCallback):
    """Says how much work the feature cache saved, when training ends."""

    def __init__(self, cache: FeatureCache):
        self.cache = cache

    def on_train_end(self, args, state, control, **kwargs):
        logger.info("Feature cache: %d examples stored, %d lookups served from it, %d computed.",
                    len(self.cache.features), self.cache.hits, self.cache.misses)


def _freeze_step(model: nn.Module, regime: RegimeArguments) -> list[TrainerCallback]:
    """Step 2 of the regime (see the module docstring); returns the callbacks it adds."""
    if regime.trainable_modules is not None:
        train_only(model, trainable_parts(model, regime.trainable_modules))
    if regime.freeze_feature_encoder or (regime.freeze_feature_encoder is None and has_feature_encoder(model)):
        model.freeze_feature_encoder()
    if regime.freeze:
        freeze(model, regime.freeze)
    if not regime.feature_based:
        return []
    freeze(model, ["backbone"])
    cache = feature_based(model, cache=cache_mode(model) if regime.cache_features else None)
    return [] if cache is None else [FeatureCacheReport(cache)]


def apply_regime(model: nn.Module, regime: RegimeArguments, task, training_args):
    """Make `model` train the way `regime` says, in the order of the module docstring. Every training
    recipe calls it the same way, after building the model and the task.

    `task` (a `hf_tasks.tasks.base.Task`; None where no head importance is computed) gives head
    importance its data (`task.features`, asked for only when gradient importance needs them, and
    `task.data_collator`); `training_args` say whether the run trains (otherwise ranked heads are
    pruned now) and the seed. Returns the model (a `peft.PeftModel` with LoRA) and the callbacks for
    the Trainer (head pruning during training, the cache's report).
    """
    training = training_args.do_train
    refuse_for_family(model, regime, training=training)
    before = parameter_counts(model)
    callbacks: list[TrainerCallback] = change_structure(
        model, regime, training=training, splits=lambda: task.features(training_args),
        data_collator=getattr(task, "data_collator", None), seed=training_args.seed,
    )
    callbacks += _freeze_step(model, regime)
    model = apply_lora(model, regime)
    counts = parameter_counts(getattr(model, "get_base_model", lambda: model)(), by_part=True)
    logger.info("Training regime: %s trainable of %s parameters (backbone %s of %s, head %s; as built: %s of %s).",
                counts["trainable_params"], counts["total_params"], counts["backbone_trainable_params"],
                counts["backbone_params"], counts["head_trainable_params"], before["trainable_params"],
                before["total_params"])
    return model, callbacks


def trainable_parts(model: nn.Module, spec: str) -> list[str]:
    """`--trainable_modules` as items of the freeze language (for `train_only`): 'all' (the whole backbone),
    'none' (head only), 'paper' (an image backbone's last block), or comma-separated parts."""
    spec = spec.strip()
    if spec == "all":
        return ["backbone"]
    if spec == "none":
        return []
    if spec == "paper":
        from hf_tasks.modeling.image_classifier import paper_trainable_modules  # needs timm: image backbones only

        return list(paper_trainable_modules(model))
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if not parts:
        raise BadInputError("--trainable_modules is empty; give 'all', 'none', 'paper' or module paths.")
    return parts
