"""Commands on fine-tuned checkpoints: eval (perplexity on a text, or a task's scores) and translate; the
decoding flags and checkpoint loading that the other task commands share."""

from __future__ import annotations

import sys
import typing
from pathlib import Path

from ..errors import GptkitError
from ..runtime import InferenceDtype
from .common import check_out_file, read_text_file, utf8, write_json
from .search import add_encoder_flags, add_search_flags


def _cmd_eval(args) -> None:
    given = [flag for flag in ("text", "task", "retrieval", "sts") if getattr(args, flag) is not None]
    if not given or (len(given) > 1 and set(given) != {"retrieval", "sts"}):
        raise GptkitError("say what to evaluate on: --text FILE (perplexity), --task FILE (a task's scores), or "
                          "--retrieval BEIR_DIR and/or --sts FILE (an encoder's)")
    if args.task is None:
        check_out_file(args.out, args.force)
    else:
        _check_results_dir(args.out, args.force)
    if given[0] in ("retrieval", "sts"):
        from .search import eval_retrieval

        return eval_retrieval(args)
    (_eval_task if args.task is not None else _eval_text)(args)


def _check_results_dir(out: str | None, force: bool) -> None:
    """`eval --task --out DIR`: a directory for predictions.jsonl and scores.json; earlier ones need --force."""
    if out is None:
        return
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise GptkitError(f"--out {out} is a file; with --task, --out names a directory for predictions.jsonl and "
                          f"scores.json")
    for name in ("predictions.jsonl", "scores.json"):
        check_out_file(str(path / name), force)


def _eval_text(args) -> None:
    """Perplexity, bits per byte and nats per token of a checkpoint on a text file."""
    from ..checkpoint import load_checkpoint
    from ..eval import perplexity
    from ..runtime import pick_device

    path = Path(args.text)
    text = read_text_file(path, "--text")
    ckpt = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    if ckpt.tokenizer is None:
        raise GptkitError(f"{args.checkpoint} has no tokenizer.json, so the text cannot be encoded")
    ids = [i for piece in ckpt.tokenizer.encode_long(text) for i in piece]
    score = perplexity(ckpt.model.eval(), ids, args.stride, len(text.encode("utf-8")))
    result = {"checkpoint": str(args.checkpoint), "text": str(path), "tokens": score.tokens,
              "bytes": score.n_bytes, "window": score.window, "stride": score.stride,
              "nats_per_token": score.nats_per_token, "perplexity": score.ppl, "bits_per_byte": score.bits_per_byte}
    print(f"{path}: perplexity {score.ppl:.3f}, {score.bits_per_byte:.4f} bits/byte, "
          f"{score.nats_per_token:.4f} nats/token over {score.tokens:,} tokens (window {score.window}, "
          f"stride {score.stride})")
    if args.out:
        write_json(args.out, result)


def _task_checkpoint(args):
    """A fine-tuned checkpoint (with its task), ready for inference."""
    from ..checkpoint import load_checkpoint
    from ..data import Task
    from ..generate.beam import check_num_beams
    from ..quantize import for_inference
    from ..runtime import pick_device

    _check_decoding_flags(args)
    ckpt = load_checkpoint(args.checkpoint, device=pick_device(args.device))
    if ckpt.tokenizer is None or "task" not in ckpt.meta:
        raise GptkitError(f"{args.checkpoint} is not a fine-tuned checkpoint (no task or tokenizer): make one with "
                          f"`gptkit finetune`")
    if args.max_new_tokens is None:
        args.max_new_tokens = ckpt.model.config.block_size // 2
    try:
        check_num_beams(args.beams, ckpt.model.config.vocab_size)
    except GptkitError as e:
        raise GptkitError(str(e).replace("num_beams", "--beams", 1)) from None
    args.unanswerable_seen = bool(ckpt.meta.get("finetune", {}).get("unanswerable"))
    return for_inference(ckpt.model, args.dtype), ckpt.tokenizer, Task.from_dict(ckpt.meta["task"])


def _check_decoding_flags(args) -> None:
    """Before the checkpoint loads: each decoding flag in its range (0 is never taken to mean "the default")."""
    from ..generate import Sampling

    for flag, value, low in (("--beams", args.beams, 1), ("--batch-size", args.batch_size, 1),
                             ("--max-new-tokens", args.max_new_tokens, 1),
                             ("--no-repeat-ngram", args.no_repeat_ngram, 0)):
        if value is not None and value < low:
            raise GptkitError(f"{flag} must be at least {low}, got {value}")
    Sampling(args.temperature, args.top_k, args.top_p)  # checks its own fields


def _predict(model, tokenizer, task, records, args) -> list[str]:
    """Predictions for records, with a progress bar on stderr."""
    from tqdm import tqdm

    from ..eval.tasks import predict
    from ..generate import Sampling

    quiet = len(records) <= args.batch_size
    with tqdm(total=len(records), desc=task.format, unit="ex", file=sys.stderr, disable=quiet) as bar:
        sampling = Sampling(args.temperature, args.top_k, args.top_p)
        return predict(model, tokenizer, task, records, args.max_new_tokens, sampling, args.beams,
                       args.length_penalty, args.batch_size, args.seed, on_done=lambda n: bar.update(n - bar.n),
                       no_repeat_ngram=args.no_repeat_ngram, null_threshold=null_threshold(args))


def null_threshold(args) -> float | None:
    """--null-threshold, else the checkpoint's default (0 if it was trained with unanswerable questions)."""
    from ..eval.qa import default_null_threshold

    return args.null_threshold if args.null_threshold is not None else default_null_threshold(args.unanswerable_seen)


def _eval_task(args) -> None:
    from ..data import read_records
    from ..eval.tasks import score, write_results

    model, tokenizer, task = _task_checkpoint(args)
    _, records, stats = read_records(args.task, task)
    records = records[: args.limit] if args.limit else records
    predictions = _predict(model, tokenizer, task, records, args)
    scores = score(task, predictions, records)
    for s in scores.values():
        print(f"{args.task}: {s}")
    if args.out:
        meta = {"checkpoint": str(args.checkpoint), "data": str(args.task), "beams": args.beams,
                "malformed_skipped": stats.malformed}
        print(f"predictions and scores: {write_results(args.out, task, records, predictions, scores, meta)}")


def _cmd_translate(args) -> None:
    print_completions(args, "translation", "translate", lambda line: {"source": line, "target": ""},
                      one_per_line=True)


def print_completions(args, fmt: str, verb: str, fields, one_per_line: bool) -> None:
    """Run a `fmt` checkpoint on the command line's texts (or --input FILE: one text per line, or the whole
    file as one) and print one output line per text; `fields(text)` makes a text a record's fields."""
    from ..data import Record

    model, tokenizer, task = _task_checkpoint(args)
    if task.format != fmt:
        raise GptkitError(f"{args.checkpoint} was fine-tuned on {task.format} examples, not {fmt}")
    if (args.input is None) == (not args.text):
        raise GptkitError(f"give the text to {verb}, or --input FILE "
                          f"({'one text per line' if one_per_line else 'the whole file is one document'})")
    if args.input:
        text = read_text_file(Path(args.input), "--input")
        texts = text.splitlines() if one_per_line else [text]
    else:
        texts = args.text
    texts = [utf8(t, "the text").strip() for t in texts]
    empty = [i for i, t in enumerate(texts, 1) if not t] if texts else [1]
    if empty:
        where = f"--input {args.input}" + (f" line {empty[0]}" if one_per_line else "") if args.input else \
            f"text {empty[0]} on the command line"
        raise GptkitError(f"nothing to {verb}: {where} is empty; give non-empty text")
    records = [Record(fields(t)) for t in texts]
    for output in _predict(model, tokenizer, task, records, args):
        print(output)


def add_parsers(sub) -> None:
    p = sub.add_parser("eval", help="perplexity of a checkpoint on a text, a fine-tuned one's task scores, or an "
                                    "encoder's retrieval and similarity scores",
                       usage="gptkit eval CKPT (--text FILE [--stride N] | --task FILE [--beams N] | "
                             "--retrieval BEIR_DIR [--mode hybrid] | --sts FILE) [--out PATH]",
                       epilog="--text: a sliding window, each token scored once with at least window - stride tokens "
                              "of context; --out is a JSON file. --task: the checkpoint's task on these examples "
                              "(sacreBLEU BLEU and chrF for translation, SQuAD EM/F1 for qa, ROUGE for summarization); "
                              "--out is a directory for predictions.jsonl and scores.json. --retrieval: nDCG@10, "
                              "MRR@10 and recall@1/10/100 on a BEIR dataset (corpus.jsonl, queries.jsonl, "
                              "qrels/SPLIT.tsv), indexing its corpus with CKPT as the encoder (a gptkit checkpoint, "
                              "a sentence-transformers directory, or bm25 for BM25 alone) unless --index is given. "
                              "--sts: Spearman of embedding cosines with the scores (STS-B TSV, or JSONL sentence1, "
                              "sentence2, score).")
    p.add_argument("checkpoint", help="checkpoint directory")
    p.add_argument("--text", help="UTF-8 text file to score")
    p.add_argument("--stride", type=int, help="tokens between window starts (default: the model's context)")
    p.add_argument("--task", help="examples in the checkpoint's task format (JSONL, or an aligned path with {lang})")
    p.add_argument("--limit", type=int, default=0, help="--task: the first N examples only")
    p.add_argument("--retrieval", help="a BEIR-format dataset directory")
    p.add_argument("--split", default="test", help="--retrieval: the qrels split")
    p.add_argument("--index", help="--retrieval: search this index (built from the dataset's corpus) instead")
    p.add_argument("--chunk-tokens", type=int, default=0, help="--retrieval: chunk the corpus (0 = whole documents)")
    p.add_argument("--sts", help="scored sentence pairs (STS-B TSV, or JSONL)")
    add_search_flags(p)
    add_encoder_flags(p, batching=False)
    _add_decoding(p)
    p.add_argument("--out", help="where to write the results: a JSON file, or with --task a directory for "
                   "predictions.jsonl and scores.json")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("translate", help="translate text with a fine-tuned translation checkpoint",
                       usage="gptkit translate CKPT (TEXT ... | --input FILE) [--beams N] [--batch-size B]")
    p.add_argument("checkpoint", help="checkpoint directory (from gptkit finetune)")
    p.add_argument("text", nargs="*", help="sentences to translate (quote each one)")
    p.add_argument("--input", help="a UTF-8 file: one sentence per line, one translation per output line")
    _add_decoding(p)
    p.set_defaults(func=_cmd_translate)


def _add_decoding(p, beams: int = 1, no_repeat_ngram: int = 0) -> None:
    p.add_argument("--beams", type=int, default=beams, help=f"beam search with this many beams (default {beams})")
    p.add_argument("--no-repeat-ngram", type=int, default=no_repeat_ngram,
                   help=f"never repeat an n-gram of the output (0 = off; default {no_repeat_ngram})")
    p.add_argument("--null-threshold", type=float, help="extractive QA: answer nothing when the no-answer score "
                   "beats the best span's by more than this (default: 0 if trained with unanswerable questions, "
                   "else never)")
    p.add_argument("--temperature", type=float, default=0.0, help="> 0 samples instead of greedy decoding")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--seed", type=int, default=None, help="seed for reproducible sampling")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam search: > 0 favours longer outputs")
    p.add_argument("--batch-size", type=int, default=32, help="sentences decoded together (greedy)")
    p.add_argument("--max-new-tokens", type=int, help="default: half the context window")
    p.add_argument("--dtype", default="auto", choices=typing.get_args(InferenceDtype))
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
