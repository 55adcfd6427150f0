"""The entry point: every subcommand has --help; user mistakes are one line and exit 2."""


import pytest

from gptkit import save_checkpoint
from gptkit.cli import build_parser, main
from tests.cli.conftest import subprocess_run


def test_every_subcommand_has_help(capsys):
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) >= {"info", "generate", "init", "import-hf", "export-hf", "prepare", "train", "demo",
                             "grow", "eval", "finetune", "translate"}
    for name in commands:
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0 and f"usage: gptkit {name}" in capsys.readouterr().out
    assert "usage: gptkit" in subprocess_run("--help").stdout  # and the real entry point starts


@pytest.mark.parametrize("args, message", [
    (["info", "no/such/dir"], "checkpoint not found"),
    (["generate", "no/such/dir", "--prompt", "x"], "checkpoint not found"),
    (["init", "OUT", "n_head=5", "n_embd=32"], "divisible by n_head"),
    (["init", "OUT", "--config", "missing.toml"], "neither a file nor a preset"),
    (["import-hf", "no/such/dir", "OUT"], "no config.json"),
    (["prepare", "no/such/file.txt", "--out", "OUT"], "corpus source not found"),
    (["train", "--config", "tiny", "data=no/such/dir", "out_dir=OUT"], "missing manifest.json"),
    (["train", "--config", "tiny", "batch_size=0"], "batch_size must be >= 1"),
    (["train", "data=x"], "--config with a preset (demo, demo-modern, gpt2-124m"),
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


def test_unknown_arguments_exit_2_from_a_shell():
    proc = subprocess_run("info", "x", "--bogus", code=2)
    assert "unrecognized arguments" in proc.stderr


def test_help_lists_commands_in_workflow_order_and_every_flag_says_what_it_does(capsys):
    from gptkit.cli.main import WORKFLOW

    with pytest.raises(SystemExit):
        main(["--help"])
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("    ")
              and not line.startswith("     ")]
    assert listed == list(WORKFLOW) and listed[0] == "demo" and listed[-1] == "migrate"
    for name, command in build_parser()._subparsers._group_actions[0].choices.items():
        bare = [a.option_strings[0] for a in command._actions if a.option_strings and not a.help]
        assert bare == [], (name, bare)


def test_a_checkpoint_without_a_tokenizer_says_how_to_give_it_one(tmp_path, cli):
    cli("init", tmp_path / "x", "--config", "tiny")
    err = cli("generate", tmp_path / "x", "--prompt", "hello", code=2).err
    assert "no tokenizer.json" in err and "gptkit init OUT --tokenizer" in err and len(err.splitlines()) == 1
    cli("init", tmp_path / "y", "--config", "tiny", "--tokenizer", tmp_path / "x", code=2)  # none there either
