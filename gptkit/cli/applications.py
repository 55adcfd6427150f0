"""Commands that use fine-tuned checkpoints on the user's own text (ask, summarize), and the data audit."""

from __future__ import annotations

import json
import sys

from ..data.formats import qa_record
from ..errors import GptkitError
from .common import check_out_file, file_or_text, utf8, write_json
from .flags import (
    add_encoder_flags,
    add_search_flags,
    add_task_flags,
    check_decoding_flags,
    load_task_model,
    predict_with_progress,
    task_decoding,
)
from .tasks import print_completions


def _cmd_ask(args) -> None:
    if (args.context is None) == (args.index is None):
        raise GptkitError("say where the answer is: --context FILE|TEXT, or --index INDEX to retrieve it from")
    question = utf8(args.question, "the question")
    context = file_or_text(args.context, "--context") if args.context is not None else None
    if not question.strip() or (context is not None and not context.strip()):
        raise GptkitError("give a question, and a non-empty --context (a file or the text itself)")
    if args.index is not None and args.k < 1:
        raise GptkitError(f"-k must be at least 1, got {args.k}")
    check_decoding_flags(args)
    loaded = load_task_model(args.checkpoint, args.dtype, args.device)
    decoding = task_decoding(args, loaded)
    if args.index is not None:
        from .search import ask_from_index

        return ask_from_index(args, loaded, decoding, question)
    if not loaded.task.spec.spans:
        raise GptkitError(f"{args.checkpoint} was fine-tuned on {loaded.task.format} examples; `ask` needs a qa "
                          f"checkpoint")
    _answer(loaded, qa_record(context, question), decoding, args.null_threshold, args.json)


def _answer(loaded, record, decoding, null_threshold: float | None, as_json: bool) -> None:
    """Print the answer to one question: generated, or a span of the context (with its place and score)."""
    if not loaded.task.extractive:
        (answer,) = predict_with_progress(loaded, [record], decoding, 1, null_threshold)
        print(answer)
        return
    from ..eval.qa import answer_questions

    (span,) = answer_questions(loaded.model, loaded.tokenizer, loaded.task, [record],
                               null_threshold=loaded.null_threshold(null_threshold))
    if as_json:
        print(json.dumps({"answer": span.text, "start": span.start, "end": span.end, "score": span.score},
                         ensure_ascii=False))
    elif not span.text:
        print("(no answer in the context)")
    else:
        print(span.text)
        print(f"characters {span.start}-{span.end}, score {span.score:.2f}", file=sys.stderr)


def _cmd_summarize(args) -> None:
    print_completions(args, "summarization", "summarize", one_per_line=False)


def _cmd_audit(args) -> None:
    from ..eval.audit import bias_probe, contamination, describe

    _check_audit_args(args)
    report = {}
    train = _texts(args.train, args.text_field, "the training data to audit")
    report["train"] = describe(train)
    _print_set(args.train, report["train"])
    if args.eval:
        evaluation = _texts(args.eval, args.text_field, "the evaluation set to check")
        report["eval"] = describe(evaluation)
        _print_set(args.eval, report["eval"])
        found = report["contamination"] = contamination(train, evaluation, args.ngram)
        print(f"contamination: {found['contaminated']:,} of {found['checked']:,} eval texts ({found['rate']:.1%}) "
              f"share a {args.ngram}-word n-gram with the training texts ({found['too_short']:,} too short to check)")
        for example in found["examples"][:5]:
            print(f"  eval #{example['index']}: \"{example['ngram']}\"")
    if args.model:
        from ..checkpoint import load_checkpoint

        ckpt = load_checkpoint(args.model)
        results = bias_probe(ckpt.model, ckpt.text_tokenizer("the bias probe cannot encode its sentences"))
        report["bias_probe"] = [{"group": r.group, "scores": r.scores, "gap": r.gap, "preferred": r.preferred}
                                for r in results]
        print("bias probe (mean log-likelihood per token; an indicator, not a certificate):")
        for r in results:
            terms = ", ".join(f"{term} {score:.3f}" for term, score in r.scores.items())
            print(f"  {r.group:<9} gap {r.gap:.3f} (prefers {r.preferred}): {terms}")
    if args.out:
        write_json(args.out, report)
        print(f"report: {args.out}")


def _check_audit_args(args) -> None:
    """Everything `audit` is given, checked before the analysis starts."""
    check_out_file(args.out, args.force)
    if args.ngram < 1:
        raise GptkitError(f"--ngram must be at least 1, got {args.ngram}")
    if args.model:
        from ..checkpoint import inspect_checkpoint

        inspect_checkpoint(args.model)  # a missing or damaged checkpoint, before minutes of analysis


def _texts(path: str, field: str, what: str) -> list[str]:
    from ..eval.audit import read_texts

    texts = read_texts(path, field)
    if not texts:
        raise GptkitError(f"{path}: no texts in it; give {what}")
    return texts


def _print_set(name: str, d: dict) -> None:
    langs = ", ".join(f"{lang} {share:.0%}" for lang, share in list(d["languages"].items())[:4])
    print(f"{name}: {d['texts']:,} texts, {d['exact_duplicates']:,} exact and {d['near_duplicates']:,} near "
          f"duplicates ({d['duplicate_rate']:.1%}); words mean {d['words']['mean']:.0f}, p95 {d['words']['p95']}, "
          f"max {d['words']['max']}; languages: {langs}")


def add_parsers(sub) -> None:
    for add in (_add_ask, _add_summarize, _add_audit):
        add(sub)


def _add_ask(sub) -> None:
    p = sub.add_parser("ask", help="answer a question about a context, or from a search index, with a fine-tuned "
                                   "checkpoint",
                       usage="gptkit ask CKPT (--context FILE|TEXT | --index INDEX [-k 3]) QUESTION [--json]",
                       epilog="--index: the top k chunks are retrieved and read as the context (an extractive QA "
                              "model reads each and cites the one its answer is in; a generative qa, alpaca, chat "
                              "or completion model reads them numbered, and they are cited).")
    p.add_argument("checkpoint", help="checkpoint directory (from gptkit finetune with task.format=qa, or an "
                   "instruction-tuned one with --index)")
    p.add_argument("question")
    p.add_argument("--context", help="a text file, or the context itself")
    p.add_argument("--index", help="a search index (gptkit index) to retrieve the context from")
    p.add_argument("-k", type=int, default=3, help="--index: chunks retrieved")
    p.add_argument("--json", action="store_true", help="print the answer, its character span and score (or its "
                   "sources) as JSON")
    add_search_flags(p, fusion=False)
    add_encoder_flags(p, batching=False)
    add_task_flags(p)
    p.set_defaults(func=_cmd_ask)


def _add_summarize(sub) -> None:
    p = sub.add_parser("summarize", help="summarize text with a fine-tuned summarization checkpoint",
                       usage="gptkit summarize CKPT (TEXT ... | --input FILE) [--beams N] [--no-repeat-ngram N]")
    p.add_argument("checkpoint", help="checkpoint directory (from gptkit finetune with task.format=summarization)")
    p.add_argument("text", nargs="*", help="documents to summarize (quote each one)")
    p.add_argument("--input", help="a UTF-8 file holding one document")
    add_task_flags(p, beams=4, no_repeat_ngram=3)
    p.set_defaults(func=_cmd_summarize)


def _add_audit(sub) -> None:
    p = sub.add_parser("audit", help="data diagnostics: duplicates, train/test contamination, lengths, languages, "
                                     "and a bias probe of a model",
                       usage="gptkit audit TRAIN [--eval FILE] [--ngram 13] [--model CKPT] [--out REPORT.json]",
                       epilog="TRAIN and --eval: task files (JSONL/JSON, SQuAD) or corpora (text, JSONL with "
                              "a text field). The bias probe compares a model's log-likelihood of sentences that "
                              "differ in one demographic term: an indicator, not a certificate.")
    p.add_argument("train", help="the training data")
    p.add_argument("--eval", help="an evaluation set to check against the training data")
    p.add_argument("--ngram", type=int, default=13, help="words in the n-grams that count as overlap")
    p.add_argument("--text-field", default="", help="read this JSONL key (or CSV/Parquet column) of each line as "
                   "its text, instead of a task file's fields")
    p.add_argument("--model", help="a checkpoint to run the bias probe on")
    p.add_argument("--out", help="write the whole report as JSON here")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_cmd_audit)
