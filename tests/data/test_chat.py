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
