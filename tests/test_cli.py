"""The CLI end to end, as a user runs it: a subprocess, exit codes, no tracebacks."""

import json
import subprocess
import sys

import pytest

from gptkit import load_checkpoint, save_checkpoint
from gptkit.cli import build_parser
from gptkit.generate import beam_search_text


def run(*args, check_rc=0, stdin=None):
    proc = subprocess.run([sys.executable, "-m", "gptkit", *map(str, args)],
                          capture_output=True, text=True, timeout=120, input=stdin)
    assert proc.returncode == check_rc, proc.stderr
    return proc


def test_every_subcommand_has_help():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) >= {"info", "generate", "init", "import-hf", "export-hf", "prepare", "train", "demo"}
    for name in commands:
        assert "usage:" in run(name, "--help").stdout


def test_init_info_generate(tmp_path, bpe_tokenizer):
    bpe_tokenizer.save(tmp_path / "tokenizer.json")
    ck = tmp_path / "ck"
    run("init", ck, "--config", "tiny", "vocab_size=300", "n_layer=1",
        "--tokenizer", tmp_path / "tokenizer.json")
    info = run("info", ck).stdout
    assert "n_layer         1" in info and "parameters" in info and "tokenizer.json" in info
    out = run("generate", ck, "--prompt", "def add", "--max-new-tokens", "8", "--seed", "1").stdout
    assert out.startswith("def add")
    again = run("generate", ck, "--prompt", "def add", "--max-new-tokens", "8", "--seed", "1").stdout
    assert out == again


def test_hf_export_import_roundtrip(tmp_path, tiny_model, bpe_tokenizer):
    pytest.importorskip("transformers")
    save_checkpoint(tmp_path / "ck", tiny_model, bpe_tokenizer)
    run("export-hf", tmp_path / "ck", tmp_path / "hf")
    run("import-hf", tmp_path / "hf", tmp_path / "back")
    back = load_checkpoint(tmp_path / "back")
    assert back.model.config == tiny_model.config
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
def test_user_errors_print_one_line_and_exit_2(tmp_path, args, message):
    args = [str(tmp_path / a) if a == "OUT" else a.replace("=OUT", f"={tmp_path / 'out'}") for a in args]
    proc = run(*args, check_rc=2)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_corrupt_checkpoint_exits_2(tmp_path, tiny_model):
    path = save_checkpoint(tmp_path / "ck", tiny_model)
    (path / "model.safetensors").write_bytes(b"broken")
    proc = run("info", path, check_rc=2)
    assert "corrupt or truncated" in proc.stderr and "Traceback" not in proc.stderr


def test_info_refuses_weights_that_do_not_match_the_config(tmp_path, tiny_model):
    path = save_checkpoint(tmp_path / "ck", tiny_model)
    config = json.loads((path / "config.json").read_text())
    config["model"]["n_layer"] = 3
    (path / "config.json").write_text(json.dumps(config))
    proc = run("info", path, check_rc=2)
    assert "does not match config.json" in proc.stderr and "missing tensors blocks.2" in proc.stderr


def test_prepare_reads_a_config_file_with_flags_and_overrides_on_top(tmp_path):
    (tmp_path / "a.txt").write_text("one line\nanother line\n" * 30 + "\n".join(f"line {i}" for i in range(50)))
    (tmp_path / "prep.toml").write_text('tokenizer = "char"\nval_fraction = 0.3\n[read]\ntxt_documents = "file"\n')
    run("prepare", tmp_path / "a.txt", "--out", tmp_path / "d", "--config", tmp_path / "prep.toml",
        "--txt-documents", "line", "val_fraction=0.2", "--quiet")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["config"]["tokenizer"] == "char"  # from the file
    assert manifest["config"]["read"]["txt_documents"] == "line"  # the flag wins over the file
    assert manifest["config"]["val_fraction"] == 0.2  # and key=value over both
    assert manifest["read"]["documents"] == 110  # one per line: 60 repeated lines and 50 distinct


def test_prompt_too_long_exits_2(tmp_path, bpe_tokenizer):
    from gptkit import GPT, ModelConfig

    model = GPT(ModelConfig(vocab_size=300, block_size=16, n_layer=1, n_head=1, n_embd=8))
    path = save_checkpoint(tmp_path / "ck", model, bpe_tokenizer)
    proc = run("generate", path, "--prompt", "word " * 40, check_rc=2)
    assert "context window" in proc.stderr


def test_generate_options_and_interactive_mode(tmp_path, tiny_model, bpe_tokenizer):
    path = save_checkpoint(tmp_path / "ck", tiny_model, bpe_tokenizer)
    greedy = ("--temperature", "0", "--max-new-tokens", "20")
    free = run("generate", path, "--prompt", "The fox", *greedy).stdout.removesuffix("\n")
    stop = free[len("The fox") + 4:][:2]
    cut = run("generate", path, "--prompt", "The fox", *greedy, "--stop", stop).stdout.removesuffix("\n")
    assert cut == free[: free.index(stop, len("The fox"))]
    beam = beam_search_text(tiny_model, bpe_tokenizer, "The fox", 20, num_beams=3)
    assert run("generate", path, "--prompt", "The fox", *greedy, "--beams", "3").stdout == f"The fox{beam}\n"
    for extra in (["--dtype", "int8"], ["--min-p", "0.1", "--repetition-penalty", "1.2"]):
        assert run("generate", path, "--prompt", "The fox", *greedy, *extra).stdout.startswith("The fox")
    long_prompt = ("--prompt", "word " * 80, "--truncate", "--max-new-tokens", "3")
    assert run("generate", path, *long_prompt).stdout.startswith("word word")
    proc = run("generate", path, "-i", *greedy, stdin="The fox\n" + "word " * 80 + "\nThe fox\n\n")
    assert proc.stdout.count(free) == 2  # both prompts answered; the long one in between is an error line
    assert "context window" in proc.stderr and "Traceback" not in proc.stderr


def test_prepare_reports_counts_and_skips_an_unchanged_rerun(tmp_path):
    args = ("prepare", "builtin:python-docs", "--out", tmp_path / "pd", "--vocab-size", "512", "--quiet")
    out = run(*args).stdout
    assert "train" in out and "val" in out and "documents_in" in out
    assert "nothing to do" in run(*args).stderr


def test_unknown_arguments_exit_2():
    proc = run("info", "x", "--bogus", check_rc=2)
    assert "unrecognized arguments" in proc.stderr
