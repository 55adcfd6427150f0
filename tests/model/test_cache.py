
import pytest
import torch

from gptkit import GPT, GptkitError, KVCache
from tests.conftest import tiny


def test_cached_decoding_matches_full_recompute(tiny_model, tiny_config, device):
    tiny_model.to(device)
    idx = torch.randint(0, tiny_config.vocab_size, (3, 24), device=device)
    with torch.no_grad():
        full = tiny_model(idx)
        cache = KVCache(tiny_config, batch_size=3)
        steps = [tiny_model(idx[:, :6], cache=cache)]  # prefill, then one token at a time
        steps += [tiny_model(idx[:, t : t + 1], cache=cache) for t in range(6, 16)]
        steps.append(tiny_model(idx[:, 16:], cache=cache))  # a multi-token chunk on a warm cache
    assert [cache.length(slot) for slot in range(3)] == [24, 24, 24]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)


def test_cache_slots_of_different_lengths_match_full_recompute(tiny_model, tiny_config, device):
    tiny_model.to(device)
    idx = torch.randint(0, tiny_config.vocab_size, (3, 20), device=device)
    lengths = [4, 9, 13]  # a right-padded prefill: the cache keeps each row's real length
    with torch.no_grad():
        full = tiny_model(idx)
        cache = KVCache(tiny_config, batch_size=3)
        padded = torch.stack([torch.cat([idx[b, :n], torch.zeros(13 - n, dtype=torch.long, device=device)])
                              for b, n in enumerate(lengths)])
        tiny_model.hidden_states(padded, cache, lengths=lengths)
        for step in range(5):
            new = torch.stack([idx[b, n + step] for b, n in enumerate(lengths)])[:, None]
            out = tiny_model(new, cache=cache)
            for b, n in enumerate(lengths):
                torch.testing.assert_close(out[b, 0], full[b, n + step], atol=1e-5, rtol=0)
    assert [cache.length(slot) for slot in range(3)] == [n + 5 for n in lengths]


def test_bf16_cache_follows_autocast_dtype(tiny_model, tiny_config, device):
    tiny_model.to(device)
    cache = KVCache(tiny_config, batch_size=1)
    with torch.no_grad(), torch.autocast(device, dtype=torch.bfloat16):
        tiny_model(torch.zeros(1, 3, dtype=torch.long, device=device), cache=cache)
        tiny_model(torch.zeros(1, 1, dtype=torch.long, device=device), cache=cache)
    assert cache.dtype == torch.bfloat16 and cache.device.type == device


def test_overflowing_the_context_window_is_a_clear_error(tiny_model, tiny_config):
    with pytest.raises(GptkitError, match="context window of 64"):
        tiny_model(torch.zeros(1, 65, dtype=torch.long))
    cache = KVCache(tiny_config, batch_size=1, max_len=8)
    tiny_model(torch.zeros(1, 8, dtype=torch.long), cache=cache)
    with pytest.raises(GptkitError, match="exceed the cache length of 8"):
        tiny_model(torch.zeros(1, 1, dtype=torch.long), cache=cache)


def test_a_reset_slot_starts_again_while_the_others_keep_their_contents(tiny_model, tiny_config):
    idx = torch.randint(0, tiny_config.vocab_size, (2, 12))
    with torch.no_grad():
        full = tiny_model(idx)
        cache = KVCache(tiny_config, batch_size=2)
        tiny_model(torch.randint(0, tiny_config.vocab_size, (2, 7)), cache=cache)  # something to forget
        cache.reset([0])
        first = tiny_model(idx[:1, :9], cache=cache, slots=[0])
        assert [cache.length(0), cache.length(1)] == [9, 7]
        cache.reset([1])
        second = tiny_model(idx[1:], cache=cache, slots=[1])
    torch.testing.assert_close(first[0], full[0, :9], atol=1e-5, rtol=0)
    torch.testing.assert_close(second[0], full[1], atol=1e-5, rtol=0)



def test_the_cache_holds_the_key_value_heads_only():
    caches = {}
    for n_kv_head in (4, 2, 1):  # multi-head, grouped-query and multi-query attention over 4 query heads
        config = tiny("llama", n_kv_head=n_kv_head)
        cache = KVCache(config, batch_size=2)
        GPT(config).eval()(torch.zeros(2, 5, dtype=torch.long), cache=cache)
        caches[n_kv_head] = cache.read(0, 0, 5)[0].numel()
    assert caches[4] == 2 * caches[2] == 4 * caches[1]  # memory shrinks by n_head / n_kv_head
    assert caches[1] == 2 * 1 * 5 * 8  # layers x heads x positions x head size
