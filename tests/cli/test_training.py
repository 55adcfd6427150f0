"""prepare, train and finetune from the command line."""

import json


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


def test_prepare_reports_counts_and_skips_an_unchanged_rerun(tmp_path, cli):
    args = ("prepare", "builtin:python-docs", "--out", tmp_path / "pd", "--vocab-size", "512", "--quiet")
    out = cli(*args).out
    assert "train" in out and "val" in out and "documents_in" in out
    assert "nothing to do" in cli(*args).err


def test_finetune_then_translate_and_score_from_the_command_line(translation_files, tmp_path, cli):
    d = translation_files
    cli("finetune", "--quiet", f"data={d}/train.{{lang}}", f"tokenizer={d}/tokenizer.json", "val_examples=5",
        f"out_dir={tmp_path}/run", "n_layer=1", "n_embd=32", "n_head=2", "block_size=32", "batch_size=8",
        "max_steps=6", "eval_interval=3", "device=cpu", "dtype=fp32")
    best = tmp_path / "run" / "best"
    assert json.loads((best / "config.json").read_text())["task"]["format"] == "translation"
    out = cli("translate", best, "a b", "c d", "--max-new-tokens", "6").out
    assert len(out.splitlines()) == 2  # one line per sentence, whatever the tiny model says
    sampled = ("translate", best, "a b", "--max-new-tokens", "6", "--temperature", "0.9", "--seed", "3")
    assert cli(*sampled).out == cli(*sampled).out  # sampling with a seed repeats
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


def test_demo_runs_its_three_stages(tmp_path, cli):
    out = cli("demo", "--out", tmp_path / "demo", "max_steps=2", "eval_interval=2").out
    assert "1/3 prepare" in out and "2/3 train" in out and "3/3 generate" in out
    assert (tmp_path / "demo" / "train" / "best" / "model.safetensors").is_file()


def test_a_llama_style_model_trains_generates_chats_with_lora_and_exports(tmp_path, cli):
    """The modern preset end to end: train, generate, a LoRA chat fine-tune, chat, and an export that
    transformers runs with the same logits and the chat template."""
    import torch
    import transformers

    from gptkit import load_checkpoint

    cli("prepare", "builtin:python-docs", "--out", tmp_path / "data", "--vocab-size", "300", "--quiet")
    tiny = ["n_layer=2", "n_embd=32", "n_head=4", "n_kv_head=2", "intermediate_size=64", "block_size=64",
            "batch_size=4", "max_steps=6", "eval_interval=3", "eval_batches=1", "device=cpu", "dtype=fp32"]
    cli("train", "--config", "demo-modern", "--quiet", f"data={tmp_path / 'data'}", f"out_dir={tmp_path / 'run'}",
        *tiny)
    base = tmp_path / "run" / "best"
    assert load_checkpoint(base).model.config.positions == "rope"
    assert cli("generate", base, "--prompt", "def", "--max-new-tokens", "5", "--seed", "1").out.startswith("def")
    chats = [{"messages": [{"role": "user", "content": f"say {w}"}, {"role": "assistant", "content": w}]}
             for w in ("yes", "no", "maybe", "def", "class") * 6]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    cli("finetune", "--quiet", f"data={tmp_path / 'chat.jsonl'}", "format=chat", f"init={base}", "lora.rank=8",
        "lora.targets=[\"q\",\"v\",\"gate\",\"down\"]", f"out_dir={tmp_path / 'chat'}", "max_steps=4",
        "eval_interval=2", "val_examples=4", "batch_size=4", "device=cpu", "dtype=fp32")
    tuned = tmp_path / "chat" / "best"
    assert cli("generate", tuned, "--chat", "--prompt", "say yes", "--max-new-tokens", "4").err == ""
    assert (tmp_path / "chat" / "best-adapter" / "adapter_config.json").is_file()
    cli("export-hf", tuned, tmp_path / "hf")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(theirs).__name__ == "LlamaForCausalLM"
    idx = torch.randint(0, 300, (1, 20))
    with torch.no_grad():
        assert (theirs(idx).logits - load_checkpoint(tuned).model(idx)).abs().max() <= 1e-5
    messages = [{"role": "user", "content": "say yes"}]
    rendered = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf").apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True)
    assert rendered == "<|user|>\nsay yes\n<|assistant|>\n"


def test_train_step_lines_reach_a_pipe_while_it_runs(tmp_path, cli):
    """`gptkit train ... > log`: each log_interval line arrives as printed, not when the process exits. The run
    has far more steps than it can take here, and is stopped once its first line is read; counting the steps
    it had logged by then tells line buffering (1 or 2) from a block buffer filling up (over 100 lines)."""
    import os
    import signal
    import subprocess
    import sys
    import threading

    cli("prepare", "builtin:python-docs", "--out", tmp_path / "data", "--vocab-size", "300", "--quiet")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gptkit", "train", "--config", "tiny", f"data={tmp_path / 'data'}",
         f"out_dir={tmp_path / 'run'}", "max_steps=1000000", "log_interval=1", "eval_interval=1000000",
         "checkpoint_interval=1000000", "batch_size=32", "device=cpu", "dtype=fp32"],  # steps of tens of ms
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"})  # as on a user's machine
    watchdog = threading.Timer(600, proc.kill)  # only a broken build gets here: fail instead of hanging
    watchdog.start()
    try:
        first = proc.stdout.readline()
        proc.send_signal(signal.SIGSTOP)  # freeze it: the count below is what it had logged by then
        logged = (tmp_path / "run" / "metrics.jsonl").read_text().count("\n")
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait()
    assert first.startswith("step 1/1000000: loss ") and "tok/s" in first
    assert logged < 100
