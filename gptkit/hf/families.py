"""One mapping per Hugging Face model family: its config.json keys and its tensor names, both directions.

A `Family` turns a transformers config dict into a `ModelConfig` (refusing, by
name, what gptkit's blocks do not compute), writes one back, and lists the
tensors: each of our parameters is one of theirs, or several of theirs stacked
(our fused q/k/v and gate/up Linears), possibly transposed (GPT-2's Conv1D).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import ModelConfig, RopeScaling
from ..errors import GptkitError


@dataclass(frozen=True)
class Tensor:
    """Our parameter `ours` is their tensors `theirs` stacked along dim 0 (each transposed first, if so)."""

    ours: str
    theirs: tuple[str, ...]
    transposed: bool = False


class Family:
    """The base: what every family says. Subclasses fill in names and config keys."""

    model_type = ""
    architecture = ""  # the transformers class of an export, e.g. LlamaForCausalLM

    def config_from_hf(self, hf: dict) -> ModelConfig:
        raise NotImplementedError

    def config_to_hf(self, config: ModelConfig) -> dict:
        raise NotImplementedError

    def tensors(self, config: ModelConfig) -> list[Tensor]:
        raise NotImplementedError

    def unfit(self, config: ModelConfig) -> list[str]:
        """Why transformers' class of this family cannot compute `config`'s model (empty: it can)."""
        raise NotImplementedError

    def peft_module(self, role: str) -> str:
        """The module (under a block) that holds a projection role in transformers' model, for PEFT adapters."""
        raise NotImplementedError

    block_prefix = ""  # their name of block {i}, without the trailing dot

    def fused_in_theirs(self, role: str) -> bool:
        """True where transformers keeps this role inside a Linear shared with other roles (GPT-2's c_attn)."""
        return False

    fan_in_fan_out = False  # their Linears store (in, out) (GPT-2's Conv1D)


def _check(problems: list[str], name: str) -> None:
    if problems:
        raise GptkitError(f"this {name} checkpoint is not supported: {', '.join(problems)}")


class GPT2(Family):
    model_type, architecture = "gpt2", "GPT2LMHeadModel"
    block_prefix, fan_in_fan_out = "transformer.h.{i}", True
    _GELU_TANH = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"}
    _PEFT = {"q": "attn.c_attn", "k": "attn.c_attn", "v": "attn.c_attn", "o": "attn.c_proj", "up": "mlp.c_fc",
             "down": "mlp.c_proj"}

    def config_from_hf(self, hf: dict) -> ModelConfig:
        n_embd = hf.get("n_embd", 768)
        problems = []
        if hf.get("activation_function", "gelu_new") not in self._GELU_TANH:
            problems.append(f"activation_function={hf['activation_function']!r}")
        if hf.get("n_inner") not in (None, 4 * n_embd):
            problems.append(f"n_inner={hf['n_inner']}")
        if hf.get("scale_attn_by_inverse_layer_idx", False) or not hf.get("scale_attn_weights", True):
            problems.append("non-standard attention scaling")
        _check(problems, "GPT-2")
        resid, attn = float(hf.get("resid_pdrop", 0.0)), float(hf.get("attn_pdrop", 0.0))
        return ModelConfig(
            vocab_size=hf.get("vocab_size", 50257), block_size=hf.get("n_positions", 1024),
            n_layer=hf.get("n_layer", 12), n_head=hf.get("n_head", 12), n_embd=n_embd,
            dropout=resid, attn_dropout=None if attn == resid else attn, bias=True,
            layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5), tie_embeddings=hf.get("tie_word_embeddings", True),
        )

    def config_to_hf(self, config: ModelConfig) -> dict:
        return {
            "architectures": [self.architecture], "model_type": self.model_type,
            "vocab_size": config.vocab_size, "n_positions": config.block_size, "n_embd": config.n_embd,
            "n_layer": config.n_layer, "n_head": config.n_head, "n_inner": None,
            "activation_function": "gelu_new", "layer_norm_epsilon": config.layer_norm_eps,
            "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": config.attention_dropout,
            "initializer_range": 0.02, "scale_attn_weights": True, "tie_word_embeddings": config.tie_embeddings,
            "use_cache": True,
        }

    def unfit(self, c: ModelConfig) -> list[str]:
        problems = [f"{key}={value!r}" for key, value in (("norm", c.norm), ("mlp", c.mlp), ("positions", c.positions))
                    if value != getattr(ModelConfig, key)]
        problems += ["grouped-query attention"] * (c.kv_heads != c.n_head) + ["QK-norm"] * c.qk_norm
        problems += ["a head_dim of its own"] * (c.head_size * c.n_head != c.n_embd)
        problems += ["an MLP width other than 4 * n_embd"] * (c.ffn_size != 4 * c.n_embd)
        if not all(c.has_bias(part) for part in ("qkv", "o", "mlp")) or not c.bias:
            problems.append("no biases (GPT-2 in transformers always has them)")
        return problems

    def tensors(self, c: ModelConfig) -> list[Tensor]:
        tensors = [Tensor("wte.weight", ("transformer.wte.weight",)), Tensor("wpe.weight", ("transformer.wpe.weight",))]
        for i in range(c.n_layer):
            ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
            for a, b, transposed in (("ln_1", "ln_1", False), ("attn.qkv", "attn.c_attn", True),
                                     ("attn.proj", "attn.c_proj", True), ("ln_2", "ln_2", False),
                                     ("mlp.fc", "mlp.c_fc", True), ("mlp.proj", "mlp.c_proj", True)):
                tensors += [Tensor(f"{ours}{a}.weight", (f"{theirs}{b}.weight",), transposed),
                            Tensor(f"{ours}{a}.bias", (f"{theirs}{b}.bias",))]
        tensors += [Tensor(f"ln_f.{p}", (f"transformer.ln_f.{p}",)) for p in ("weight", "bias")]
        if not c.tie_embeddings:
            tensors.append(Tensor("lm_head.weight", ("lm_head.weight",)))
        return tensors

    def peft_module(self, role: str) -> str:
        return self._PEFT[role]

    def fused_in_theirs(self, role: str) -> bool:
        return role in ("q", "k", "v")


def _canonical(config: ModelConfig) -> ModelConfig:
    """The config as gptkit writes it: values that equal what they derive from are left unset, so a model
    that goes out and comes back has the config it had."""
    switches = {k: None for k in ("qkv_bias", "o_bias", "mlp_bias") if getattr(config, k) == config.bias}
    derived = dataclasses.replace(config, intermediate_size=0).ffn_size == config.ffn_size
    return dataclasses.replace(config, **switches, **({"intermediate_size": 0} if derived else {}))


class Llama(Family):
    """Llama 2/3.x, SmolLM2, TinyLlama: RMSNorm, SwiGLU, RoPE (with rope_scaling), grouped-query attention."""

    model_type, architecture = "llama", "LlamaForCausalLM"
    block_prefix = "model.layers.{i}"
    _PEFT = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
             "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}

    def config_from_hf(self, hf: dict) -> ModelConfig:
        problems = []
        if hf.get("hidden_act", "silu") != "silu":
            problems.append(f"hidden_act={hf['hidden_act']!r}")
        rope = self._rope(hf, problems)
        _check(problems, self.model_type)
        missing = [k for k in ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size",
                               "vocab_size") if not isinstance(hf.get(k), int)]
        if missing:
            raise GptkitError(f"config.json of a {self.model_type} model lacks {', '.join(missing)}")
        n_embd, n_head = hf["hidden_size"], hf["num_attention_heads"]
        head_dim = hf.get("head_dim") or n_embd // n_head
        return _canonical(ModelConfig(
            vocab_size=hf["vocab_size"], block_size=self._window(hf), n_layer=hf["num_hidden_layers"], n_head=n_head,
            n_embd=n_embd, n_kv_head=hf.get("num_key_value_heads") or n_head,
            head_dim=0 if head_dim * n_head == n_embd else head_dim, intermediate_size=hf["intermediate_size"],
            norm="rmsnorm", mlp="swiglu", positions="rope", layer_norm_eps=hf.get("rms_norm_eps", 1e-6),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)), bias=False, **rope, **self._biases(hf),
            attn_dropout=float(hf.get("attention_dropout", 0.0)) or None, qk_norm=self.qk_norm,
        ))

    qk_norm = False

    def _biases(self, hf: dict) -> dict:
        attention = bool(hf.get("attention_bias", False))
        return dict(qkv_bias=attention, o_bias=attention, mlp_bias=bool(hf.get("mlp_bias", False)))

    def _window(self, hf: dict) -> int:
        return hf.get("max_position_embeddings", 2048)

    @staticmethod
    def _rope(hf: dict, problems: list[str]) -> dict:
        """rope_theta and rope_scaling, from transformers 4's keys or 5's rope_parameters."""
        params = dict(hf.get("rope_parameters") or {})
        scaling = dict(hf.get("rope_scaling") or {})
        theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
        kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
        source = params if params.get("rope_type", "default") != "default" else scaling
        if kind == "default":
            return dict(rope_theta=float(theta))
        if kind not in ("linear", "llama3"):
            problems.append(f"rope scaling of type {kind!r} (linear and llama3 are supported)")
            return {}
        keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        return dict(rope_theta=float(theta), rope_scaling=RopeScaling(
            type=kind, **{k: type(getattr(RopeScaling, k))(source[k]) for k in keys if k in source}))

    def config_to_hf(self, c: ModelConfig) -> dict:
        rope: dict = {"rope_type": "default", "rope_theta": c.rope_theta}
        legacy = None
        if c.rope_scaling.type != "none":
            legacy = {"rope_type": c.rope_scaling.type, "factor": c.rope_scaling.factor}
            if c.rope_scaling.type == "llama3":
                legacy.update(low_freq_factor=c.rope_scaling.low_freq_factor,
                              high_freq_factor=c.rope_scaling.high_freq_factor,
                              original_max_position_embeddings=c.rope_scaling.original_max_position_embeddings)
            rope.update(legacy)
        return {
            "architectures": [self.architecture], "model_type": self.model_type, "vocab_size": c.vocab_size,
            "hidden_size": c.n_embd, "intermediate_size": c.ffn_size, "num_hidden_layers": c.n_layer,
            "num_attention_heads": c.n_head, "num_key_value_heads": c.kv_heads, "head_dim": c.head_size,
            "hidden_act": "silu", "max_position_embeddings": c.block_size, "rms_norm_eps": c.layer_norm_eps,
            "tie_word_embeddings": c.tie_embeddings, "rope_theta": c.rope_theta, "rope_scaling": legacy,
            "rope_parameters": rope, "attention_dropout": c.attention_dropout, "initializer_range": 0.02,
            "use_cache": True, **self._bias_keys(c),
        }

    def _bias_keys(self, c: ModelConfig) -> dict:
        return {"attention_bias": c.has_bias("qkv"), "mlp_bias": c.has_bias("mlp")}

    def unfit(self, c: ModelConfig) -> list[str]:
        problems = [f"{key}={value!r}" for key, value, want in (
            ("norm", c.norm, "rmsnorm"), ("mlp", c.mlp, "swiglu"), ("positions", c.positions, "rope"))
            if value != want]
        problems += ["QK-norm"] * (c.qk_norm != self.qk_norm)
        return problems + self._unfit_biases(c)

    def _unfit_biases(self, c: ModelConfig) -> list[str]:
        return ["a bias on q, k, v but not on o"] * (c.has_bias("qkv") != c.has_bias("o"))

    def tensors(self, c: ModelConfig) -> list[Tensor]:
        tensors = [Tensor("wte.weight", ("model.embed_tokens.weight",))]
        for i in range(c.n_layer):
            ours, theirs = f"blocks.{i}.", f"model.layers.{i}."
            attention, mlp = theirs + "self_attn.", theirs + "mlp."
            tensors += [Tensor(ours + "ln_1.weight", (theirs + "input_layernorm.weight",)),
                        Tensor(ours + "ln_2.weight", (theirs + "post_attention_layernorm.weight",))]
            for name, parts, on in (
                    ("attn.qkv", [attention + p for p in ("q_proj", "k_proj", "v_proj")], c.has_bias("qkv")),
                    ("attn.proj", [attention + "o_proj"], c.has_bias("o")),
                    ("mlp.fc", [mlp + "gate_proj", mlp + "up_proj"], c.has_bias("mlp")),
                    ("mlp.proj", [mlp + "down_proj"], c.has_bias("mlp"))):
                tensors.append(Tensor(f"{ours}{name}.weight", tuple(p + ".weight" for p in parts)))
                if on:
                    tensors.append(Tensor(f"{ours}{name}.bias", tuple(p + ".bias" for p in parts)))
            if c.qk_norm:
                tensors += [Tensor(f"{ours}attn.{n}.weight", (f"{attention}{n}.weight",)) for n in ("q_norm", "k_norm")]
        tensors.append(Tensor("ln_f.weight", ("model.norm.weight",)))
        if not c.tie_embeddings:
            tensors.append(Tensor("lm_head.weight", ("lm_head.weight",)))
        return tensors

    def peft_module(self, role: str) -> str:
        return self._PEFT[role]


class Mistral(Llama):
    """Mistral: Llama's block; its sliding window equals full attention within the window, so the window
    becomes the context length."""

    model_type, architecture = "mistral", "MistralForCausalLM"

    def _window(self, hf: dict) -> int:
        window = hf.get("sliding_window")
        return min(hf.get("max_position_embeddings", 32768), window or 1 << 62)

    def _biases(self, hf: dict) -> dict:
        return dict(qkv_bias=False, o_bias=False, mlp_bias=False)


class Qwen2(Llama):
    """Qwen2 / 2.5: Llama's block with biases on q, k and v (not on o or the MLP)."""

    model_type, architecture = "qwen2", "Qwen2ForCausalLM"

    def _window(self, hf: dict) -> int:
        window = hf.get("sliding_window") if hf.get("use_sliding_window") else None
        return min(hf.get("max_position_embeddings", 32768), window or 1 << 62)

    def _biases(self, hf: dict) -> dict:
        return dict(qkv_bias=True, o_bias=False, mlp_bias=False)

    def _bias_keys(self, c: ModelConfig) -> dict:
        return {"use_sliding_window": False}

    def _unfit_biases(self, c: ModelConfig) -> list[str]:
        want = {"qkv": True, "o": False, "mlp": False}
        return [f"{part} bias {'off' if on else 'on'}" for part, on in want.items() if c.has_bias(part) != on]


class Qwen3(Qwen2):
    """Qwen3: Llama's block with an RMSNorm over each head's queries and keys (QK-norm), and its own head_dim."""

    model_type, architecture = "qwen3", "Qwen3ForCausalLM"
    qk_norm = True

    def _biases(self, hf: dict) -> dict:
        attention = bool(hf.get("attention_bias", False))
        return dict(qkv_bias=attention, o_bias=attention, mlp_bias=False)

    def _bias_keys(self, c: ModelConfig) -> dict:
        return {"attention_bias": c.has_bias("qkv"), "use_sliding_window": False}

    def _unfit_biases(self, c: ModelConfig) -> list[str]:
        return (Llama._unfit_biases(self, c) + ["an MLP bias"] * c.has_bias("mlp"))


FAMILIES: dict[str, Family] = {f.model_type: f for f in (GPT2(), Llama(), Mistral(), Qwen2(), Qwen3())}
# The families an export may take, in order of preference (a Mistral-shaped model is written as Llama).
EXPORTS = ("gpt2", "llama", "qwen2", "qwen3")


def family_of_hf(hf: dict) -> Family:
    model_type = hf.get("model_type")
    if model_type not in FAMILIES:
        raise GptkitError(f"model_type {model_type!r} is not supported: gptkit reads {', '.join(FAMILIES)}")
    return FAMILIES[model_type]


def family_for(config: ModelConfig) -> Family:
    """The family whose transformers class computes `config`'s model exactly."""
    reasons = {}
    for name in EXPORTS:
        reasons[name] = FAMILIES[name].unfit(config)
        if not reasons[name]:
            return FAMILIES[name]
    detail = "; ".join(f"{name}: {', '.join(why)}" for name, why in reasons.items())
    raise GptkitError(f"no Hugging Face family computes this architecture ({detail}); export-hf writes "
                      f"gpt2, llama, qwen2 and qwen3 models")

