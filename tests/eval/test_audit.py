import json
import random

import pytest
import torch

from gptkit import GPT, GptkitError, ModelConfig, Tokenizer
from gptkit.eval.audit import bias_probe, contamination, describe, read_texts

WORDS = [f"w{i}" for i in range(500)]


def _text(rng, n=40):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def test_contamination_finds_the_planted_overlaps_and_only_those():
    rng = random.Random(0)
    train = [_text(rng) for _ in range(200)]
    evaluation = [_text(rng) for _ in range(100)]
    planted = {3, 17, 42, 88}
    for i in planted:  # 13 words copied from a training text, in other case and punctuation
        words = train[i].split()[10:23]
        evaluation[i] = _text(rng, 10) + " " + ", ".join(words).upper() + ". " + _text(rng, 10)
    near_miss = train[5].split()[:12]  # 12 shared words: below the 13-gram
    evaluation[50] = _text(rng, 5) + " " + " ".join(near_miss) + " " + _text(rng, 5)
    evaluation[60] = "too short to check"
    report = contamination(train, evaluation, n=13)
    assert set(report["indices"]) == planted
    assert report["too_short"] == 1 and report["checked"] == 99
    assert report["rate"] == pytest.approx(4 / 99)
    assert report["examples"][0]["ngram"] == " ".join(train[3].split()[10:23])
    assert contamination(train, evaluation, n=12)["contaminated"] == 5  # the near miss counts at n = 12


def test_describe_counts_exact_and_near_duplicates_and_tells_languages():
    rng = random.Random(1)
    english = ["The weather is lovely today and we will walk along the river after lunch with friends.",
               "Please send me the quarterly report before the meeting on Friday afternoon."]
    german = ["Das Wetter ist heute schön und wir gehen nach dem Mittagessen mit Freunden am Fluss spazieren."]
    base = [_text(rng) for _ in range(10)]
    near = base[0].split()
    near[-1] = "changed"  # one word of 40 differs
    texts = english + german + base + [base[1], base[2], " ".join(near)]
    report = describe(texts)
    assert report["texts"] == 16 and report["exact_duplicates"] == 2 and report["near_duplicates"] == 1
    assert report["words"]["max"] == 40 and report["chars"]["max"] == max(len(t) for t in texts)
    assert report["languages"]["de"] == pytest.approx(1 / 16)


def test_the_bias_probe_scores_the_words_after_the_term_by_the_models_own_log_likelihood(bpe_tokenizer):
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=bpe_tokenizer.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16))
    results = bias_probe(model, bpe_tokenizer, templates=("The {term} is here.",), groups={"g": ("man", "woman")})
    (result,) = results
    ids = [bpe_tokenizer.eot_id] + bpe_tokenizer.encode("The woman is here.")
    after = len(bpe_tokenizer.encode(" is here."))
    targets = torch.tensor([[-1] * (len(ids) - 1 - after) + ids[-after:]])  # only what follows the term
    loss = model(torch.tensor([ids[:-1]]), targets).item()
    assert result.scores["woman"] == pytest.approx(-loss, abs=1e-5)
    assert result.gap == abs(result.scores["man"] - result.scores["woman"]) and result.preferred in ("man", "woman")
    with pytest.raises(GptkitError, match="end-of-text"):
        bias_probe(model, Tokenizer.train_char(["abc"], special_tokens=()))
    with pytest.raises(GptkitError, match="one {term}"):
        bias_probe(model, bpe_tokenizer, templates=("No term here.",))


def test_task_files_and_corpora_are_read_as_texts(tmp_path):
    rows = [{"context": "Paris is in France.", "question": "Where is Paris?", "answers": ["France"]},
            {"context": "Paris is in France.", "question": "What is Paris in?", "answers": ["France"]}]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_texts(tmp_path / "qa.jsonl") == ["Paris is in France.\nWhere is Paris?\nWhat is Paris in?"]
    (tmp_path / "corpus.txt").write_text("First document.\n\nSecond one.\n")
    assert read_texts(tmp_path / "corpus.txt") == ["First document.", "Second one."]


def test_a_named_text_field_is_read_from_any_jsonl(tmp_path):
    rows = [{"email_body": "Lunch at noon?", "subject": "lunch"}, {"email_body": "Report attached.", "subject": "r"}]
    (tmp_path / "mail.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_texts(tmp_path / "mail.jsonl", text_field="email_body") == ["Lunch at noon?", "Report attached."]
