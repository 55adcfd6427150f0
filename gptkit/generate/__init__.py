"""Generation: one settings object (`Decoding`), sampling (`sampling`), the engine on token ids
(`engine`), beam search (`beam`), and the text layer over them (`text`: the per-request text stream,
stop strings, end-of-text, chat prompts).

    from gptkit.generate import Decoding, generate_text
    print(generate_text(model, tokenizer, "Once upon a time", Decoding(50, temperature=0.8, top_k=50, seed=0)))
"""

from .beam import Beam, beam_search
from .decoding import GREEDY_DECODING, MAX_BEAMS, Decoding
from .engine import Generator, Request, generate, generate_batch, stream
from .sampling import GREEDY, Sampling, filter_logits, next_token, penalize_repeats
from .text import Chat, StopStrings, TextStream, beam_search_text, complete_texts, generate_text, stream_text

__all__ = [
    "Beam", "beam_search", "Decoding", "GREEDY_DECODING", "MAX_BEAMS", "Generator", "Request", "generate",
    "generate_batch", "stream", "GREEDY", "Sampling", "filter_logits", "next_token", "penalize_repeats", "Chat",
    "StopStrings", "TextStream", "beam_search_text", "generate_text", "stream_text", "complete_texts",
]
