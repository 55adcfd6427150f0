
import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig
from gptkit.model import embed, span_logits
from gptkit.model.heads import Encoder, SpanReader


def test_a_span_head_gives_start_end_logits_and_a_loss_over_allowed_positions_only():
    import torch.nn.functional as F

    from gptkit.model import SPAN_END, SPAN_START

    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16, span_head=True)).eval()
    idx = torch.randint(0, 50, (2, 10))
    spans = span_logits(model, idx)
    assert spans.shape == (2, 10, 2)
    labels = torch.full((2, 10), -1)
    labels[:, 4:] = 0  # positions 0-3 are the question: never an answer
    labels[0, 5] += SPAN_START
    labels[0, 7] += SPAN_END
    labels[1, 9] += SPAN_START + SPAN_END  # the null position
    masked = spans[:, 4:]
    expected = (F.cross_entropy(masked[..., 0], torch.tensor([1, 5])) +
                F.cross_entropy(masked[..., 1], torch.tensor([3, 5]))) / 2
    assert torch.allclose(SpanReader(model)(idx, labels), expected, atol=1e-6)
    assert torch.equal(SpanReader(model)(idx), spans)
    assert model.logits(model.hidden_states(idx)).shape == (2, 10, 50)  # the LM head is still there


def test_embeddings_pool_the_real_positions_of_right_padded_rows(tiny_config):
    import dataclasses

    torch.manual_seed(0)
    model = GPT(dataclasses.replace(tiny_config, pooling="mean")).eval()
    idx = torch.randint(0, tiny_config.vocab_size, (2, 9))
    lengths = torch.tensor([5, 9])
    with torch.no_grad():
        vectors = Encoder(model)(idx, lengths)
        alone = embed(model, idx[:1, :5])
        hidden = model.hidden_states(idx[:1, :5])
    torch.testing.assert_close(vectors[0], alone[0], atol=1e-5, rtol=0)  # the padding is never seen
    torch.testing.assert_close(alone[0], torch.nn.functional.normalize(hidden[0].mean(0), dim=-1))
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(2))


def test_a_model_without_a_span_head_says_so(tiny_model):
    with pytest.raises(GptkitError, match="no span head"):
        span_logits(tiny_model, torch.zeros(1, 3, dtype=torch.long))
