"""Semantic search commands: embed, index, search; retrieval and STS scores for `eval`; `ask --index`."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import GptkitError
from ..files import atomic_file
from .common import check_out_file, choices, read_text_file, utf8, write_json
from .flags import add_encoder_flags, add_search_flags

LEXICAL_ONLY = "bm25"  # `gptkit eval bm25 --retrieval DIR`: no encoder


def _encoder(path: str, args):
    from ..search.embed import load_encoder

    return load_encoder(path, args.pooling or "", _encoder_limits(args), args.batch_size, args.dtype)


def _encoder_limits(args) -> int:
    """--max-tokens and --batch-size, checked; returns --max-tokens, 0 ("the encoder's own limit") when not given."""
    if args.max_tokens is not None and args.max_tokens < 1:
        raise GptkitError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    if getattr(args, "batch_size", 1) < 1:
        raise GptkitError(f"--batch-size must be at least 1, got {args.batch_size}")
    return args.max_tokens or 0


def _cmd_embed(args) -> None:
    check_out_file(args.out, args.force)
    texts = [utf8(t, "a text") for t in args.text]
    if not all(t.strip() for t in texts):
        raise GptkitError("an empty text has no embedding: give non-empty texts")
    _encoder_limits(args)
    if args.input:
        texts += [line for line in read_text_file(Path(args.input), "--input").splitlines() if line.strip()]
    if not texts:
        raise GptkitError("nothing to embed: give texts, or --input FILE with one text per line")
    vectors = _encoder(args.encoder, args).embed(texts)
    if args.out:
        with atomic_file(args.out, "wb") as fh:
            np.save(fh, vectors)
        print(f"{len(texts)} vectors of {vectors.shape[1]} dimensions -> {args.out}", file=sys.stderr)
    else:
        for text, vector in zip(texts, vectors):
            print(json.dumps({"text": text, "embedding": [round(float(x), 6) for x in vector]}, ensure_ascii=False))


def _cmd_index(args) -> None:
    from ..data.corpus import ReadOptions
    from ..search.index import Index, IndexSettings, read_corpus

    if args.chunk_tokens < 0 or args.overlap < 0 or (args.chunk_tokens and args.overlap >= args.chunk_tokens):
        raise GptkitError(f"--chunk-tokens must be >= 0 (0: each document whole) and --overlap in "
                          f"[0, --chunk-tokens), got {args.chunk_tokens} and {args.overlap}")
    documents = read_corpus(args.docs, args.text_field, args.id_field, args.title_field,
                            ReadOptions(include=tuple(args.include or ()), exclude=tuple(args.exclude or ())))
    start = time.perf_counter()
    if args.add:
        index = Index.load(args.out)
        encoder = _index_encoder(index, args)
        added = index.add(documents, encoder)
    else:
        if Path(args.out).exists() and not args.force:
            raise GptkitError(f"{args.out} already exists; pass --add to add documents to it, or --force to rebuild")
        settings = IndexSettings(args.chunk_tokens, args.overlap, args.index_type, args.exact_limit,
                                 language=args.language, bm25=not args.no_bm25)
        encoder = _encoder(args.encoder, args) if args.encoder else None
        index = Index.build(documents, encoder, settings)
        added = len(index.chunks)
    seconds = time.perf_counter() - start
    index.save(args.out)
    recall = index.stats.get("recall@10")
    print(f"{added:,} chunks indexed in {seconds:.1f} s ({added / max(seconds, 1e-9):,.0f}/s); {len(index.chunks):,} "
          f"in {args.out} ({index.stats.get('index_type', 'no')} vectors"
          + (f", recall@10 {recall:.3f} vs exact" if recall is not None else "")
          + (f", BM25 {index.lexical.language}" if index.lexical else "") + ")")


def _index_encoder(index, args):
    """The encoder an index was built with (or --encoder, which must be the same one); None without vectors."""
    from ..search.embed import load_encoder

    info = index.encoder
    if info is None:
        return None
    pooling = args.pooling or (info.pooling if info.kind == "gptkit" else "")
    encoder = load_encoder(getattr(args, "encoder", None) or info.name, pooling,
                           _encoder_limits(args) or info.max_tokens, args.batch_size, args.dtype)
    index.check_encoder(encoder.info)
    return encoder


def _searcher(path: str, args):
    from ..search.hybrid import Searcher
    from ..search.index import Index

    index = Index.load(path)
    encoder = None if args.mode == "bm25" else _index_encoder(index, args)
    return Searcher(index, encoder)


def _fusion(args) -> dict:
    if not 0 <= args.dense_weight <= 1:
        raise GptkitError(f"--dense-weight must be in [0, 1], got {args.dense_weight}")
    return {"fusion": args.fusion, "rrf_k": args.rrf_k, "dense_weight": args.dense_weight}


def _cmd_search(args) -> None:
    from ..search.hybrid import snippet

    query = utf8(args.query, "the query")
    if not query.strip():
        raise GptkitError("the query is empty: give words to search for")
    if args.k < 1:
        raise GptkitError(f"-k must be at least 1, got {args.k}")
    searcher = _searcher(args.index, args)
    hits = searcher.search(query, k=args.k, mode=args.mode, **_fusion(args))
    lexical = searcher.index.lexical
    for rank, hit in enumerate(hits, 1):
        text = snippet(hit.chunk.text, query, lexical.analyze) if lexical else hit.chunk.text[:240]
        if args.json:
            print(json.dumps({"rank": rank, "score": hit.score, "doc": hit.chunk.doc, "chunk": hit.row,
                              "start": hit.chunk.start, "end": hit.chunk.end, "dense_rank": hit.dense_rank,
                              "bm25_rank": hit.bm25_rank, "snippet": text, "text": hit.chunk.text},
                             ensure_ascii=False))
        else:
            print(f"{rank}. {hit.chunk.doc} [{hit.chunk.start}:{hit.chunk.end}]  score {hit.score:.4f}\n   {text}")
    if not hits and not args.json:
        print("(no results)")


def eval_retrieval(args) -> None:
    """`gptkit eval ENCODER --retrieval BEIR_DIR` (ENCODER `bm25` for BM25 alone) or `--sts FILE`."""
    from ..search.evaluate import evaluate_retrieval, evaluate_sts

    result: dict = {"encoder": args.checkpoint}
    if args.sts:
        from ..eval.retrieval import read_sts

        result["sts_spearman"] = evaluate_sts(_encoder(args.checkpoint, args), read_sts(args.sts))
        print(f"{args.sts}: Spearman {result['sts_spearman']:.2f} (x100, cosine of the embeddings vs the scores)")
    if args.retrieval:
        from ..eval.retrieval import read_beir
        from ..search.hybrid import Searcher
        from ..search.index import Index, IndexSettings

        corpus, queries, qrels = read_beir(args.retrieval, args.split)
        if args.index:
            searcher = _searcher(args.index, args)
        else:
            encoder = None if args.checkpoint == LEXICAL_ONLY else _encoder(args.checkpoint, args)
            index = Index.build(corpus.items(), encoder, IndexSettings(chunk_tokens=args.chunk_tokens))
            searcher = Searcher(index, encoder)
        scores = evaluate_retrieval(searcher, queries, qrels, args.mode, **_fusion(args))
        result.update(data=str(args.retrieval), split=args.split, mode=args.mode or searcher.default_mode(),
                      queries=len(queries), **scores)
        print(f"{args.retrieval} ({args.split}, {len(queries)} queries, {result['mode']}): "
              + ", ".join(f"{name} {value:.4f}" for name, value in scores.items()))
    if args.out:
        write_json(args.out, result)


def ask_from_index(args, loaded, decoding, question: str) -> None:
    """`gptkit ask CKPT --index INDEX QUESTION`: retrieve, answer, cite."""
    from ..search.rag import answer_from_index

    answer = answer_from_index(loaded.model, loaded.tokenizer, loaded.task, _searcher(args.index, args), question,
                               args.k, args.mode, loaded.null_threshold(args.null_threshold), decoding)
    cited = [{"source": n, "doc": h.chunk.doc, "chunk": h.row, "start": h.chunk.start, "end": h.chunk.end,
              "text": h.chunk.text} for n, h in enumerate(answer.retrieved, 1) if h in answer.sources]
    if args.json:
        print(json.dumps({"answer": answer.text, "score": answer.score, "sources": cited,
                          "retrieved": [h.chunk.doc for h in answer.retrieved]}, ensure_ascii=False))
        return
    print(answer.text or "(no answer in the retrieved chunks)")
    for source in cited:
        print(f"[{source['source']}] {source['doc']} [{source['start']}:{source['end']}] "
              f"{' '.join(source['text'].split())[:160]}")


def add_parsers(sub) -> None:
    for add in (_add_embed, _add_index, _add_search):
        add(sub)


def _add_embed(sub) -> None:
    p = sub.add_parser("embed", help="sentence or document embeddings from a gptkit or sentence-transformers model",
                       usage="gptkit embed ENCODER (TEXT ... | --input FILE) [--out VECTORS.npy] [--pooling mean]")
    p.add_argument("encoder", help="a gptkit checkpoint or a sentence-transformers model directory")
    p.add_argument("text", nargs="*", help="texts to embed (quote each one)")
    p.add_argument("--input", help="a UTF-8 file with one text per line")
    p.add_argument("--out", help="write the vectors (N x D float32, unit length) to this .npy file; default: "
                   "JSON lines on stdout")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_encoder_flags(p)
    p.set_defaults(func=_cmd_embed)


def _add_index(sub) -> None:
    from ..search.index import IndexSettings
    p = sub.add_parser("index", help="build a search index of documents: chunks, FAISS vectors, BM25",
                       usage="gptkit index DOCS ... --out INDEX [--encoder ENCODER] [--add] [--chunk-tokens 256]",
                       epilog="DOCS: files or directories (text, JSONL, CSV, Parquet; gzipped too). JSONL rows give "
                              "ids (--id-field) and titles; other documents are named FILE#N. Without --encoder "
                              "the index is BM25 only. --add embeds new documents with the index's own encoder.")
    p.add_argument("docs", nargs="+", help="document files or directories")
    p.add_argument("--out", required=True, help="the index directory")
    p.add_argument("--encoder", help="a gptkit checkpoint or sentence-transformers directory")
    p.add_argument("--add", action="store_true", help="add the documents to the existing index --out")
    p.add_argument("--force", action="store_true", help="replace an existing index")
    p.add_argument("--chunk-tokens", type=int, default=IndexSettings.chunk_tokens, help="tokens a chunk (0: each "
                   "document whole, one chunk)")
    p.add_argument("--overlap", type=int, default=IndexSettings.overlap, help="tokens shared by neighbouring chunks")
    p.add_argument("--index-type", default="auto", choices=choices(IndexSettings, "index_type"),
                   help="FAISS index; auto = exact up to --exact-limit vectors, HNSW above")
    p.add_argument("--exact-limit", type=int, default=IndexSettings.exact_limit,
                   help=f"auto: the largest collection searched exactly (default {IndexSettings.exact_limit:,})")
    p.add_argument("--language", default="auto", choices=choices(IndexSettings, "language"),
                   help="BM25 analysis: English stemming and stop words, or Chinese words (jieba)")
    p.add_argument("--no-bm25", action="store_true", help="vectors only")
    p.add_argument("--include", action="append", help="glob for files in directories (repeatable), e.g. '*.md'")
    p.add_argument("--exclude", action="append", help="glob for files to leave out, by name or path inside the "
                   "directory (repeatable), e.g. '*.zh.md' or 'drafts/*'")
    p.add_argument("--text-field", default="text", help="JSON lines: the field holding the text (default text)")
    p.add_argument("--id-field", default="_id", help="JSON lines: the document id's field (default _id)")
    p.add_argument("--title-field", default="title", help="JSON lines: the title's field, put before the text "
                   "(default title)")
    add_encoder_flags(p)
    p.set_defaults(func=_cmd_index)


def _add_search(sub) -> None:
    p = sub.add_parser("search", help="search an index: ranked chunks with scores and highlighted snippets",
                       usage="gptkit search INDEX QUERY [-k 5] [--mode dense|bm25|hybrid] [--json]")
    p.add_argument("index", help="an index directory (from gptkit index)")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5, help="results to show")
    p.add_argument("--json", action="store_true", help="one JSON object a result")
    p.add_argument("--encoder", help="default: the one the index was built with")
    add_search_flags(p)
    add_encoder_flags(p)
    p.set_defaults(func=_cmd_search)
