"""`--head` means one thing in every recipe: `auto` is the checkpoint's own head, other names are heads
this package adds, old spellings still work."""

import pytest

from hf_tasks.errors import BadInputError
from hf_tasks.modeling.head_choice import (
    AUDIO_CLASSIFIER_HEADS,
    IMAGE_CLASSIFIER_HEADS,
    SEQUENCE_CLASSIFIER_HEADS,
    HeadChoices,
)

FAMILIES = {"sequence": SEQUENCE_CLASSIFIER_HEADS, "audio": AUDIO_CLASSIFIER_HEADS, "image": IMAGE_CLASSIFIER_HEADS}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_offers_auto_first_and_help_in_one_sentence_shape(family):
    choices = FAMILIES[family]
    assert choices.names[0] == "auto"
    text = choices.help()
    assert text.startswith(f"auto or {choices.names[1]}: the classification head on the backbone. auto: the "
                           "checkpoint's AutoModelFor")
    for name in choices.names:
        assert f"{name}: " in text
    assert all(f"{old} = {name}" in text for old, name in choices.synonyms.items())


@pytest.mark.parametrize("family", FAMILIES)
def test_synonyms_name_heads_of_their_own_family(family):
    choices = FAMILIES[family]
    assert all(name in choices.names and old not in choices.names for old, name in choices.synonyms.items())


def test_a_word_means_the_same_head_wherever_it_is_used():
    assert SEQUENCE_CLASSIFIER_HEADS.canonical("linear") == IMAGE_CLASSIFIER_HEADS.canonical("linear") == "auto"
    custom = [name for choices in FAMILIES.values() for name in choices.custom]
    assert len(custom) == len(set(custom))  # no custom name stands for two different heads


def test_old_spellings_become_current_names_and_unknown_ones_are_refused():
    assert IMAGE_CLASSIFIER_HEADS.canonical("paper") == "mlp"
    assert AUDIO_CLASSIFIER_HEADS.canonical("pooled") == "pooled"
    with pytest.raises(BadInputError, match=r"^--head 'pooled': choose one of auto, mlp\.$"):
        IMAGE_CLASSIFIER_HEADS.canonical("pooled")


def test_the_dataclass_field_defaults_to_auto_and_carries_the_help():
    choices = HeadChoices(auto="the checkpoint's AutoModelForX head", custom={"deep": "two layers"})
    assert HeadChoices(auto="own", custom={"a": "one", "b": "two"}).help().startswith(
        "auto, a or b: the classification")
    field = choices.dataclass_field()
    assert field.default == "auto" and field.metadata["help"] == (
        "auto or deep: the classification head on the backbone. auto: the checkpoint's AutoModelForX head; "
        "deep: two layers."
    )
