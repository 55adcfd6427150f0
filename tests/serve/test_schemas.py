"""Request bodies map onto one Decoding; what gptkit cannot honour is refused, naming the field."""

import pytest

from gptkit.generate import Decoding
from gptkit.serve.schemas import ApiError, ChatRequest, CompletionRequest


def test_a_completion_request_becomes_its_decoding():
    body = CompletionRequest(model="m", prompt="hi", temperature=0.7, top_p=0.9, top_k=40, stop="\n", seed=3,
                             repetition_penalty=1.2)
    assert body.decoding(20, eot_id=0) == Decoding(20, 0.7, 40, 0.9, None, 1.2, ("\n",), (0,), 3)
    assert CompletionRequest(model="m", prompt="hi").decoding(5, None).top_p is None  # top_p 1 = off
    assert CompletionRequest(model="m", prompt="hi").max_tokens == 16  # OpenAI's default


@pytest.mark.parametrize("fields, param", [
    (dict(presence_penalty=0.5), "presence_penalty"), (dict(frequency_penalty=-1), "frequency_penalty"),
    (dict(stop=["a", "b", "c", "d", "e"]), "stop"),
])
def test_what_gptkit_cannot_honour_is_refused_naming_the_field(fields, param):
    body = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}], **fields)
    with pytest.raises(ApiError) as e:
        body.decoding(10, 0)
    assert e.value.status == 400 and e.value.param == param and param in e.value.message
    assert e.value.body()["error"]["param"] == param


def test_a_neutral_value_must_have_the_neutral_values_type():
    import pytest

    from gptkit.serve.schemas import ApiError, CompletionRequest

    assert CompletionRequest.model_validate({"model": "m", "prompt": "p", "best_of": 1})
    with pytest.raises(ApiError, match="best_of"):
        CompletionRequest.model_validate({"model": "m", "prompt": "p", "best_of": True})  # true is not 1
