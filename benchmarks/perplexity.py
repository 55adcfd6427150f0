"""Sliding-window perplexity: gptkit.eval.perplexity vs Hugging Face's perplexity-guide loop on the same weights.

    python benchmarks/perplexity.py [--text ../shared/data/wikitext-2/valid.txt] [--checkpoint DIR]
                                    [--tokens 20000] [--strides 256,128,64]

Without --checkpoint, a 6 x 384 model (context 256) is initialised at random with
an 8k BPE trained on the text: the figures compare the two implementations (the
same sum of log-likelihoods, and time), not a model. The peer is transformers'
GPT2LMHeadModel loaded from gptkit's export, run over the same windows as the
guide's loop (block_size tokens in, only the targets the previous window did not
score are counted), its logits scored the same way. fp32, one process.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from gptkit import GPT, ModelConfig, Tokenizer, load_checkpoint, to_hf  # noqa: E402
from gptkit.eval import perplexity  # noqa: E402


def hf_perplexity(model, ids: list[int], window: int, stride: int) -> float:
    """Summed NLL from transformers' logits over the same windows: `window` tokens in, the new targets scored."""
    tokens = torch.tensor(ids)
    nll, scored_until = 0.0, 1
    with torch.no_grad():
        for begin in range(0, len(ids) - 1, stride):
            end = min(begin + window + 1, len(ids))
            new = end - scored_until
            logits = model(tokens[None, begin:end - 1]).logits[0]
            nll += F.cross_entropy(logits[-new:], tokens[end - new:end], reduction="sum").item()
            scored_until = end
            if end == len(ids):
                break
    return nll


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", default=str(ROOT.parent / "shared" / "data" / "wikitext-2" / "valid.txt"))
    p.add_argument("--checkpoint", help="score this checkpoint (with its tokenizer) instead of a random model")
    p.add_argument("--tokens", type=int, default=20000, help="score the first N tokens of the text")
    p.add_argument("--strides", default="256,128,64")
    p.add_argument("--smoke", action="store_true",
                   help="a tiny run that only checks the script works (seconds; its figures mean nothing)")
    args = p.parse_args()
    shape = dict(block_size=256, n_layer=6, n_head=6, n_embd=384)
    vocab = 8192
    if args.smoke:
        import smoke

        args.text = str(smoke.datasets(smoke.workdir()) / "wikitext-2" / "valid.txt")
        args.tokens, args.strides, vocab = 500, "32,16", 300
        shape = dict(block_size=32, n_layer=1, n_head=2, n_embd=16)
    if not Path(args.text).is_file():
        sys.exit(f"{args.text} not found: pass --text (see shared/data/README.md)")
    from transformers import GPT2LMHeadModel

    text = Path(args.text).read_text(encoding="utf-8")
    torch.manual_seed(0)
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        model, tokenizer = ckpt.model, ckpt.tokenizer
    else:
        tokenizer = Tokenizer.train_bpe([text], vocab_size=vocab)
        model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size, **shape))
    ids = [i for piece in tokenizer.encode_long(text) for i in piece][: args.tokens]
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        peer = GPT2LMHeadModel.from_pretrained(to_hf(model, None, Path(tmp) / "hf")).eval()
    window = model.config.block_size
    c = model.config
    print(f"# {c.n_layer} x {c.n_embd}, context {window}, {len(ids):,} tokens of {Path(args.text).name}, fp32, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| stride | gptkit nats/token | transformers nats/token | difference | gptkit s | transformers s "
          "| speed-up |")
    print("|---|---|---|---|---|---|---|")
    for stride in (int(s) for s in args.strides.split(",")):
        start = time.perf_counter()
        ours = perplexity(model, ids, stride)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        theirs = hf_perplexity(peer, ids, window, stride) / ours.tokens
        theirs_s = time.perf_counter() - start
        print(f"| {stride} | {ours.nats_per_token:.5f} | {theirs:.5f} | {abs(ours.nats_per_token - theirs):.1e} | "
              f"{ours_s:.1f} | {theirs_s:.1f} | {theirs_s / ours_s:.2f}x |")
    print(f"perplexity at the last stride: {ours.ppl:.2f} (exp {ours.nats_per_token:.4f}); "
          f"a uniform guess would be {math.exp(math.log(c.vocab_size)):.0f}")


if __name__ == "__main__":
    main()
