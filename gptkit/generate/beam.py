"""Beam search on token ids, with transformers' scores and stopping rule."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import GptkitError
from ..model import GPT, KVCache
from .decoding import MAX_BEAMS, Decoding


@dataclass(frozen=True)
class Beam:
    tokens: list[int]
    score: float  # sum of log-probabilities / len(tokens) ** length_penalty


@torch.inference_mode()
def beam_search(model: GPT, prompt: list[int], decoding: Decoding) -> list[Beam]:
    """The decoding.num_beams best continuations, best first (transformers' beam search, the same scores).

    Each step extends every live beam by every token and keeps the 2 * num_beams
    best candidates; a candidate ending in a stop id among the first num_beams
    becomes a finished hypothesis scored sum(log p) / length ** length_penalty
    (> 0 favours longer outputs). The search ends at max_new_tokens, when
    num_beams hypotheses are finished (early_stopping), or when no live
    beam can still beat the worst finished one at its current length.
    no_repeat_ngram = n > 0 bans a token that would repeat an n-gram of the beam's
    own output (the prompt's n-grams stay allowed: a summary may quote its document).
    """
    _check_arguments(model, prompt, decoding)
    num_beams, device = decoding.num_beams, model.device
    cache = KVCache(model.config, num_beams, len(prompt) + decoding.max_new_tokens)
    hidden = model.hidden_states(torch.tensor([prompt], device=device), cache, slots=[0])[:, -1]
    cache.reorder(torch.zeros(num_beams, dtype=torch.long, device=device))  # every beam starts from the prompt
    log_probs = model.logits(hidden).float().log_softmax(-1).expand(num_beams, -1)
    # only the first beam is live at the start, so the first step does not pick one token num_beams times
    scores = torch.full((num_beams,), float("-inf"), device=device)
    scores[0] = 0.0
    beams: list[list[int]] = [[] for _ in range(num_beams)]
    finished = _Finished(num_beams, decoding.length_penalty)
    stops = torch.tensor(sorted(set(decoding.stop_ids)), dtype=torch.long, device=device)
    for length in range(1, decoding.max_new_tokens + 1):
        beams, live_scores, origins = _extend(beams, scores, log_probs, stops, finished, length)
        if length == decoding.max_new_tokens or not beams:  # the live beams end here too
            for tokens, score in zip(beams, live_scores):
                finished.add(tokens, score, length)
            break
        if finished.settled(max(live_scores), length, decoding.early_stopping):
            break
        beams, scores, log_probs = _step(model, cache, beams, live_scores, origins, decoding)
    return finished.beams


def _step(model: GPT, cache: KVCache, beams: list[list[int]], live_scores: list[float], origins: list[int],
          decoding: Decoding) -> tuple[list[list[int]], torch.Tensor, torch.Tensor]:
    """Feed each live beam its last token (in the cache rows of the beams they came from): the next log-probs."""
    device = model.device
    padding = decoding.num_beams - len(beams)  # slots of beams that stopped: never picked again
    scores = torch.tensor(live_scores + [float("-inf")] * padding, device=device)
    cache.reorder(torch.tensor(origins + [0] * padding, device=device))
    last = torch.tensor([[b[-1]] for b in beams] + [[0]] * padding, device=device)
    beams = beams + [[]] * padding
    log_probs = model.logits(model.hidden_states(last, cache)[:, -1]).float().log_softmax(-1)
    if decoding.no_repeat_ngram:
        _ban_repeats(log_probs, beams, decoding.no_repeat_ngram)
    return beams, scores, log_probs


def _ban_repeats(log_probs: torch.Tensor, beams: list[list[int]], n: int) -> None:
    """-inf for each beam's tokens that would complete an n-gram already in that beam."""
    for row, tokens in enumerate(beams):
        if len(tokens) < n:
            continue
        prefix = tuple(tokens[len(tokens) - n + 1 :]) if n > 1 else ()
        banned = {tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tuple(tokens[i : i + n - 1]) == prefix}
        log_probs[row, list(banned)] = float("-inf")


def check_num_beams(num_beams: int, vocab_size: int) -> None:
    """Between 1 and MAX_BEAMS, and no more beams than there are tokens to choose from."""
    limit = min(MAX_BEAMS, vocab_size)
    if not 1 <= num_beams <= limit:
        raise GptkitError(f"num_beams must be between 1 and {limit} (at most {MAX_BEAMS}, and at most the "
                          f"vocabulary of {vocab_size}), got {num_beams}")


def _check_arguments(model: GPT, prompt: list[int], decoding: Decoding) -> None:
    if not prompt:
        raise GptkitError("the prompt is empty: give at least one token")
    check_num_beams(decoding.num_beams, model.config.vocab_size)
    max_new_tokens = decoding.max_new_tokens
    if len(prompt) + max_new_tokens > model.config.block_size:
        raise GptkitError(
            f"prompt ({len(prompt)} tokens) + max_new_tokens ({max_new_tokens}) exceeds the context window of "
            f"{model.config.block_size}: beam search does not slide the window; shorten the prompt"
        )


class _Finished:
    """The best num_beams finished hypotheses so far, best first."""

    def __init__(self, num_beams: int, length_penalty: float):
        self.num_beams, self.length_penalty = num_beams, length_penalty
        self.beams: list[Beam] = []

    def add(self, tokens: list[int], log_prob: float, length: int) -> None:
        self.beams.append(Beam(tokens, log_prob / length**self.length_penalty))
        self.beams.sort(key=lambda b: b.score, reverse=True)
        del self.beams[self.num_beams :]

    def settled(self, best_live: float, length: int, early_stopping: bool) -> bool:
        """Whether no live beam can still enter the finished ones (judged at its current length)."""
        if len(self.beams) < self.num_beams:
            return False
        return early_stopping or best_live / length**self.length_penalty <= self.beams[-1].score


def _extend(beams: list[list[int]], scores: torch.Tensor, log_probs: torch.Tensor, stops: torch.Tensor,
            finished: _Finished, length: int) -> tuple[list[list[int]], list[float], list[int]]:
    """The best live continuations (tokens, scores, origin beams); top candidates ending in a stop finish."""
    num_beams, vocab = finished.num_beams, log_probs.shape[-1]
    width = max(2, 1 + len(stops)) * num_beams  # enough candidates for num_beams live ones even if many stop
    candidates = (scores[:, None] + log_probs).flatten()
    top_scores, top_index = candidates.topk(min(width, candidates.numel()))
    origins, tokens = (top_index // vocab).tolist(), (top_index % vocab).tolist()
    is_stop = torch.isin(top_index % vocab, stops).tolist()
    live, live_scores, live_origins = [], [], []
    for rank, (score, origin, token, stop) in enumerate(zip(top_scores.tolist(), origins, tokens, is_stop)):
        if score == float("-inf") or len(live) == num_beams:
            break
        if not stop:
            live.append(beams[origin] + [token])
            live_scores.append(score)
            live_origins.append(origin)
        elif rank < num_beams:  # only the top num_beams candidates may finish
            finished.add(beams[origin] + [token], score, length)
    return live, live_scores, live_origins
