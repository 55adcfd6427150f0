"""Decoding speed: gptkit vs llama.cpp vs transformers' `generate` vs CTranslate2, same weights, side by side.

    python benchmarks/generate.py [--batches 1,8] [--prompts 32,512] [--new 128] [--dtypes fp32,bf16,int8,int4]
                                  [--engines gptkit,llama.cpp,transformers,ctranslate2] [--repeats 3] [--json]
                                  [--checkpoint CKPT]
    python benchmarks/generate.py --quality CKPT [--text ../shared/data/tinyshakespeare.txt]

A 124M-shaped GPT-2 (12 x 768, 50257 tokens) with random weights, or --checkpoint's model (for example
SmolLM2-135M-Instruct from `gptkit import-gguf`). Every case is greedy, runs to exactly --new tokens, and
is timed twice: for 1 new token (time to first token, TTFT: the prefill) and for all of them; decode
tokens/s is batch * (new - 1) / (full - TTFT), best of --repeats. Each engine runs in its own process
(CTranslate2's thread pool spins after a call and slows anything sharing its process), one after the
other for every case, with as many threads as torch uses.

Each engine reads the same weights in its own format. llama.cpp (`pip install llama-cpp-python`) runs
gptkit's GGUF export: f32, bf16, q8_0 for int8 and q4_0 for int4, at batch 1 (llama-cpp-python decodes one
sequence). CTranslate2 (`pip install ctranslate2`) loads a conversion of gptkit's `export-hf` directory,
in fp32 and int8. transformers runs fp32 and bf16 (it has no CPU int8 or int4 path). bf16 on a CPU
without AMX/AVX512-BF16 is emulated and very slow, so it is left out there unless asked for. An engine
that is not installed is left out with a note.

The reference is the memory-bandwidth bound at batch 1: each decoded token reads every
weight once, so tokens/s <= bandwidth / model bytes (the bandwidth is measured here by
summing a 1 GB tensor; int4 counts half a byte a weight, without its scales). --json prints
the rows as a JSON list (engine, dtype, batch, prompt, decode_tok_s, ttft_s, bound_tok_s).

--quality CKPT reports what each dtype costs in quality: perplexity of a trained checkpoint
on the last 10% of --text, for each of --quality-dtypes, and through llama.cpp on its own
f32, q8_0 and q4_0 files of the same weights where llama-cpp-python is installed.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gptkit import GPT, ModelConfig, Tokenizer, load_checkpoint, save_checkpoint, to_hf  # noqa: E402
from gptkit.generate import Decoding, generate_batch  # noqa: E402
from gptkit.llamacpp import to_gguf  # noqa: E402
from gptkit.quantize import for_inference  # noqa: E402
from gptkit.runtime import fast_bf16  # noqa: E402

CT2_TYPES = {"fp32": "float32", "int8": "int8"}  # CTranslate2's CPU compute types for gptkit's dtype names
GGUF_TYPES = {"fp32": "f32", "bf16": "bf16", "int8": "q8_0", "int4": "q4_0"}  # the llama.cpp file for each


def as_dtype(model: GPT, name: str) -> GPT:
    return for_inference(copy.deepcopy(model), name)


def bandwidth(numel: int = 256 * 2**20) -> float:
    """Read bandwidth in bytes/s: the best of a few sums over `numel` floats (1 GB)."""
    x = torch.ones(numel)
    x.sum()
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best


def model_bytes(model: GPT, name: str) -> int:
    """Bytes read per decoded token: every weight except the position table (one row of wte is the lookup)."""
    n = model.num_params() - (0 if model.wpe is None else model.wpe.weight.numel())
    return int(n * {"fp32": 4, "bf16": 2, "int8": 1, "int4": 0.5}[name])


# -- one arm: an engine and a dtype in a process of its own -----------------------------------


def _gptkit_timer(folder: Path, dtype: str):
    model = for_inference(load_checkpoint(folder / "gptkit").model, dtype)

    def run(prompts, new):
        start = time.perf_counter()
        out = generate_batch(model, prompts, Decoding(new, temperature=0))
        assert all(len(o) == new for o in out)
        return time.perf_counter() - start
    return run


def _transformers_timer(folder: Path, dtype: str):
    import transformers

    transformers.logging.set_verbosity_error()
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder / "hf", attn_implementation="sdpa").eval()
    hf = hf.to(torch.bfloat16 if dtype == "bf16" else torch.float32)

    def run(prompts, new):
        idx = torch.tensor(prompts)
        start = time.perf_counter()
        with torch.inference_mode():
            out = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=new, min_new_tokens=new,
                              do_sample=False, pad_token_id=0)
        assert out.shape[1] == idx.shape[1] + new
        return time.perf_counter() - start
    return run


def _ctranslate2_timer(folder: Path, dtype: str):
    import ctranslate2

    generator = ctranslate2.Generator(str(folder / f"ct2-{dtype}"), device="cpu", compute_type=CT2_TYPES[dtype],
                                      intra_threads=torch.get_num_threads())

    def run(prompts, new):
        tokens = [[f"t{i}" for i in p] for p in prompts]
        start = time.perf_counter()
        out = generator.generate_batch(tokens, max_length=new, min_length=new, sampling_topk=1, end_token=[],
                                       include_prompt_in_result=False)
        assert all(len(r.sequences_ids[0]) == new for r in out)
        return time.perf_counter() - start
    return run


def _llamacpp_timer(folder: Path, dtype: str):
    """llama.cpp through llama-cpp-python on gptkit's own GGUF export of the same weights; batch 1 only."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(folder / f"model-{GGUF_TYPES[dtype]}.gguf"), n_ctx=1024, n_batch=512,
                          n_threads=torch.get_num_threads(), verbose=False)

    def run(prompts, new):
        assert len(prompts) == 1, "the llama.cpp arm decodes one sequence"
        llm.reset()  # no prefix reuse: every run reads its prompt
        start = time.perf_counter()
        for n, _ in enumerate(llm.generate(prompts[0], top_k=1, temp=0.0, reset=False), 1):
            if n == new:  # a fixed count, whatever the token: end-of-text does not stop llama.cpp's generate
                break
        return time.perf_counter() - start
    return run


TIMERS = {"gptkit": _gptkit_timer, "transformers": _transformers_timer, "ctranslate2": _ctranslate2_timer,
          "llama.cpp": _llamacpp_timer}


def arm_main(args) -> None:
    """--arm ENGINE: time every case of one engine and dtype; print one JSON row per case."""
    spec = json.loads(args.arm)
    run = TIMERS[spec["engine"]](Path(spec["folder"]), spec["dtype"])
    for batch, length in spec["cases"]:
        if spec["engine"] == "llama.cpp" and batch > 1:
            continue
        prompts = torch.randint(0, spec["vocab"] - 1, (batch, length),
                                generator=torch.Generator().manual_seed(batch * 1000 + length)).tolist()
        run(prompts, 1), run(prompts, 8)  # warm-up: the shapes of both timings, the allocator, the thread pool
        ttft = min(run(prompts, 1) for _ in range(spec["repeats"]))
        full = min(run(prompts, spec["new"]) for _ in range(spec["repeats"]))
        print(json.dumps({"batch": batch, "prompt": length, "ttft_s": ttft,
                          "decode_tok_s": batch * (spec["new"] - 1) / max(full - ttft, 1e-9)}), flush=True)


# -- the parent: the weights, the arms, the table --------------------------------------------


def _prepare(folder: Path, args, engines: list[str], dtypes: list[str]) -> GPT:
    """The model (random weights, or --checkpoint's) as a gptkit checkpoint, a transformers directory, CTranslate2
    conversions and GGUF files."""
    torch.manual_seed(0)
    tokenizer = None
    if args.checkpoint:
        ckpt = load_checkpoint(args.checkpoint)
        model, tokenizer = ckpt.model.float().eval(), ckpt.tokenizer
        args.vocab = model.config.vocab_size
    else:
        model = GPT(ModelConfig(vocab_size=args.vocab, block_size=1024, n_layer=args.layers, n_head=args.heads,
                                n_embd=args.embd)).eval()
    save_checkpoint(folder / "gptkit", model)
    to_hf(model, None, folder / "hf")
    if "ctranslate2" in engines:
        import transformers
        from ctranslate2.converters import TransformersConverter
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models

        # CTranslate2 reads a vocabulary from the tokenizer: one made-up token per id
        words = HFTokenizer(models.WordLevel({f"t{i}": i for i in range(args.vocab)}, unk_token="t0"))
        eot = f"t{args.vocab - 1}"
        transformers.PreTrainedTokenizerFast(tokenizer_object=words, unk_token="t0", bos_token=eot,
                                             eos_token=eot).save_pretrained(folder / "hf")
        for name in (d for d in dtypes if d in CT2_TYPES):
            TransformersConverter(str(folder / "hf")).convert(str(folder / f"ct2-{name}"),
                                                             quantization=CT2_TYPES[name], force=True)
    if "llama.cpp" in engines:
        # llama.cpp reads a tokenizer from the file: the checkpoint's, or a small BPE (under 300 ids) padded to
        # the model's rows
        tokenizer = tokenizer or Tokenizer.train_bpe(["the quick brown fox jumps over the lazy dog"] * 4,
                                                     vocab_size=300)
        for name in dtypes:
            to_gguf(model, tokenizer, folder / f"model-{GGUF_TYPES[name]}.gguf", GGUF_TYPES[name])
    return model


def _runs(engine: str, dtype: str) -> bool:
    return dtype in {"gptkit": ("fp32", "bf16", "int8", "int4"), "transformers": ("fp32", "bf16"),
                     "ctranslate2": tuple(CT2_TYPES), "llama.cpp": tuple(GGUF_TYPES)}[engine]


def speed(args) -> None:
    engines = args.engines.split(",")
    dtypes = args.dtypes.split(",") if args.dtypes else ["fp32", "int8", "int4"] + (["bf16"] if fast_bf16(
        torch.device("cpu")) else [])
    cases = [(int(b), int(p)) for b in args.batches.split(",") for p in args.prompts.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        model = _prepare(Path(d), args, engines, dtypes)
        bw = bandwidth(2**20 if args.smoke else 256 * 2**20)
        for dtype in dtypes:
            for engine in (e for e in engines if _runs(e, dtype)):
                spec = {"engine": engine, "folder": d, "dtype": dtype, "cases": cases, "new": args.new,
                        "repeats": args.repeats, "vocab": args.vocab}
                out = subprocess.run([sys.executable, __file__, "--arm", json.dumps(spec)], capture_output=True,
                                     text=True)
                if out.returncode != 0:
                    sys.exit(f"the {engine} {dtype} arm failed:\n{out.stderr[-3000:]}")
                bound = bw / model_bytes(model, dtype)
                rows += [{"engine": engine, "dtype": dtype, **json.loads(line), "bound_tok_s": bound}
                         for line in out.stdout.splitlines() if line.startswith("{")]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    _table(rows, model, bw)


def _table(rows: list[dict], model: GPT, bw: float) -> None:
    print(f"# generate: {model.num_params() / 1e6:.1f}M params, greedy, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; memory bandwidth {bw / 1e9:.1f} GB/s")
    print("| dtype | batch | prompt | engine | TTFT ms | decode tok/s | share of the batch-1 bound | gptkit vs it |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ours = next(o for o in rows if o["engine"] == "gptkit" and all(o[k] == r[k] for k in
                                                                       ("dtype", "batch", "prompt")))
        share = f"{r['decode_tok_s'] / r['bound_tok_s']:.0%}" if r["batch"] == 1 else "-"
        versus = "" if r["engine"] == "gptkit" else f"{ours['decode_tok_s'] / r['decode_tok_s']:.2f}x"
        print(f"| {r['dtype']} | {r['batch']} | {r['prompt']} | {r['engine']} | {r['ttft_s'] * 1e3:.0f} | "
              f"{r['decode_tok_s']:.1f} | {share} | {versus} |")


def quality(args) -> None:
    """Perplexity of a trained checkpoint on the tail of a text, per dtype (and per llama.cpp file type)."""
    text_path = Path(args.text)
    if not text_path.is_file():
        sys.exit(f"no text at {text_path}: pass --text FILE")
    ckpt = load_checkpoint(args.quality)
    text = text_path.read_text(encoding="utf-8")
    ids = ckpt.tokenizer.encode(text[int(len(text) * 0.9):])
    block = min(args.window or ckpt.model.config.block_size, ckpt.model.config.block_size)
    windows = torch.tensor(ids[: len(ids) // (block + 1) * (block + 1)]).view(-1, block + 1)[: args.windows]
    print(f"# perplexity of {args.quality} on the last 10% of {text_path.name} "
          f"({len(windows)} windows of {block} tokens)")
    print("| engine | weights | loss | perplexity | delta vs fp32 |")
    print("|---|---|---|---|---|")
    base = None
    for name in args.quality_dtypes.split(","):
        model = as_dtype(ckpt.model.eval(), name)
        with torch.inference_mode():  # every window weighs the same, the last, smaller chunk's too
            loss = sum(float(model(chunk[:, :-1], chunk[:, 1:])) * len(chunk) for chunk in windows.split(8)) / len(
                windows)
        base = loss if base is None else base
        print(f"| gptkit | {name} | {loss:.4f} | {math.exp(loss):.3f} | {math.exp(loss) / math.exp(base) - 1:+.2%} |",
              flush=True)
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("# llama-cpp-python is not installed: llama.cpp's own files are left out", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as d:
        for kind in ("f32", "q8_0", "q4_0"):
            path = to_gguf(ckpt.model.float(), ckpt.tokenizer, Path(d) / f"{kind}.gguf", kind)
            loss = _llamacpp_loss(path, windows)
            print(f"| llama.cpp | {kind} | {loss:.4f} | {math.exp(loss):.3f} | "
                  f"{math.exp(loss) / math.exp(base) - 1:+.2%} |", flush=True)


def _llamacpp_loss(path: Path, windows: torch.Tensor) -> float:
    """Mean next-token cross-entropy of llama.cpp running the GGUF file `path` over each window."""
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=windows.shape[1], n_batch=512, logits_all=True,
                          n_threads=torch.get_num_threads(), verbose=False)
    losses = []
    for window in windows.tolist():
        llm.reset()
        llm.eval(window[:-1])
        logits = torch.from_numpy(llm.scores[: len(window) - 1].copy())
        losses.append(float(torch.nn.functional.cross_entropy(logits, torch.tensor(window[1:]))))
    return statistics.fmean(losses)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", default="1,8")
    p.add_argument("--prompts", default="32,512")
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--dtypes", default="", help="default: fp32,int8,int4, plus bf16 where the CPU is fast at it")
    p.add_argument("--engines", default="gptkit,llama.cpp,transformers,ctranslate2")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.add_argument("--arm", help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per case (the best counts)")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--embd", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--quality", metavar="CKPT", help="report perplexity per dtype for this checkpoint instead")
    p.add_argument("--quality-dtypes", default="fp32,bf16,int8,int4")
    p.add_argument("--text", default=str(Path(__file__).resolve().parents[2] / "shared/data/tinyshakespeare.txt"))
    p.add_argument("--windows", type=int, default=200)
    p.add_argument("--window", type=int, default=0, help="--quality's window length (default: the context)")
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--checkpoint", metavar="CKPT", help="time this checkpoint's weights (e.g. an import-gguf of "
                   "SmolLM2) instead of the random 124M GPT-2 shape")
    p.add_argument("--smoke", action="store_true",
                   help="a tiny run that only checks the script works (seconds; its figures mean nothing)")
    args = p.parse_args()
    if args.arm:
        arm_main(args)
        return
    if args.smoke:
        args.layers, args.embd, args.heads, args.vocab, args.new, args.repeats = 1, 16, 2, 320, 4, 1
        args.batches, args.prompts, args.dtypes = "1,2", "8", "fp32,int8,int4"
    if args.quality:
        quality(args)
        return
    try:
        import transformers  # noqa: F401
    except ImportError:
        sys.exit("this benchmark needs transformers: pip install 'gptkit[hf]'")
    for engine, module, install in (("ctranslate2", "ctranslate2", "pip install ctranslate2"),
                                    ("llama.cpp", "llama_cpp", "pip install llama-cpp-python")):
        try:
            __import__(module)
        except ImportError:
            args.engines = ",".join(e for e in args.engines.split(",") if e != engine)
            print(f"# {engine} is not installed ({install}): its arm is left out", file=sys.stderr)
    speed(args)


if __name__ == "__main__":
    main()
