"""`--head` means one thing in every recipe: `auto` is the checkpoint's own head, other names are heads
this package adds, old spellings still work; the head options have the same names in every model family, and
every family's builder takes the same arguments."""

import dataclasses
import inspect

import pytest

from hf_tasks.errors import BadInputError
from hf_tasks.options import HEAD_FAMILIES as FAMILIES
from hf_tasks.options import AudioHeadArguments, HeadArguments, HeadFamily, ImageHeadArguments, TextHeadArguments


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
    assert FAMILIES["text"].canonical("linear") == FAMILIES["image"].canonical("linear") == "auto"
    custom = [name for choices in FAMILIES.values() for name in choices.custom]
    assert len(custom) == len(set(custom))  # no custom name stands for two different heads


def test_old_spellings_become_current_names_and_unknown_ones_are_refused():
    assert FAMILIES["image"].canonical("paper") == "mlp"
    assert FAMILIES["audio"].canonical("pooled") == "pooled"
    with pytest.raises(BadInputError, match=r"^--head 'pooled': choose one of auto, mlp\.$"):
        FAMILIES["image"].canonical("pooled")


def test_help_lists_the_choices_first_in_one_sentence():
    choices = HeadFamily(auto="the checkpoint's AutoModelForX head", custom={"deep": "two layers"})
    assert HeadFamily(auto="own", custom={"a": "one", "b": "two"}).help().startswith(
        "auto, a or b: the classification")
    assert choices.help() == (
        "auto or deep: the classification head on the backbone. auto: the checkpoint's AutoModelForX head; "
        "deep: two layers."
    )


HEAD_GROUPS = {"text": TextHeadArguments, "image": ImageHeadArguments, "audio": AudioHeadArguments}


@pytest.mark.parametrize("family", HEAD_GROUPS)
def test_every_family_names_its_head_options_alike_with_its_own_defaults(family):
    fields = {item.name: item for item in dataclasses.fields(HEAD_GROUPS[family])}
    assert list(fields)[:3] == ["head", "head_hidden_size", "head_dropout"]
    defaults = FAMILIES[family]
    assert (fields["head"].default, fields["head_hidden_size"].default, fields["head_dropout"].default) == (
        defaults.default_head, defaults.hidden_size, defaults.dropout)
    assert fields["head"].metadata["help"] == defaults.help()
    group = HEAD_GROUPS[family]()
    assert isinstance(group, HeadArguments) and group.family is defaults


def test_image_and_audio_heads_differ_only_where_their_families_say():
    assert ImageHeadArguments().head_dropout == 0.5 and AudioHeadArguments().head_dropout == 0.1
    assert ImageHeadArguments().head == "mlp" and AudioHeadArguments().head == TextHeadArguments().head == "auto"


@pytest.mark.parametrize("value, message", [("0", "--head_hidden_size 0"), ("-3", "--head_hidden_size -3")])
def test_a_head_without_units_is_refused(value, message):
    with pytest.raises(BadInputError, match=message):
        AudioHeadArguments(head_hidden_size=int(value))


def test_a_dropout_outside_zero_to_one_is_refused():
    with pytest.raises(BadInputError, match="--head_dropout 1.5: give a probability"):
        ImageHeadArguments(head_dropout=1.5)
    # unset (`--head_dropout none`) only where the model has a dropout of its own: not the image or audio head
    for group in (ImageHeadArguments, AudioHeadArguments):
        with pytest.raises(BadInputError, match="--head_dropout: give a probability .* no dropout of its own"):
            group(head_dropout=None)
    assert TextHeadArguments(head_dropout=None).head_dropout is None


def test_the_earlier_text_head_flags_still_set_the_shared_ones(tmp_path):
    from hf_tasks.args import parse

    state = parse(TextHeadArguments, args=["--gru_hidden_size", "8", "--classifier_dropout", "0.2"])
    assert (state[TextHeadArguments].head_hidden_size, state[TextHeadArguments].head_dropout) == (8, 0.2)
    config = tmp_path / "old.yaml"
    config.write_text("head: bigru\ngru_hidden_size: 16\nclassifier_dropout: 0.3\n", encoding="utf-8")
    head = parse(TextHeadArguments, args=["--config", str(config)])[TextHeadArguments]
    assert (head.head, head.head_hidden_size, head.head_dropout) == ("bigru", 16, 0.3)
    head = parse(TextHeadArguments, args=["--config", str(config), "--head_hidden_size", "4"])[TextHeadArguments]
    assert head.head_hidden_size == 4  # the command line wins over the config, whichever name each used


def test_every_model_family_builds_through_one_signature():
    from hf_tasks.modeling import audio_classifier, image_classifier, text_classifier

    signatures = {module.__name__: list(inspect.signature(module.build_model).parameters)
                  for module in (text_classifier, image_classifier, audio_classifier)}
    assert set(map(tuple, signatures.values())) == {("model_args", "head_args", "labels", "processor")}
