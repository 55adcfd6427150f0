"""eval (a text, or a task) and translate."""

import json

import pytest

from gptkit import GPT, ModelConfig, save_checkpoint


def test_eval_scores_a_text_file_like_the_python_api(tmp_path, tiny_model, bpe_tokenizer, cli):
    from gptkit.eval import perplexity

    save_checkpoint(tmp_path / "ck", tiny_model, bpe_tokenizer)
    text = "the quick brown fox jumps over the lazy dog. " * 20
    (tmp_path / "t.txt").write_text(text)
    out = cli("eval", tmp_path / "ck", "--text", tmp_path / "t.txt", "--stride", "8", "--out", tmp_path / "s.json").out
    expected = perplexity(tiny_model.eval(), bpe_tokenizer.encode(text), 8, len(text.encode()))
    assert f"perplexity {expected.ppl:.3f}" in out and "stride 8" in out
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["tokens"] == expected.tokens and scores["bits_per_byte"] == pytest.approx(expected.bits_per_byte)
    (tmp_path / "empty.txt").write_text("")
    assert "at least 2" in cli("eval", tmp_path / "ck", "--text", tmp_path / "empty.txt", code=2).err
    assert "no such file" in cli("eval", tmp_path / "ck", "--text", tmp_path / "missing.txt", code=2).err
    assert "stride must be" in cli("eval", tmp_path / "ck", "--text", tmp_path / "t.txt", "--stride", "0", code=2).err


def test_task_commands_refuse_what_they_cannot_do_in_one_line(translation_files, tmp_path, bpe_tokenizer, cli):
    save_checkpoint(tmp_path / "plain", GPT(ModelConfig(vocab_size=300, block_size=32, n_layer=1, n_head=2,
                                                          n_embd=16)), bpe_tokenizer)
    err = cli("translate", tmp_path / "plain", "hello", code=2).err
    assert "not a fine-tuned checkpoint" in err and "Traceback" not in err
    assert "--text FILE (perplexity), --task FILE" in cli("eval", tmp_path / "plain", code=2).err
    (tmp_path / "short.de").write_text("A\n")
    (tmp_path / "short.en").write_text("a\nb\n")
    err = cli("finetune", "--quiet", f"data={tmp_path}/short.{{lang}}", f"out_dir={tmp_path}/run", code=2).err
    assert "has 2 lines but" in err
