"""Chat: every assistant turn a target, a task's stored form, templates run sandboxed."""


import pytest

from gptkit import GptkitError
from gptkit.config import TranslationSettings
from gptkit.data import Record, Task
from gptkit.data.chat import CHAT_TEMPLATE


def test_chat_template_round_trip_marks_every_assistant_turn(tokenizer):
    task = Task("chat")
    messages = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"}, {"role": "user", "content": "bye"},
                {"role": "assistant", "content": "ciao"})
    example = task.example(Record(messages=messages), tokenizer, block_size=200)
    rendered = task.render_chat(list(messages), eos_token=tokenizer.eot_token)
    assert tokenizer.decode(example.ids) == rendered
    learned = tokenizer.decode([i for i, t in zip(example.ids, example.targets) if t])
    assert learned == "hello<|endoftext|>ciao<|endoftext|>"
    # generation renders the conversation so far exactly as training saw it before the last reply
    prompt = task.prompt(Record(messages=messages))
    assert tokenizer.encode(prompt) == example.ids[: len(tokenizer.encode(prompt))]
    assert prompt.endswith("<|user|>\nbye\n<|assistant|>\n")


def test_a_task_survives_its_checkpoint_form_and_templates_run_sandboxed():
    task = Task("chat", chat_template=CHAT_TEMPLATE, translation=TranslationSettings(source_lang="fr"))
    assert Task.from_dict(task.to_dict()) == task
    hostile = Task("chat", chat_template="{{ messages.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(GptkitError, match="chat template failed: .*(unsafe|access)"):
        hostile.render_chat([{"role": "user", "content": "x"}])
    with pytest.raises(GptkitError, match="template '{text}' cannot be filled .*fields are .*{source}"):
        Task("translation", template="{text}").prompt(Record({"source": "a", "target": "b"}))


# Templates of the kinds real models ship: ChatML with a default system turn (SmolLM2, Qwen2.5), Llama 3's
# headers with `bos_token` and whitespace control, a Llama 2 / Mistral one that relies on trim_blocks and
# raises on a bad conversation, and one with namespace, tojson and a thinking prefix (Qwen3).
TEMPLATES = {
    "chatml": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
              "{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}"
              "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
              "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    "llama3": "{{- bos_token }}\n{%- for message in messages %}\n    {{- '<|start_header_id|>' + message['role'] + "
              "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}\n{%- endfor %}\n"
              "{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}\n"
              "{%- endif %}\n",
    "llama2": "{% if messages[0]['role'] == 'system' %}\n{% set system = messages[0]['content'] %}\n"
              "{% set loop_messages = messages[1:] %}\n{% else %}\n{% set system = false %}\n"
              "{% set loop_messages = messages %}\n{% endif %}\n{% for message in loop_messages %}\n"
              "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
              "{{ raise_exception('Conversation roles must alternate user/assistant') }}\n{% endif %}\n"
              "{% if loop.index0 == 0 and system != false %}\n"
              "{% set content = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + message['content'] %}\n"
              "{% else %}\n{% set content = message['content'] %}\n{% endif %}\n"
              "{% if message['role'] == 'user' %}\n{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}\n"
              "{% else %}\n{{ ' ' + content.strip() + ' ' + eos_token }}\n{% endif %}\n{% endfor %}\n",
    "qwen3": "{%- set ns = namespace(users=0) %}\n{%- for m in messages %}{%- if m.role == 'user' %}"
             "{%- set ns.users = ns.users + 1 %}{%- endif %}{%- endfor %}\n{{- 'users: ' + ns.users|string + '\n' }}"
             "{%- for m in messages %}\n{{- '<|im_start|>' + m.role + '\n' + m | tojson + '<|im_end|>\n' }}"
             "{%- endfor %}\n{%- if add_generation_prompt %}\n"
             "{{- '<|im_start|>assistant\n<think>\n\n</think>\n\n' }}\n{%- endif %}",
}
CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Capital of France?"},
     {"role": "assistant", "content": " Paris. "}, {"role": "user", "content": "Und Köln? 你好 \"quoted\""}],
]


@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("conversation", range(len(CONVERSATIONS)))
@pytest.mark.parametrize("add_generation_prompt", [True, False])
def test_a_chat_template_renders_as_transformers_apply_chat_template(bpe_tokenizer, name, conversation,
                                                                     add_generation_prompt):
    from transformers import PreTrainedTokenizerFast

    from gptkit.data.chat import render_chat

    theirs = PreTrainedTokenizerFast(tokenizer_object=bpe_tokenizer.backend, bos_token="<s>", eos_token="</s>",
                                     chat_template=TEMPLATES[name])
    messages = CONVERSATIONS[conversation]
    expected = theirs.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    assert render_chat(TEMPLATES[name], messages, add_generation_prompt, eos_token="</s>", bos_token="<s>") == \
        expected


def test_a_template_that_raises_is_a_clear_error():
    from gptkit.data.chat import render_chat

    with pytest.raises(GptkitError, match="Conversation roles must alternate"):
        render_chat(TEMPLATES["llama2"], [{"role": "assistant", "content": "first"}])


def test_chat_checkpoints_from_before_render_as_they_were_trained():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from gptkit.data.chat import _OLD_CHAT_TEMPLATE, render_chat, trained_chat_template

    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "hi\n"},
                {"role": "assistant", "content": "yo"}]
    for prompt in (False, True):  # the environment chat templates used to render with
        before = ImmutableSandboxedEnvironment(keep_trailing_newline=True).from_string(_OLD_CHAT_TEMPLATE).render(
            messages=messages, add_generation_prompt=prompt, eos_token="<E>")
        assert render_chat(_OLD_CHAT_TEMPLATE, messages, prompt, "<E>") == before
        assert render_chat(CHAT_TEMPLATE, messages, prompt, "<E>") == before
    assert trained_chat_template({"task": {"format": "chat", "chat_template": _OLD_CHAT_TEMPLATE}}) == CHAT_TEMPLATE
    assert trained_chat_template({"task": {"format": "translation", "chat_template": CHAT_TEMPLATE}}) is None
