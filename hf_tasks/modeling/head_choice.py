"""One meaning of `--head` in every recipe: the classification head put on the backbone.

`auto` is the checkpoint's own head, the one its `AutoModelFor*` class builds (for a timm backbone,
the single linear layer timm itself puts on the pooled features); any other value names a head this
package adds. Spellings of earlier versions stay accepted as synonyms, so old configs keep working.
The choices of every model family live here side by side, so the same word cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from hf_tasks.errors import BadInputError

AUTO = "auto"


@dataclass(frozen=True)
class HeadChoices:
    """The `--head` values of one model family: what `auto` builds there, its named heads, old spellings."""

    auto: str
    custom: Mapping[str, str]
    synonyms: Mapping[str, str] = field(default_factory=dict)

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

    def dataclass_field(self, default: str = AUTO):
        """A dataclass field for `--head` with this family's help text."""
        return field(default=default, metadata={"help": self.help()})

    def canonical(self, value: str) -> str:
        """The head `value` names (a synonym becomes its current name); anything else is refused."""
        name = self.synonyms.get(value, value)
        if name not in self.names:
            raise BadInputError(f"--head {value!r}: choose one of {', '.join(self.names)}.")
        return name


SEQUENCE_CLASSIFIER_HEADS = HeadChoices(
    auto="the checkpoint's AutoModelForSequenceClassification head ([CLS]/pooler → linear)",
    custom={"bigru": "token states → bidirectional GRU → linear"},
    synonyms={"linear": AUTO},
)
AUDIO_CLASSIFIER_HEADS = HeadChoices(
    auto="the checkpoint's AutoModelForAudioClassification head",
    custom={"pooled": "masked mean over time → FC → tanh → FC (padding-invariant, class weights)"},
)
IMAGE_CLASSIFIER_HEADS = HeadChoices(
    auto="the checkpoint's AutoModelForImageClassification head (timm backbones: one linear layer on the pooled "
         "features)",
    custom={"mlp": "the paper's Linear(256) → ELU → Dropout → Linear on the pooled features (timm backbones)"},
    synonyms={"linear": AUTO, "paper": "mlp"},
)
