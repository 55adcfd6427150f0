"""info, init, import-hf, export-hf, grow."""

import json
import re

import pytest
import torch

from gptkit import load_checkpoint, save_checkpoint


def test_init_info_generate(tmp_path, bpe_tokenizer, cli):
    bpe_tokenizer.save(tmp_path / "tokenizer.json")
    ck = tmp_path / "ck"
    cli("init", ck, "--config", "tiny", "vocab_size=300", "n_layer=1", "--tokenizer", tmp_path / "tokenizer.json")
    info = cli("info", ck).out
    assert re.search(r"^n_layer +1$", info, re.M) and "parameters" in info and "tokenizer.json" in info
    n_params = load_checkpoint(ck).model.num_params()
    assert re.search(rf"^parameters +{n_params:,} ", info, re.M)
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


def test_info_refuses_weights_that_do_not_match_the_config(tmp_path, tiny_model, cli):
    path = save_checkpoint(tmp_path / "ck", tiny_model)
    config = json.loads((path / "config.json").read_text())
    config["model"]["n_layer"] = 3
    (path / "config.json").write_text(json.dumps(config))
    err = cli("info", path, code=2).err
    assert "does not match config.json" in err and "missing tensors blocks.2" in err


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
