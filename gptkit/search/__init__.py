"""Semantic search: embeddings (`embed`), an index of chunks with FAISS vectors and BM25 (`index`, `lexical`),
dense, lexical or fused ranking (`hybrid`), retrieval evaluation (`evaluate`) and answers from an index (`rag`)."""

from .embed import EncoderInfo, embed, load_encoder
from .evaluate import evaluate_retrieval, evaluate_sts
from .hybrid import Hit, Searcher, reciprocal_rank_fusion, weighted_fusion
from .index import Chunk, Index, IndexSettings, read_corpus
from .lexical import LexicalIndex
from .rag import RagAnswer, answer_from_index

__all__ = ["Chunk", "EncoderInfo", "Hit", "Index", "IndexSettings", "LexicalIndex", "RagAnswer", "Searcher",
           "answer_from_index", "embed", "evaluate_retrieval", "evaluate_sts", "load_encoder", "read_corpus",
           "reciprocal_rank_fusion", "weighted_fusion"]
