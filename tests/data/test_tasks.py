"""Records into prompts and examples: targets on the completion, source cut first."""



from gptkit.data import Record, Task


def test_examples_put_targets_on_the_completion_and_end_of_text_only(tokenizer):
    task = Task("translation")
    record = Record({"source": "a man", "target": "ein Mann"})
    example = task.example(record, tokenizer, block_size=64)
    prompt = tokenizer.encode(task.prompt(record))
    assert example.ids[: len(prompt)] == prompt and not any(example.targets[: len(prompt)])
    assert all(example.targets[len(prompt):]) and example.ids[-1] == tokenizer.eot_id
    assert tokenizer.decode(example.ids[len(prompt):-1]) == " ein Mann"
    assert task.examples([record], tokenizer, 64) == [example]  # the batched path agrees


def test_too_long_examples_lose_source_tokens_first_and_are_counted(tokenizer):
    task = Task("translation")
    record = Record({"source": "a man rides a red bike " * 20, "target": "ein Mann"})
    example = task.example(record, tokenizer, block_size=32)
    assert example.truncated and len(example.ids) <= 33
    text = tokenizer.decode(example.ids)
    assert text.startswith("English: a man") and text.endswith("\nGerman: ein Mann<|endoftext|>")
    assert task.examples([record], tokenizer, 32)[0] == example


def test_a_task_stored_with_flat_keys_reads_into_its_formats_sections():
    stored = {"format": "qa", "template": "", "source_lang": "fr", "target_lang": "en", "document_field": "body",
              "summary_field": "subject", "answer": "generate", "doc_stride": 16, "max_question_tokens": 8,
              "max_answer_tokens": 4}  # how a fine-tuned checkpoint stored its task before the sections
    task = Task.from_dict(stored)
    assert (task.translation.source_lang, task.translation.target_lang) == ("fr", "en")
    assert (task.summarization.document_field, task.summarization.summary_field) == ("body", "subject")
    assert (task.qa.answer, task.qa.doc_stride, task.qa.max_question_tokens, task.qa.max_answer_tokens) == \
        ("generate", 16, 8, 4)
    assert Task.from_dict(task.to_dict()) == task
