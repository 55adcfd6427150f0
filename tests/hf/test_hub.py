"""Hub ids: what counts as one, and a download that cannot happen is one clear error (the download itself is
`huggingface_hub`'s; the CLI test imports a model from a Hub cache laid out as it writes one)."""

import pytest

from gptkit import GptkitError
from gptkit.hf.hub import download, is_repo_id


def test_an_owner_and_a_name_is_a_hub_id_unless_such_a_path_exists(tmp_path, monkeypatch):
    assert is_repo_id("HuggingFaceTB/SmolLM2-135M-Instruct") and is_repo_id("gpt2-org/gpt2.v1")
    assert not is_repo_id("runs/a/b") and not is_repo_id("/abs/path") and not is_repo_id("gpt2")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "model").mkdir(parents=True)
    assert not is_repo_id("org/model")  # a local directory wins, as in transformers


def test_offline_without_the_model_cached_is_one_line_naming_the_id(tmp_path, monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(GptkitError, match=r"cannot download someone/model@v1 from the Hugging Face Hub") as e:
        download("someone/model", "v1")
    assert "\n" not in str(e.value) and "a .gguf file" in str(e.value)
