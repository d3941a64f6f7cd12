"""The BiGRU head: padding invariance, save/reload, pretrained encoders, both loss types."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, BertConfig, BertModel

from hf_tasks.modeling.bigru import BiGRUConfig, BiGRUForSequenceClassification

ENCODER = BertConfig(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=100
)


def tiny_model(**options) -> BiGRUForSequenceClassification:
    torch.manual_seed(0)
    options = {"gru_hidden_size": 16, "num_labels": 2, **options}
    return BiGRUForSequenceClassification(BiGRUConfig(encoder=ENCODER.to_dict(), **options)).eval()


def padded(rows: list[list[int]], width: int) -> dict[str, torch.Tensor]:
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, : len(row)] = torch.tensor(row)
    return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long()}


def test_padding_does_not_change_logits():
    model = tiny_model(gru_num_layers=2)
    short, long = [2, 11, 12, 13, 3], [2, 21, 22, 23, 24, 25, 26, 27, 3]
    with torch.no_grad():
        alone = model(**padded([short], 5)).logits
        padded_more = model(**padded([short], 30)).logits
        # In a batch with a longer row first, so the packed order differs from the batch order.
        in_batch = model(**padded([long, short], 12)).logits
    torch.testing.assert_close(padded_more, alone, rtol=0, atol=1e-6)
    torch.testing.assert_close(in_batch[1:], alone, rtol=0, atol=1e-6)
    # The padded tokens are really ignored: the padding id itself does not matter either.
    junk = padded([short], 12)
    junk["input_ids"][0, 5:] = 42
    with torch.no_grad():
        torch.testing.assert_close(model(**junk).logits, alone, rtol=0, atol=1e-6)


def test_different_texts_give_different_logits():
    model = tiny_model()
    with torch.no_grad():
        logits = model(**padded([[2, 11, 12, 3], [2, 40, 41, 3]], 4)).logits
    assert not torch.allclose(logits[0], logits[1])


def test_left_padding_is_refused_with_the_fix():
    model = tiny_model()
    inputs = {"input_ids": torch.tensor([[0, 0, 2, 11, 3]]), "attention_mask": torch.tensor([[0, 0, 1, 1, 1]])}
    with pytest.raises(ValueError, match="padding_side = 'right'"):
        model(**inputs)


def test_head_options_shape_the_gru_and_classifier():
    model = tiny_model(gru_hidden_size=8, gru_num_layers=3, num_labels=4)
    assert model.gru.hidden_size == 8 and model.gru.num_layers == 3 and model.gru.bidirectional
    assert model.classifier.in_features == 16 and model.classifier.out_features == 4
    assert model.encoder.pooler is None
    assert model(**padded([[2, 5, 3]], 3)).logits.shape == (1, 4)


@pytest.mark.parametrize("num_labels", [1, 2])
def test_save_and_reload_through_auto_classes_gives_identical_logits(tmp_path, num_labels):
    model = tiny_model(num_labels=num_labels, id2label={0: "fake"} if num_labels == 1 else {0: "real", 1: "fake"})
    inputs = padded([[2, 11, 12, 13, 3], [2, 14, 3]], 6)
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "bigru_classifier"
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, BiGRUForSequenceClassification)
    assert reloaded.config.gru_hidden_size == 16 and reloaded.config.encoder.hidden_size == 32
    saved, loaded = model.state_dict(), reloaded.state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[key], loaded[key]) for key in saved)
    # Equal weights; the logits may differ in the last bit only because memory-mapped safetensors
    # weights are not 64-byte aligned, which makes the CPU matmul sum in another order.
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, expected, rtol=0, atol=1e-6)


def test_from_pretrained_encoder_loads_the_backbone_weights_from_a_folder(tmp_path):
    torch.manual_seed(1)
    BertModel(ENCODER).save_pretrained(tmp_path)
    saved = BertModel.from_pretrained(tmp_path).state_dict()
    model = BiGRUForSequenceClassification.from_pretrained_encoder(
        str(tmp_path), num_labels=2, gru_hidden_size=8, gru_num_layers=2
    )
    loaded = model.encoder.state_dict()
    assert loaded.keys() == {key for key in saved if not key.startswith("pooler.")}
    assert all(torch.equal(loaded[key], saved[key]) for key in loaded)
    assert model.config.gru_num_layers == 2 and model.config.encoder.hidden_size == 32


def test_single_output_trains_with_binary_cross_entropy_and_two_outputs_with_cross_entropy():
    inputs = padded([[2, 11, 3], [2, 12, 13, 3]], 4)
    binary = tiny_model(num_labels=1)
    output = binary(**inputs, labels=torch.tensor([1.0, 0.0]))
    z = output.logits[:, 0]
    by_hand = -(torch.log(torch.sigmoid(z[0])) + torch.log(1 - torch.sigmoid(z[1]))) / 2
    torch.testing.assert_close(output.loss, by_hand)
    # Labels shaped (batch, 1), as a classifier collator gives them for a sigmoid head, work too.
    torch.testing.assert_close(binary(**inputs, labels=torch.tensor([[1.0], [0.0]])).loss, by_hand)

    softmax = tiny_model(num_labels=2)
    output = softmax(**inputs, labels=torch.tensor([1, 0]))
    log_probabilities = torch.log_softmax(output.logits, dim=-1)
    torch.testing.assert_close(output.loss, -(log_probabilities[0, 1] + log_probabilities[1, 0]) / 2)
    output.loss.backward()
    assert softmax.encoder.embeddings.word_embeddings.weight.grad is not None
    assert softmax.gru.weight_hh_l0.grad is not None


def test_a_saved_bigru_folder_reloads_with_the_bigru_head_whatever_config_name_a_config_gives(tmp_path):
    from types import SimpleNamespace

    from hf_tasks.modeling import text_classifier
    from hf_tasks.modeling.labels import ClassLabels
    from hf_tasks.options import ModelArguments, TextHeadArguments

    saved = tiny_model()
    saved.save_pretrained(tmp_path)
    # the covid_fakenews tiny config names a BERT config to build from; the run folder's own config wins
    model_args = ModelArguments(model_name_or_path=str(tmp_path), config_name="hf_tasks/samples/tiny-bert-en")
    model = text_classifier.build_model(model_args, TextHeadArguments(head="bigru"), ClassLabels(("a", "b")),
                                        SimpleNamespace(padding_side="left")).eval()
    inputs = padded([[2, 11, 12, 3]], 6)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, saved(**inputs).logits)
