"""gptkit generate: what it prints is what the Python API generates."""


import torch

from gptkit import GPT, ModelConfig, Sampling, load_checkpoint, save_checkpoint
from gptkit.generate import Decoding, beam_search_text, generate_text
from gptkit.quantize import for_inference


def test_prompt_too_long_exits_2(tmp_path, bpe_tokenizer, cli):
    model = GPT(ModelConfig(vocab_size=300, block_size=16, n_layer=1, n_head=1, n_embd=8))
    path = save_checkpoint(tmp_path / "ck", model, bpe_tokenizer)
    assert "context window" in cli("generate", path, "--prompt", "word " * 40, code=2).err


def test_generate_prints_what_the_api_generates_for_each_option(tmp_path, tiny_model, bpe_tokenizer, cli):
    path = save_checkpoint(tmp_path / "ck", tiny_model, bpe_tokenizer)
    tok, prompt = bpe_tokenizer, "The fox"

    def printed(*args, prompt_args=("--prompt", prompt)):
        return cli("generate", path, *prompt_args, "--max-new-tokens", "20", "--dtype", "fp32", *args).out

    def api(sampling, model=tiny_model, text=prompt, **kw):
        return text + generate_text(model, tok, text, Decoding(20, **vars(sampling), **kw)) + "\n"

    free = api(Sampling(0))
    assert printed("--temperature", "0") == free
    assert printed("--temperature", "1e-300", "--top-p", "1e-300", "--seed", "1") == free  # rounds to greedy
    assert printed("--temperature", "0.9", "--min-p", "0.1", "--repetition-penalty", "1.2", "--seed", "3") == api(
        Sampling(0.9, min_p=0.1, repetition_penalty=1.2), seed=3)
    assert printed("--temperature", "0.8", "--top-k", "20", "--top-p", "0.9", "--seed", "5", "--num-samples", "2") == (
        "--- sample 1 ---\n" + api(Sampling(0.8, top_k=20, top_p=0.9), seed=5)
        + "--- sample 2 ---\n" + api(Sampling(0.8, top_k=20, top_p=0.9), seed=6))
    stop = free[len(prompt) + 4:][:2]
    assert printed("--temperature", "0", "--stop", stop) == free[: free.index(stop, len(prompt))] + "\n"
    beam = beam_search_text(tiny_model, tok, prompt, Decoding(20, num_beams=3))
    assert printed("--temperature", "0", "--beams", "3") == f"{prompt}{beam}\n"
    for dtype in ("int8", "int4"):
        quantised = for_inference(load_checkpoint(path).model, dtype)
        assert cli("generate", path, "--prompt", prompt, "--max-new-tokens", "20", "--temperature", "0",
                   "--dtype", dtype).out == api(Sampling(0), model=quantised)
    long = "word " * 80
    assert printed("--temperature", "0", "--truncate", prompt_args=("--prompt", long)) == api(
        Sampling(0), text=long, truncate_prompt=True)
    (tmp_path / "prompt.txt").write_text(prompt)
    assert printed("--temperature", "0", prompt_args=("--prompt-file", tmp_path / "prompt.txt")) == free


def test_interactive_mode_answers_each_line_and_survives_a_bad_one(tmp_path, tiny_model, bpe_tokenizer, cli):
    path = save_checkpoint(tmp_path / "ck", tiny_model, bpe_tokenizer)
    free = "The fox" + generate_text(tiny_model, bpe_tokenizer, "The fox", Decoding(20, temperature=0))
    result = cli("generate", path, "-i", "--temperature", "0", "--max-new-tokens", "20", "--dtype", "fp32",
                 stdin="The fox\n" + "word " * 80 + "\nThe fox\n\n")
    assert result.out.count(free) == 2  # both prompts answered; the long one in between is an error line
    assert "context window" in result.err


def test_generate_chat_renders_the_checkpoints_template(tmp_path, cli):
    from gptkit import Tokenizer
    from gptkit.data import Task

    tokenizer = Tokenizer.train_char(["<|user|>\n<|assistant|>\nhello world"])
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16))
    template = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}[assistant] "
    task = Task("chat", chat_template=template)
    save_checkpoint(tmp_path / "ck", model, tokenizer, extra={"task": task.to_dict()})
    out = cli("generate", tmp_path / "ck", "--chat", "--prompt", "hello", "--max-new-tokens", "5",
              "--temperature", "0").out
    prompt = task.render_chat([{"role": "user", "content": "hello"}], add_generation_prompt=True)
    assert prompt == "[user] hello\n[assistant] "
    greedy = Decoding(5, temperature=0)
    assert out == generate_text(model.eval(), tokenizer, prompt, greedy) + "\n"  # the prompt is not echoed
