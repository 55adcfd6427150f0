"""Every kind of output (checkpoint, shards, HF export, index, adapters) is a plain directory that survives
what users do to folders: cp -r, shutil.copytree, mv, tar, a TemporaryDirectory, and rewrites of the original."""

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
import torch

from gptkit import GPT, ModelConfig, load_checkpoint, save_checkpoint, to_hf
from gptkit.cli import main
from gptkit.data import PrepareConfig, TokenShards, prepare
from gptkit.hf import from_hf
from gptkit.lora import LoraConfig, apply_lora, load_adapters, save_adapters
from tests.conftest import DOCUMENTS, SAMPLE_TEXT


def _model(version: int) -> GPT:
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=320, block_size=64, n_layer=2, n_head=4, n_embd=32))
    with torch.no_grad():
        model.wte.weight[0, 0] = version
    return model


class Checkpoint:
    files = {"config.json", "model.safetensors", "tokenizer.json"}

    def write(self, path, version, tokenizer, encoder):
        save_checkpoint(path, _model(version), tokenizer, extra={"version": version})

    def read(self, path):
        ckpt = load_checkpoint(path)
        assert ckpt.model.wte.weight[0, 0].item() == ckpt.meta["version"]
        return ckpt.meta["version"]


class Shards:
    files = {"manifest.json", "tokenizer.json", "train_000.bin", "val_000.bin"}

    def write(self, path, version, tokenizer, encoder):
        corpus = Path(path).parent / f"corpus-{version}.txt"
        corpus.write_text("\n\n".join(f"Paragraph {i}: {SAMPLE_TEXT[i % 4]}" for i in range(40 + version)))
        prepare([str(corpus)], path, PrepareConfig(vocab_size=300, val_fraction=0.2), tokenizer=tokenizer)

    def read(self, path):
        return TokenShards(path, "train").manifest["read"]["documents"] - 40


class Export:
    files = {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "vocab.json",
             "merges.txt", "tokenizer_config.json", "README.md"}

    def write(self, path, version, tokenizer, encoder):
        to_hf(_model(version), tokenizer, path)

    def read(self, path):
        model, _ = from_hf(path)
        return int(model.wte.weight[0, 0].item())


class SearchIndex:
    files = {"index.json", "chunks.jsonl", "vectors.faiss", "bm25"}

    def write(self, path, version, tokenizer, encoder):
        from gptkit.search.index import Index, IndexSettings

        docs = list(DOCUMENTS.items())[: 2 + version]
        Index.build(docs, encoder, IndexSettings(chunk_tokens=0)).save(path)

    def read(self, path):
        from gptkit.search.index import Index

        return len(Index.load(path).chunks) - 2


class Adapters:
    files = {"adapter_config.json", "adapter_model.safetensors"}

    def write(self, path, version, tokenizer, encoder):
        model = apply_lora(_model(0), LoraConfig(rank=version + 1))
        save_adapters(model, path)

    def read(self, path):
        model = load_adapters(_model(0), path)
        return model.blocks[0].attn.qkv.rank - 1


KINDS = [Checkpoint(), Shards(), Export(), SearchIndex(), Adapters()]
IDS = ["checkpoint", "shards", "hf-export", "index", "adapters"]


@pytest.fixture(scope="module")
def encoder(encoder_checkpoint):
    from gptkit.search.embed import load_encoder

    return load_encoder(encoder_checkpoint, dtype="fp32")


@pytest.fixture(params=KINDS, ids=IDS)
def kind(request, bpe_tokenizer, encoder):
    output = request.param
    return output, lambda path, version: output.write(path, version, bpe_tokenizer, encoder)


def test_an_output_is_a_plain_directory_that_tar_archives_whole(kind, tmp_path):
    output, write = kind
    write(tmp_path / "out", 1)
    assert (tmp_path / "out").is_dir() and not (tmp_path / "out").is_symlink()
    assert {p.name for p in (tmp_path / "out").iterdir()} == output.files
    with tarfile.open(tmp_path / "out.tgz", "w:gz") as tar:
        tar.add(tmp_path / "out", arcname="out")
    (tmp_path / "restored").mkdir()
    with tarfile.open(tmp_path / "out.tgz") as tar:
        names = {Path(n).parts[1] for n in tar.getnames() if len(Path(n).parts) > 1}
        tar.extractall(tmp_path / "restored", filter="data")
    assert names == output.files
    assert output.read(tmp_path / "restored" / "out") == 1


def test_copies_stay_whole_after_the_original_is_rewritten(kind, tmp_path):
    output, write = kind
    write(tmp_path / "out", 1)
    subprocess.run(["cp", "-r", str(tmp_path / "out"), str(tmp_path / "backup")], check=True)
    shutil.copytree(tmp_path / "out", tmp_path / "backup2")
    write(tmp_path / "out", 2)
    assert output.read(tmp_path / "out") == 2
    assert output.read(tmp_path / "backup") == 1 and output.read(tmp_path / "backup2") == 1
    assert {p.name for p in (tmp_path / "backup").iterdir()} == output.files


def test_a_moved_output_stays_loadable(kind, tmp_path):
    output, write = kind
    write(tmp_path / "out", 1)
    (tmp_path / "models").mkdir()
    subprocess.run(["mv", str(tmp_path / "out"), str(tmp_path / "models")], check=True)
    assert output.read(tmp_path / "models" / "out") == 1
    assert {p.name for p in tmp_path.iterdir()} - {"models"} <= {p.name for p in tmp_path.glob("corpus-*")}


def test_an_existing_empty_directory_is_filled_in_place_and_temporary_directories_clean_up(kind, tmp_path):
    output, write = kind
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        inode = os.stat(tmp).st_ino
        write(tmp, 1)
        assert os.stat(tmp).st_ino == inode and not Path(tmp).is_symlink()
        assert {p.name for p in Path(tmp).iterdir()} == output.files
        assert output.read(tmp) == 1
    assert not Path(tmp).exists()  # the context manager's clean-up raised nothing


@pytest.mark.parametrize("mask, files, dirs", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_modes_follow_the_umask(kind, tmp_path, mask, files, dirs):
    output, write = kind
    previous = os.umask(mask)
    try:
        write(tmp_path / "out", 1)
    finally:
        os.umask(previous)
    root = tmp_path / "out"
    assert root.stat().st_mode & 0o777 == dirs
    for p in root.rglob("*"):
        assert p.stat().st_mode & 0o777 == (dirs if p.is_dir() else files), p


def test_a_backup_survives_init_force_and_a_training_runs_next_save(tmp_path, monkeypatch, bpe_tokenizer):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "ck", "--config", "tiny"]) == 0
    subprocess.run(["cp", "-r", "ck", "backup"], check=True)
    assert main(["init", "ck", "--force", "--config", "tiny", "n_embd=32", "n_head=4"]) == 0
    assert load_checkpoint("backup").model.config.n_embd != 32 and load_checkpoint("ck").model.config.n_embd == 32

    Path("corpus.txt").write_text("\n\n".join(f"Paragraph {i}: {SAMPLE_TEXT[i % 4]}" for i in range(200)))
    prepare(["corpus.txt"], "data", PrepareConfig(vocab_size=300, val_fraction=0.2))
    run = ["train", "--config", "tiny", "--quiet", "data=data", "out_dir=run", "model.n_layer=1", "model.n_embd=16",
           "model.n_head=2", "model.block_size=16", "batch_size=2", "eval_interval=2", "eval_batches=1",
           "checkpoint_interval=2", "keep_last=1", "dtype=fp32", "device=cpu"]
    assert main([*run, "max_steps=2"]) == 0
    shutil.copytree("run/ckpt-000002", "saved")
    assert main([*run, "max_steps=4"]) == 0  # saves ckpt-000004 and prunes ckpt-000002
    assert not Path("run/ckpt-000002").exists() and load_checkpoint("saved").meta["step"] == 2
    assert not any(p.name.startswith(".ckpt") for p in Path("run").iterdir())
