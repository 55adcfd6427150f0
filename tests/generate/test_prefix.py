"""Prefix caching: shared prompt prefixes are reused exactly, and the cache stays under its budget."""

import torch

from gptkit.generate import Decoding, Generator, Request
from gptkit.generate.prefix import PrefixCache
from gptkit.model import KVCache

SHARED = list(range(1, 41))  # 40 tokens: five blocks of 8


def _run(engine, prompts, decoding=Decoding(8, temperature=0)):
    requests = [engine.submit(Request(p, decoding)) for p in prompts]
    while engine.busy:
        engine.step()
    return [r.tokens for r in requests]


def test_requests_sharing_a_prefix_reuse_it_and_get_the_tokens_they_would_compute(tiny_model):
    prompts = [SHARED + [50, 51], SHARED + [60], SHARED[:20] + [70, 71, 72]]
    plain = _run(Generator(tiny_model, 2, prefill_chunk=8), prompts)
    cache = PrefixCache(block=8)
    engine = Generator(tiny_model, 2, prefix_cache=cache)
    assert _run(engine, prompts[:1]) == plain[:1] and cache.hit_tokens == 0
    assert _run(engine, prompts[1:]) == plain[1:]
    assert cache.hit_tokens == 40 + 16  # all five blocks, then the first two
    sampled = Decoding(8, temperature=1.0, seed=3)
    assert _run(engine, prompts, sampled) == _run(Generator(tiny_model, 2, prefill_chunk=8), prompts, sampled)


def test_a_whole_cached_prompt_still_computes_its_last_token(tiny_model):
    cache = PrefixCache(block=8)
    engine = Generator(tiny_model, 1, prefix_cache=cache)
    first = _run(engine, [SHARED])
    assert _run(engine, [SHARED]) == first and cache.hit_tokens == 32  # 40 tokens: the last block is read again


def test_the_cache_stays_under_its_budget_evicting_the_ends_of_chains_first(tiny_model):
    c = tiny_model.config
    per_block = 2 * c.n_layer * c.kv_heads * c.head_size * 8 * 4  # keys + values of 8 positions, fp32
    cache = PrefixCache(block=8, max_bytes=3 * per_block)
    engine = Generator(tiny_model, 1, prefix_cache=cache)
    _run(engine, [SHARED])
    assert len(cache) == 3 and cache.bytes <= cache.max_bytes
    kv = KVCache(tiny_model.config, 1)
    assert cache.reuse(SHARED, kv, 0) == 24  # the first three blocks stayed


def test_written_keys_and_values_read_back_unchanged(tiny_config):
    kv = KVCache(tiny_config, 2)
    k = torch.randn(tiny_config.n_layer, tiny_config.kv_heads, 5, tiny_config.head_size)
    kv.write(1, k, -k)
    got_k, got_v = kv.read(1, 0, 5)
    assert kv.length(1) == 5 and kv.length(0) == 0 and torch.equal(got_k, k) and torch.equal(got_v, -k)
