"""The CLI end to end: what a user types, what it prints, exit codes, no tracebacks.

Most commands run in-process through `cli.main()` (a traceback would surface as an exception);
a few run as real subprocesses, the way a shell runs them.
"""

import io
import json
import subprocess
import sys

import pytest
import torch

from gptkit import GPT, ModelConfig, Sampling, load_checkpoint, save_checkpoint
from gptkit.cli import build_parser, main
from gptkit.generate import beam_search_text, generate_text
from gptkit.quantize import for_inference


@pytest.fixture
def cli(capsys, monkeypatch):
    """cli(*args, code=0, stdin="") -> (stdout, stderr) of `gptkit ARGS` run in-process."""
    def run(*args, code=0, stdin=""):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        assert main([str(a) for a in args]) == code, capsys.readouterr().err
        return capsys.readouterr()
    return run


def subprocess_run(*args, code=0):
    proc = subprocess.run([sys.executable, "-m", "gptkit", *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == code, proc.stderr
    return proc


def test_every_subcommand_has_help(capsys):
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) >= {"info", "generate", "init", "import-hf", "export-hf", "prepare", "train", "demo",
                             "grow", "eval"}
    for name in commands:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0 and f"usage: gptkit {name}" in capsys.readouterr().out
    assert "usage: gptkit" in subprocess_run("--help").stdout  # and the real entry point starts


def test_init_info_generate(tmp_path, bpe_tokenizer, cli):
    bpe_tokenizer.save(tmp_path / "tokenizer.json")
    ck = tmp_path / "ck"
    cli("init", ck, "--config", "tiny", "vocab_size=300", "n_layer=1", "--tokenizer", tmp_path / "tokenizer.json")
    info = cli("info", ck).out
    assert "n_layer         1" in info and "parameters" in info and "tokenizer.json" in info
    n_params = load_checkpoint(ck).model.num_params()
    assert f"parameters      {n_params:,}" in info
    out = cli("generate", ck, "--prompt", "def add", "--max-new-tokens", "8", "--seed", "1").out
    assert out.startswith("def add")
    assert cli("generate", ck, "--prompt", "def add", "--max-new-tokens", "8", "--seed", "1").out == out


def test_hf_export_import_roundtrip_keeps_every_tensor(tmp_path, tiny_model, bpe_tokenizer, cli):
    pytest.importorskip("transformers")
    save_checkpoint(tmp_path / "ck", tiny_model, bpe_tokenizer)
    cli("export-hf", tmp_path / "ck", tmp_path / "hf")
    cli("import-hf", tmp_path / "hf", tmp_path / "back")
    back = load_checkpoint(tmp_path / "back")
    assert back.model.config == tiny_model.config
    theirs = back.model.state_dict()
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(tensor, theirs[name]), name
    assert back.tokenizer.encode("hello") == bpe_tokenizer.encode("hello")


@pytest.mark.parametrize("args, message", [
    (["info", "no/such/dir"], "checkpoint not found"),
    (["generate", "no/such/dir", "--prompt", "x"], "checkpoint not found"),
    (["init", "OUT", "n_head=5", "n_embd=32"], "divisible by n_head"),
    (["init", "OUT", "--config", "missing.toml"], "neither a file nor a preset"),
    (["import-hf", "no/such/dir", "OUT"], "no config.json"),
    (["prepare", "no/such/file.txt", "--out", "OUT"], "corpus source not found"),
    (["train", "--config", "tiny", "data=no/such/dir", "out_dir=OUT"], "missing manifest.json"),
    (["train", "--config", "tiny", "batch_size=0"], "batch_size must be >= 1"),
    (["train", "data=x"], "--config with a preset (demo, gpt2-124m"),
    (["prepare", "x.txt", "--out", "OUT", "txt_documents=page"], "txt_documents must be one of file, paragraph"),
    (["prepare", "builtin:python-docs", "--out", "OUT", "--vocab-size", "100"], "too small"),
])
def test_user_errors_print_one_line_and_exit_2(tmp_path, args, message, cli):
    args = [str(tmp_path / a) if a == "OUT" else a.replace("=OUT", f"={tmp_path / 'out'}") for a in args]
    err = cli(*args, code=2).err
    assert message in err and err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_corrupt_checkpoint_exits_2_from_a_shell(tmp_path, tiny_model):
    path = save_checkpoint(tmp_path / "ck", tiny_model)
    (path / "model.safetensors").write_bytes(b"broken")
    proc = subprocess_run("info", path, code=2)
    assert "corrupt or truncated" in proc.stderr and "Traceback" not in proc.stderr


def test_info_refuses_weights_that_do_not_match_the_config(tmp_path, tiny_model, cli):
    path = save_checkpoint(tmp_path / "ck", tiny_model)
    config = json.loads((path / "config.json").read_text())
    config["model"]["n_layer"] = 3
    (path / "config.json").write_text(json.dumps(config))
    err = cli("info", path, code=2).err
    assert "does not match config.json" in err and "missing tensors blocks.2" in err


def test_prepare_reads_a_config_file_with_flags_and_overrides_on_top(tmp_path, cli):
    (tmp_path / "a.txt").write_text("one line\nanother line\n" * 30 + "\n".join(f"line {i}" for i in range(50)))
    (tmp_path / "prep.toml").write_text('tokenizer = "char"\nval_fraction = 0.3\n[read]\ntxt_documents = "file"\n')
    cli("prepare", tmp_path / "a.txt", "--out", tmp_path / "d", "--config", tmp_path / "prep.toml",
        "--txt-documents", "line", "val_fraction=0.2", "--quiet")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["config"]["tokenizer"] == "char"  # from the file
    assert manifest["config"]["read"]["txt_documents"] == "line"  # the flag wins over the file
    assert manifest["config"]["val_fraction"] == 0.2  # and key=value over both
    assert manifest["read"]["documents"] == 110  # one per line: 60 repeated lines and 50 distinct


def test_prompt_too_long_exits_2(tmp_path, bpe_tokenizer, cli):
    model = GPT(ModelConfig(vocab_size=300, block_size=16, n_layer=1, n_head=1, n_embd=8))
    path = save_checkpoint(tmp_path / "ck", model, bpe_tokenizer)
    assert "context window" in cli("generate", path, "--prompt", "word " * 40, code=2).err


def test_generate_prints_what_the_api_generates_for_each_option(tmp_path, tiny_model, bpe_tokenizer, cli):
    path = save_checkpoint(tmp_path / "ck", tiny_model, bpe_tokenizer)
    tok, prompt = bpe_tokenizer, "The fox"

    def printed(*args, prompt_args=("--prompt", prompt)):
        return cli("generate", path, *prompt_args, "--max-new-tokens", "20", "--dtype", "fp32", *args).out

    def api(sampling, model=tiny_model, text=prompt, **kw):
        return text + generate_text(model, tok, text, 20, sampling, **kw) + "\n"

    free = api(Sampling(0))
    assert printed("--temperature", "0") == free
    assert printed("--temperature", "0.9", "--min-p", "0.1", "--repetition-penalty", "1.2", "--seed", "3") == api(
        Sampling(0.9, min_p=0.1, repetition_penalty=1.2), seed=3)
    assert printed("--temperature", "0.8", "--top-k", "20", "--top-p", "0.9", "--seed", "5", "--num-samples", "2") == (
        "--- sample 1 ---\n" + api(Sampling(0.8, top_k=20, top_p=0.9), seed=5)
        + "--- sample 2 ---\n" + api(Sampling(0.8, top_k=20, top_p=0.9), seed=6))
    stop = free[len(prompt) + 4:][:2]
    assert printed("--temperature", "0", "--stop", stop) == free[: free.index(stop, len(prompt))] + "\n"
    beam = beam_search_text(tiny_model, tok, prompt, 20, num_beams=3)
    assert printed("--temperature", "0", "--beams", "3") == f"{prompt}{beam}\n"
    int8 = for_inference(load_checkpoint(path).model, "int8")
    assert cli("generate", path, "--prompt", prompt, "--max-new-tokens", "20", "--temperature", "0",
               "--dtype", "int8").out == api(Sampling(0), model=int8)
    long = "word " * 80
    assert printed("--temperature", "0", "--truncate", prompt_args=("--prompt", long)) == api(
        Sampling(0), text=long, truncate_prompt=True)
    (tmp_path / "prompt.txt").write_text(prompt)
    assert printed("--temperature", "0", prompt_args=("--prompt-file", tmp_path / "prompt.txt")) == free


def test_interactive_mode_answers_each_line_and_survives_a_bad_one(tmp_path, tiny_model, bpe_tokenizer, cli):
    path = save_checkpoint(tmp_path / "ck", tiny_model, bpe_tokenizer)
    free = "The fox" + generate_text(tiny_model, bpe_tokenizer, "The fox", 20, Sampling(0))
    result = cli("generate", path, "-i", "--temperature", "0", "--max-new-tokens", "20", "--dtype", "fp32",
                 stdin="The fox\n" + "word " * 80 + "\nThe fox\n\n")
    assert result.out.count(free) == 2  # both prompts answered; the long one in between is an error line
    assert "context window" in result.err


def test_prepare_reports_counts_and_skips_an_unchanged_rerun(tmp_path, cli):
    args = ("prepare", "builtin:python-docs", "--out", tmp_path / "pd", "--vocab-size", "512", "--quiet")
    out = cli(*args).out
    assert "train" in out and "val" in out and "documents_in" in out
    assert "nothing to do" in cli(*args).err


def test_unknown_arguments_exit_2_from_a_shell():
    proc = subprocess_run("info", "x", "--bogus", code=2)
    assert "unrecognized arguments" in proc.stderr


@pytest.mark.parametrize("how", [["--n-layer", "4", "--method", "identity"], ["--width-factor", "2"],
                                 ["--n-layer", "3", "--width-factor", "2", "--method", "identity"]],
                         ids=["identity", "width", "both"])
def test_grow_writes_a_bigger_checkpoint_with_the_same_outputs(tmp_path, tiny_model, bpe_tokenizer, cli, how):
    save_checkpoint(tmp_path / "ck", tiny_model, bpe_tokenizer)
    assert "wrote" in cli("grow", tmp_path / "ck", tmp_path / "big", *how).out
    big = load_checkpoint(tmp_path / "big")
    assert big.model.config.n_layer == (int(how[1]) if "--n-layer" in how else 2)
    assert big.model.config.n_embd == (64 if "--width-factor" in how else 32)
    idx = torch.randint(0, 300, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(big.model.eval()(idx), tiny_model.eval()(idx), atol=1e-5, rtol=0)
    assert big.meta["grown_from"] == str(tmp_path / "ck") and big.tokenizer.encode("hi") == bpe_tokenizer.encode("hi")
    assert "already exists" in cli("grow", tmp_path / "ck", tmp_path / "big", *how, code=2).err
    assert "and/or" in cli("grow", tmp_path / "ck", tmp_path / "x", code=2).err
    assert "larger than the checkpoint's 2" in cli("grow", tmp_path / "ck", tmp_path / "x", "--n-layer", "2",
                                                    code=2).err


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


@pytest.fixture(scope="module")
def translation_files(tmp_path_factory):
    """A tiny parallel corpus (aligned files) and a character tokenizer for it."""
    from gptkit import Tokenizer

    tmp = tmp_path_factory.mktemp("mt")
    words = ["a b", "b c d", "c d", "d a b c", "a c"] * 8
    (tmp / "train.en").write_text("\n".join(words) + "\n")
    (tmp / "train.de").write_text("\n".join(w.upper() for w in words) + "\n")
    Tokenizer.train_char(["English: German:\nabcdABCD "]).save(tmp / "tokenizer.json")
    return tmp


def test_finetune_then_translate_and_score_from_the_command_line(translation_files, tmp_path, cli):
    d = translation_files
    cli("finetune", "--quiet", f"data={d}/train.{{lang}}", f"tokenizer={d}/tokenizer.json", "val_examples=5",
        f"out_dir={tmp_path}/run", "n_layer=1", "n_embd=32", "n_head=2", "block_size=32", "batch_size=8",
        "max_steps=6", "eval_interval=3", "device=cpu", "dtype=fp32")
    best = tmp_path / "run" / "best"
    assert json.loads((best / "config.json").read_text())["task"]["format"] == "translation"
    out = cli("translate", best, "a b", "c d", "--max-new-tokens", "6").out
    assert len(out.splitlines()) == 2  # one line per sentence, whatever the tiny model says
    (tmp_path / "in.txt").write_text("a b\nb c d\nc d\n")
    assert len(cli("translate", best, "--input", tmp_path / "in.txt", "--beams", "2", "--max-new-tokens", "6")
               .out.splitlines()) == 3
    out = cli("eval", best, "--task", f"{d}/train.{{lang}}", "--limit", "10", "--max-new-tokens", "6",
              "--out", tmp_path / "eval").out
    assert "BLEU" in out and "tok:13a" in out and "chrF" in out
    scores = json.loads((tmp_path / "eval" / "scores.json").read_text())
    assert scores["examples"] == 10 and "signature" in scores["bleu"]
    predictions = [json.loads(line) for line in (tmp_path / "eval" / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 10 and predictions[0]["reference"] == "A B"


def test_task_commands_refuse_what_they_cannot_do_in_one_line(translation_files, tmp_path, bpe_tokenizer, cli):
    save_checkpoint(tmp_path / "plain", GPT(ModelConfig(vocab_size=300, block_size=32, n_layer=1, n_head=2,
                                                          n_embd=16)), bpe_tokenizer)
    err = cli("translate", tmp_path / "plain", "hello", code=2).err
    assert "not a fine-tuned checkpoint" in err and "Traceback" not in err
    assert "--text FILE (perplexity) or --task FILE" in cli("eval", tmp_path / "plain", code=2).err
    (tmp_path / "short.de").write_text("A\n")
    (tmp_path / "short.en").write_text("a\nb\n")
    err = cli("finetune", "--quiet", f"data={tmp_path}/short.{{lang}}", f"out_dir={tmp_path}/run", code=2).err
    assert "has 2 lines but" in err


def test_generate_chat_renders_the_checkpoints_template(tmp_path, cli):
    from gptkit import Tokenizer
    from gptkit.data import Task

    tokenizer = Tokenizer.train_char(["<|user|>\n<|assistant|>\nhello world"])
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16))
    template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant] "
    task = Task("chat", chat_template=template)
    save_checkpoint(tmp_path / "ck", model, tokenizer, extra={"task": task.to_dict()})
    out = cli("generate", tmp_path / "ck", "--chat", "--prompt", "hello", "--max-new-tokens", "5",
              "--temperature", "0").out
    prompt = task.render_chat([{"role": "user", "content": "hello"}], add_generation_prompt=True)
    assert prompt == "[user] hello\n[assistant] "
    assert out == generate_text(model.eval(), tokenizer, prompt, 5, Sampling(0)) + "\n"  # the prompt is not echoed
