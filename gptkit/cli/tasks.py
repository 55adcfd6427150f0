"""Commands on fine-tuned checkpoints: eval (perplexity on a text, or a task's scores) and translate."""

from __future__ import annotations

from pathlib import Path

from ..errors import GptkitError
from .common import check_out_file, read_text_file, utf8, write_json
from .flags import (
    add_encoder_flags,
    add_search_flags,
    add_task_flags,
    check_decoding_flags,
    load_task_model,
    predict_with_progress,
    task_decoding,
)


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
    ids = [i for piece in ckpt.text_tokenizer("the text cannot be encoded").encode_long(text) for i in piece]
    score = perplexity(ckpt.model.eval(), ids, args.stride, len(text.encode("utf-8")))
    result = {"checkpoint": str(args.checkpoint), "text": str(path), "tokens": score.tokens,
              "bytes": score.n_bytes, "window": score.window, "stride": score.stride,
              "nats_per_token": score.nats_per_token, "perplexity": score.ppl, "bits_per_byte": score.bits_per_byte}
    print(f"{path}: perplexity {score.ppl:.3f}, {score.bits_per_byte:.4f} bits/byte, "
          f"{score.nats_per_token:.4f} nats/token over {score.tokens:,} tokens (window {score.window}, "
          f"stride {score.stride})")
    if args.out:
        write_json(args.out, result)


def _eval_task(args) -> None:
    from ..data import read_records
    from ..eval.tasks import score, write_results

    check_decoding_flags(args)
    loaded = load_task_model(args.checkpoint, args.dtype, args.device)
    decoding, task = task_decoding(args, loaded), loaded.task
    _, records, stats = read_records(args.task, task)
    records = records[: args.limit] if args.limit else records
    predictions = predict_with_progress(loaded, records, decoding, args.batch_size, args.null_threshold)
    scores = score(task, predictions, records)
    for s in scores.values():
        print(f"{args.task}: {s}")
    if args.out:
        meta = {"checkpoint": str(args.checkpoint), "data": str(args.task), "beams": args.beams,
                "malformed_skipped": stats.malformed}
        print(f"predictions and scores: {write_results(args.out, task, records, predictions, scores, meta)}")


def _cmd_translate(args) -> None:
    print_completions(args, "translation", "translate", one_per_line=True)


def print_completions(args, fmt: str, verb: str, one_per_line: bool) -> None:
    """Run a `fmt` checkpoint on the command line's texts (or --input FILE: one text per line, or the whole
    file as one) and print one output line per text; each text is the source field of a record."""
    from ..data import Record

    check_decoding_flags(args)
    loaded = load_task_model(args.checkpoint, args.dtype, args.device)
    decoding, task = task_decoding(args, loaded), loaded.task
    if task.format != fmt:
        raise GptkitError(f"{args.checkpoint} was fine-tuned on {task.format} examples, not {fmt}")
    texts = _input_texts(args.text, args.input, verb, one_per_line)
    source, target = task.spec.source[0], task.spec.target
    records = [Record({source: t, target: ""}) for t in texts]
    for output in predict_with_progress(loaded, records, decoding, args.batch_size, args.null_threshold):
        print(output)


def _input_texts(given: list[str], input_file: str | None, verb: str, one_per_line: bool) -> list[str]:
    """The texts on the command line, or those of --input (one per line, or the whole file as one)."""
    if (input_file is None) == (not given):
        raise GptkitError(f"give the text to {verb}, or --input FILE "
                          f"({'one text per line' if one_per_line else 'the whole file is one document'})")
    if input_file:
        text = read_text_file(Path(input_file), "--input")
        texts = text.splitlines() if one_per_line else [text]
    else:
        texts = given
    texts = [utf8(t, "the text").strip() for t in texts]
    empty = [i for i, t in enumerate(texts, 1) if not t] if texts else [1]
    if empty:
        where = f"--input {input_file}" + (f" line {empty[0]}" if one_per_line else "") if input_file else \
            f"text {empty[0]} on the command line"
        raise GptkitError(f"nothing to {verb}: {where} is empty; give non-empty text")
    return texts


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
    add_task_flags(p)
    p.add_argument("--out", help="where to write the results: a JSON file, or with --task a directory for "
                   "predictions.jsonl and scores.json")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("translate", help="translate text with a fine-tuned translation checkpoint",
                       usage="gptkit translate CKPT (TEXT ... | --input FILE) [--beams N] [--batch-size B]")
    p.add_argument("checkpoint", help="checkpoint directory (from gptkit finetune)")
    p.add_argument("text", nargs="*", help="sentences to translate (quote each one)")
    p.add_argument("--input", help="a UTF-8 file: one sentence per line, one translation per output line")
    add_task_flags(p)
    p.set_defaults(func=_cmd_translate)
