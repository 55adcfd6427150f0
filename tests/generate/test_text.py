import torch

from gptkit.generate import (
    Decoding,
    Sampling,
    StopStrings,
    beam_search,
    beam_search_text,
    generate,
    generate_text,
    stream_text,
)


def test_stop_strings_cut_text_split_across_pieces():
    cutter = StopStrings(["\n\n", "END"])
    assert cutter.feed("Hello E") == ("Hello ", False)  # "E" may start "END": held back
    assert cutter.feed("ND of it") == ("", True)
    cutter = StopStrings(["END"])
    assert cutter.feed("an E") == ("an ", False)
    assert cutter.feed("lephant") == ("Elephant", False)
    assert cutter.feed(" EN") == (" ", False)
    assert cutter.flush() == "EN"
    assert StopStrings(["ab"]).feed("xxabyyab") == ("xx", True)


def test_stream_text_stops_at_a_stop_string(tiny_model, bpe_tokenizer):
    free = "".join(stream_text(tiny_model, bpe_tokenizer, "The quick", Decoding(30, temperature=0)))
    assert len(free) > 6
    stop = free[3:6]
    cut = "".join(stream_text(tiny_model, bpe_tokenizer, "The quick", Decoding(30, temperature=0, stop=[stop])))
    assert cut == free[: free.index(stop)]


def test_generate_text_is_the_stream_joined(tiny_model, bpe_tokenizer):
    sampling = Sampling(0.9, top_k=20)
    streamed = "".join(stream_text(tiny_model, bpe_tokenizer, "The fox", Decoding(20, **vars(sampling), seed=3)))
    assert generate_text(tiny_model, bpe_tokenizer, "The fox", Decoding(20, **vars(sampling), seed=3)) == streamed
    ids = generate(tiny_model, bpe_tokenizer.encode("The fox"), Decoding(20, **vars(sampling), seed=3))
    assert streamed == bpe_tokenizer.decode(ids)  # no end-of-text in this vocabulary's output here


def test_end_of_text_starts_an_empty_prompt_ends_the_text_and_is_not_shown(tiny_model, bpe_tokenizer):
    eot = bpe_tokenizer.eot_id
    greedy = Decoding(5, temperature=0)
    ids = generate(tiny_model, [eot], Decoding(5, temperature=0, stop_ids=(eot,)))  # an empty prompt starts from eot
    assert generate_text(tiny_model, bpe_tokenizer, "", greedy) == bpe_tokenizer.decode(t for t in ids if t != eot)
    with torch.no_grad():  # every logit 0: greedy picks id 0, which is end-of-text in this vocabulary
        for p in tiny_model.final_norm().parameters():
            p.zero_()
    ending = Decoding(5, temperature=0, stop_ids=(eot,))
    assert eot == 0 and generate(tiny_model, bpe_tokenizer.encode("The fox"), ending) == [eot]
    assert generate_text(tiny_model, bpe_tokenizer, "The fox", Decoding(5, temperature=0)) == ""


def test_beam_search_text_decodes_the_best_beam_without_end_of_text(tiny_model, bpe_tokenizer):
    prompt = bpe_tokenizer.encode("def add")
    best = beam_search(tiny_model, prompt, Decoding(10, num_beams=3, stop_ids=(bpe_tokenizer.eot_id,)))[0]
    expected = bpe_tokenizer.decode([t for t in best.tokens if t != bpe_tokenizer.eot_id])
    assert beam_search_text(tiny_model, bpe_tokenizer, "def add", Decoding(10, num_beams=3)) == expected
