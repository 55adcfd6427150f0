"""Hugging Face Hub ids (`HuggingFaceTB/SmolLM2-135M-Instruct`): the files a gptkit import reads, fetched
through `huggingface_hub` into its cache (so a second import, or transformers, reuses them), at a pinned
revision when given. Everything after the download is the local-directory path.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import GptkitError

_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# What an import reads: config, weights (safetensors only: never unpickled), tokenizer files, chat template,
# and the model card (its licence).
_FILES = ["*.json", "*.safetensors", "*.txt", "*.jinja", "README.md"]


def is_repo_id(source: str) -> bool:
    """`owner/name`, and not a path that exists here (a local directory wins, as in transformers)."""
    return bool(_REPO_ID.fullmatch(source)) and not Path(source).exists()


def download(repo_id: str, revision: str | None = None) -> Path:
    """The local snapshot of a Hub model repository (downloaded, or from the cache when offline)."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as e:
        raise GptkitError(f"{repo_id} looks like a Hub id; downloading it needs huggingface_hub "
                          f"(pip install huggingface_hub), or pass a local directory") from e
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=_FILES))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as e:
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise GptkitError(f"cannot download {repo_id}{f'@{revision}' if revision else ''} from the Hugging Face "
                          f"Hub ({reason}); pass a local copy instead: a directory with config.json and "
                          f"*.safetensors, or a .gguf file") from e
