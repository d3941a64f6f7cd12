"""The option groups recipes compose, typed once at the bottom of the package so that every layer names them.

`ModelArguments` (which weights, from where), `DataArguments` (which data, how much of it) and the head
groups: `--head`, `--head_hidden_size` and `--head_dropout` mean the same in every model family, and each
family's choices and defaults are stated once, in `HEAD_FAMILIES`. `ImageModelArguments` adds what only a timm
backbone takes. The task groups (`TextArguments`, `QAArguments`, ...) stay with their tasks; the recipe lists
the groups it reads (`Recipe.arguments`), `hf_tasks.args.parse` fills them from a config and the command line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

from hf_tasks.errors import BadInputError


# timm's prefixes for a model from the Hub (hf-hub:org/name) or from a folder (local-dir:/path).
TIMM_SOURCE_PREFIXES = ("hf-hub:", "local-dir:")


def _check_folder_or_hub_id(flag: str, value: str | None) -> None:
    """A value that is no folder here and cannot be a hub id either ("org/name") is a missing folder:
    say so, instead of the Hub client's "Repo id must be in the form ..."."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if value is None or Path(value).exists() or value.startswith(TIMM_SOURCE_PREFIXES):
        return
    try:
        validate_repo_id(value)
    except HFValidationError:
        raise BadInputError(f"--{flag} {value}: no such folder (and not a hub id such as org/name); "
                            "check the path.") from None


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Hub id (org/name) or local folder of a pretrained model. Unset: build from --config_name."},
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Config to build or load with, if not the model's own (hub id or folder)."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer / processor, if not the model's own (hub id or folder)."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloaded models are cached."})
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the model on the Hub."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run model code from the Hub. Off unless you trust the repository."}
    )

    def __post_init__(self):
        if self.model_name_or_path is None and self.config_name is None:
            raise BadInputError("Give --model_name_or_path (pretrained) or --config_name (train from scratch).")
        for flag in ("model_name_or_path", "config_name", "tokenizer_name"):
            _check_folder_or_hub_id(flag, getattr(self, flag))

    @property
    def source(self) -> str:
        """Where the model comes from: the pretrained model, else the config it is built from (hub id or folder)."""
        return self.model_name_or_path or self.config_name

    def pretrained_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every `from_pretrained` call of a recipe shares."""
        return {
            "cache_dir": self.cache_dir,
            "revision": self.model_revision,
            "trust_remote_code": self.trust_remote_code,
        }


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id, or a local folder `datasets.load_dataset` understands."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the hub dataset."})
    train_file: str | None = field(default=None, metadata={"help": "Local training file."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file."})
    test_file: str | None = field(default=None, metadata={"help": "Local test file."})
    data_dir: str | None = field(default=None, metadata={"help": "Folder of data (audio or image trees)."})
    dataset_cache_dir: str | None = field(default=None, metadata={"help": "Where hub datasets are cached."})
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Maximum tokens per input after tokenisation (task default when unset)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation examples."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test examples."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for `datasets.map`."})
    padding_free: bool = field(
        default=False,
        metadata={"help": "Sequence classification: each batch's sequences concatenated into one row (position ids "
                          "restarting per sequence), no padding computed; the head reads each sequence at its own "
                          "boundary. Refused where the model or task cannot keep sequences apart."},
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute preprocessing instead of reusing it."})
    skip_bad_rows: bool = field(
        default=False,
        metadata={"help": "Skip rows that fail validation (listed in skipped_rows.json) instead of stopping."},
    )

    def __post_init__(self):
        for flag in ("max_train_samples", "max_eval_samples", "max_predict_samples", "max_seq_length",
                     "preprocessing_num_workers"):
            value = getattr(self, flag)
            if value is not None and value < 1:
                raise BadInputError(f"--{flag} {value}: give a whole number of at least 1, or leave it out for all.")


@dataclass
class ImageModelArguments(ModelArguments):
    """The model arguments of an image recipe: a timm backbone's weights and its `timm.create_model` extras."""

    pretrained_backbone: bool = field(
        default=True,
        metadata={"help": "Load the backbone's pretrained weights. false: random weights (offline tests, counts)."},
    )
    timm_kwargs: dict | str | None = field(
        default=None,
        metadata={"help": "JSON of extra timm.create_model arguments, e.g. '{\"img_size\": 32}'."},
    )

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.timm_kwargs, str):
            try:
                self.timm_kwargs = json.loads(self.timm_kwargs) if self.timm_kwargs.strip() else None
            except json.JSONDecodeError as error:
                raise BadInputError(f"--timm_kwargs {self.timm_kwargs}: not JSON ({error.msg}); give an object such "
                                    "as '{\"img_size\": 32}'.") from None


AUTO = "auto"


@dataclass(frozen=True)
class HeadFamily:
    """The `--head` values of one model family (what `auto` builds there, the heads this package adds, old
    spellings) and the defaults of its head options, with what they mean there."""

    auto: str
    custom: Mapping[str, str]
    synonyms: Mapping[str, str] = field(default_factory=dict)
    default_head: str = AUTO
    hidden_size: int = 256
    hidden_size_means: str = "Width of the head's hidden layer."
    dropout: float | None = None
    dropout_means: str = "Dropout of the head."

    @property
    def names(self) -> tuple[str, ...]:
        """The heads, `auto` first (synonyms left out)."""
        return (AUTO, *self.custom)

    def help(self) -> str:
        """The `--head` help text, in the same sentence shape for every recipe. The choices come first:
        the compact --help shows only the start of the line."""
        *others, last = self.names
        described = [f"{AUTO}: {self.auto}", *(f"{name}: {what}" for name, what in self.custom.items())]
        text = f"{', '.join(others)} or {last}: the classification head on the backbone. " + "; ".join(described) + "."
        if self.synonyms:
            text += " Older spellings: " + ", ".join(f"{old} = {name}" for old, name in self.synonyms.items()) + "."
        return text

    def canonical(self, value: str) -> str:
        """The head `value` names (a synonym becomes its current name); anything else is refused."""
        name = self.synonyms.get(value, value)
        if name not in self.names:
            raise BadInputError(f"--head {value!r}: choose one of {', '.join(self.names)}.")
        return name


# Every family's heads and head defaults, side by side so that the same word cannot drift apart.
HEAD_FAMILIES = {
    "text": HeadFamily(
        auto="the checkpoint's AutoModelForSequenceClassification head ([CLS]/pooler → linear)",
        custom={"bigru": "token states → bidirectional GRU → linear"},
        synonyms={"linear": AUTO},
        hidden_size_means="bigru: the GRU's hidden size per direction.",
        dropout_means="Dropout before the classifier (unset: the backbone's classifier dropout, or 0.1 for bigru).",
    ),
    "image": HeadFamily(
        auto="the checkpoint's AutoModelForImageClassification head (timm backbones: one linear layer on the pooled "
             "features)",
        custom={"mlp": "the paper's Linear(256) → ELU → Dropout → Linear on the pooled features (timm backbones)"},
        synonyms={"linear": AUTO, "paper": "mlp"},
        default_head="mlp",
        hidden_size_means="mlp: hidden units of the paper head.",
        dropout=0.5,
        dropout_means="mlp: dropout of the paper head.",
    ),
    "audio": HeadFamily(
        auto="the checkpoint's AutoModelForAudioClassification head",
        custom={"pooled": "masked mean over time → FC → tanh → FC (padding-invariant, class weights)"},
        hidden_size_means="pooled: width of the head's hidden layer.",
        dropout=0.1,
        dropout_means="pooled: dropout of the head.",
    ),
}


@dataclass
class HeadArguments:
    """The classification head on the backbone. The same flags in every model family; a family's group
    (`TextHeadArguments`, ...) takes its choices and defaults from `HEAD_FAMILIES`."""

    family: ClassVar[HeadFamily]

    head: str = AUTO
    head_hidden_size: int = 256
    head_dropout: float | None = None

    def __post_init__(self):
        self.head = self.family.canonical(self.head)
        if self.head_hidden_size < 1:
            raise BadInputError(f"--head_hidden_size {self.head_hidden_size}: give a whole number of units, 1 or "
                                "more.")
        if self.head_dropout is None and self.family.dropout is not None:
            raise BadInputError(f"--head_dropout: give a probability from 0 up to (not including) 1 (default "
                                f"{self.family.dropout}); this head has no dropout of its own to fall back on.")
        if self.head_dropout is not None and not 0 <= self.head_dropout < 1:
            raise BadInputError(f"--head_dropout {self.head_dropout}: give a probability from 0 up to (not "
                                "including) 1.")


def head_group(family_name: str, aliases: Mapping[str, str] | None = None):
    """Declare a family's head group: `HeadArguments`'s fields with the family's defaults and help; `aliases`
    gives earlier names of a field (`{"head_dropout": "classifier_dropout"}`), still read from the command line
    and from configs."""
    family = HEAD_FAMILIES[family_name]

    def declare(group: type) -> type:
        group.family = family
        group.one_help_group = True  # the shared head options and the family's own under one heading
        defaults = {"head": (family.default_head, family.help()),
                    "head_hidden_size": (family.hidden_size, family.hidden_size_means),
                    "head_dropout": (family.dropout, family.dropout_means)}
        for name, (default, means) in defaults.items():
            metadata = {"help": means}
            if name in (aliases or {}):
                metadata["aliases"] = [f"--{aliases[name]}"]
            setattr(group, name, field(default=default, metadata=metadata))
        # The shared fields first, as in every family's --help, then the family's own.
        group.__annotations__ = {**HeadArguments.__annotations__, **group.__dict__.get("__annotations__", {})}
        return dataclass(group)

    return declare


@head_group("text", aliases={"head_hidden_size": "gru_hidden_size", "head_dropout": "classifier_dropout"})
class TextHeadArguments(HeadArguments):
    """The head on a text encoder."""

    gru_num_layers: int = field(default=1, metadata={"help": "bigru: stacked GRU layers."})
    gru_dropout: float = field(default=0.0, metadata={"help": "bigru: dropout between stacked GRU layers."})


@head_group("image")
class ImageHeadArguments(HeadArguments):
    """The head on an image backbone."""


@head_group("audio")
class AudioHeadArguments(HeadArguments):
    """The head on a speech encoder."""

    class_weighted_loss: bool = field(
        default=False, metadata={"help": "Weigh the loss by inverse training class frequency (needs --head pooled)."}
    )
