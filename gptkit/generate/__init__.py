"""Generation: sampling (`sampling`), the engine on token ids (`engine`), beam search (`beam`), and the
text layer over them (`text`: streaming decode, stop strings, end-of-text).

    from gptkit.generate import Sampling, generate_text
    print(generate_text(model, tokenizer, "Once upon a time", 50, Sampling(0.8, top_k=50), seed=0))
"""

from .beam import Beam, beam_search
from .engine import Generator, Request, generate, generate_batch, stream
from .sampling import GREEDY, Sampling, filter_logits, next_token, penalize_repeats
from .text import StopStrings, beam_search_text, complete_texts, generate_text, stream_text

__all__ = [
    "Beam", "beam_search", "Generator", "Request", "generate", "generate_batch", "stream", "GREEDY", "Sampling",
    "filter_logits", "next_token", "penalize_repeats", "StopStrings", "beam_search_text", "generate_text",
    "stream_text", "complete_texts",
]
