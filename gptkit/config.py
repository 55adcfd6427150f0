"""Configs are frozen dataclasses, validated on construction, loaded by one function.

`load_config(RunConfig, "tiny", ["n_layer=4"])` reads a preset (a name from
gptkit/configs/) or a TOML/JSON file, applies `key=value` overrides and
validates. Unknown keys and values of the wrong type or outside their choices
are errors that name the key, so a typo never silently falls back to a default.
A field whose type is itself a config dataclass is a `[section]` of the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from .configfile import from_dict, load_config, presets, read_config_file, to_dict
from .errors import GptkitError
from .runtime import DtypeName
from .validate import check_fields, require

__all__ = [
    "ModelConfig", "RopeScaling", "GrowStage", "TrainConfig", "LoraConfig", "TranslationSettings", "QaSettings",
    "SummarizationSettings", "EncoderSettings", "TaskConfig", "FinetuneConfig", "RunConfig", "load_config",
    "from_dict", "to_dict", "presets", "read_config_file",
]


@dataclass(frozen=True)
class RopeScaling:
    """[model.rope_scaling]: how rotary frequencies are stretched for a longer context (Llama 3's "llama3")."""

    type: Literal["none", "linear", "llama3"] = "none"
    factor: float = 1.0  # linear: every frequency / factor; llama3: the low frequencies / factor
    low_freq_factor: float = 1.0  # llama3: wavelengths above original / low_freq_factor are scaled
    high_freq_factor: float = 4.0  # llama3: wavelengths below original / high_freq_factor are kept
    original_max_position_embeddings: int = 8192  # llama3: the context the model was pretrained on

    def __post_init__(self):
        section = "model config [model.rope_scaling]"
        check_fields(self, section)
        require(self, section, factor=">= 1", low_freq_factor="> 0", high_freq_factor="> 0",
                original_max_position_embeddings=">= 1")
        if self.type == "llama3" and self.high_freq_factor <= self.low_freq_factor:
            raise GptkitError(f"{section}: high_freq_factor ({self.high_freq_factor}) must exceed "
                              f"low_freq_factor ({self.low_freq_factor})")


@dataclass(frozen=True)
class ModelConfig:
    """Shape and architecture of a decoder-only Transformer: GPT-2's by default, Llama/Qwen's by choice.

    The architecture axis: norm, mlp, positions (with rope_theta, rope_scaling), n_kv_head
    (grouped-query attention), head_dim, qk_norm, the bias switches and tie_embeddings.
    A value of 0 (or None for a bias switch) means "derived": see the properties below.
    """

    vocab_size: int = 50257  # token ids are in [0, vocab_size)
    block_size: int = 1024  # context window (learned positions, or the longest sequence for RoPE)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0  # on embeddings and residual branches (and attention weights, by default)
    # On attention weights; None = `dropout`. On CPU it is costly (a mask per
    # attention weight, and no fused attention kernel), so 0 trains faster.
    attn_dropout: float | None = None
    bias: bool = True  # biases in Linear and LayerNorm, as in GPT-2 (the switches below refine it)
    layer_norm_eps: float = 1e-5  # epsilon of every norm, LayerNorm or RMSNorm
    span_head: bool = False  # a start/end head for extractive QA (transformers' GPT2ForQuestionAnswering)
    pooling: Literal["", "mean", "last"] = ""  # an encoder: the model gives sentence embeddings pooled this way
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    mlp: Literal["gelu", "swiglu"] = "gelu"  # GPT-2's tanh-GELU MLP, or SwiGLU (gate, up, down)
    intermediate_size: int = 0  # MLP width; 0 = 4 * n_embd (gelu) or 8/3 * n_embd rounded up to 16 (swiglu)
    positions: Literal["learned", "rope"] = "learned"  # learned absolute positions, or rotary embeddings
    rope_theta: float = 10000.0  # RoPE base: the longest wavelength is about 2 pi rope_theta positions
    rope_scaling: RopeScaling = field(default_factory=RopeScaling)
    n_kv_head: int = 0  # key/value heads shared by groups of query heads (GQA; 1 = MQA); 0 = n_head
    head_dim: int = 0  # size of each head; 0 = n_embd // n_head
    qk_norm: bool = False  # RMSNorm on each head's queries and keys (Qwen3)
    qkv_bias: bool | None = None  # biases of the q, k, v projections; None = bias (Qwen2: true alone)
    o_bias: bool | None = None  # bias of the attention output projection; None = bias
    mlp_bias: bool | None = None  # biases of the MLP projections; None = bias
    tie_embeddings: bool = True  # the LM head is the token embedding (else a Linear of its own)

    def __post_init__(self):
        if isinstance(self.rope_scaling, dict):  # a config rebuilt from its to_dict() form
            object.__setattr__(self, "rope_scaling", from_dict(RopeScaling, self.rope_scaling, "model config"))
        check_fields(self, "model config")
        require(self, "model config", vocab_size=">= 1", block_size=">= 1", n_layer=">= 1", n_head=">= 1",
                n_embd=">= 1", dropout="[0, 1)", attn_dropout="[0, 1)", layer_norm_eps="> 0",
                intermediate_size=">= 0", rope_theta=">= 1", n_kv_head=">= 0", head_dim=">= 0")
        if not self.head_dim and self.n_embd % self.n_head:
            raise GptkitError(f"model config: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}), "
                              f"or set head_dim")
        if self.n_head % self.kv_heads:
            raise GptkitError(f"model config: n_head ({self.n_head}) must be a multiple of n_kv_head "
                              f"({self.n_kv_head}): each key/value head serves a whole group of query heads")
        if self.positions == "rope" and self.head_size % 2:
            raise GptkitError(f"model config: RoPE rotates pairs of dimensions: head_dim ({self.head_size}) "
                              f"must be even")
        if self.span_head and self.pooling:
            raise GptkitError("model config: a model is an encoder (pooling) or has a span head, not both")

    def grown(self, n_layer: int | None = None, width_factor: int = 1) -> ModelConfig:
        """This shape with n_layer blocks and n_embd, n_head (and n_kv_head, the MLP) `width_factor` times as
        large: heads keep their size."""
        return dataclasses.replace(
            self, n_layer=n_layer or self.n_layer, n_embd=self.n_embd * width_factor,
            n_head=self.n_head * width_factor, n_kv_head=self.n_kv_head * width_factor,
            # a derived SwiGLU width is rounded, so it would not scale exactly: it is pinned instead
            intermediate_size=self.ffn_size * width_factor if self.intermediate_size or self.mlp == "swiglu" and
            width_factor > 1 else 0)

    @property
    def head_size(self) -> int:
        """The size of each attention head (head_dim, or n_embd // n_head when unset)."""
        return self.head_dim or self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        """The number of key/value heads (n_kv_head, or n_head when unset)."""
        return self.n_kv_head or self.n_head

    @property
    def ffn_size(self) -> int:
        """The MLP's hidden width."""
        if self.intermediate_size:
            return self.intermediate_size
        return 4 * self.n_embd if self.mlp == "gelu" else -(-8 * self.n_embd // 3 // 16) * 16

    def has_bias(self, part: Literal["qkv", "o", "mlp"]) -> bool:
        switch = {"qkv": self.qkv_bias, "o": self.o_bias, "mlp": self.mlp_bias}[part]
        return self.bias if switch is None else switch

    @property
    def attention_dropout(self) -> float:
        return self.dropout if self.attn_dropout is None else self.attn_dropout


@dataclass(frozen=True)
class GrowStage:
    """One stage of progressive training: from `at` on, the model has this shape (unset = unchanged).

    `at` is a step (an integer) or a fraction of max_steps (a number in (0, 1), e.g. 0.25).
    A larger n_layer grows depth (train.grow_method); a multiple of n_embd grows width (Net2Net),
    with n_head scaled alike so every head keeps its size.
    """

    at: int | float
    n_layer: int | None = None
    n_embd: int | None = None

    def __post_init__(self):
        check_fields(self, "train config: grow stage")
        require(self, "train config: grow stage", n_layer=">= 1", n_embd=">= 1")
        if isinstance(self.at, int) and self.at < 1 or isinstance(self.at, float) and not 0 < self.at < 1:
            raise GptkitError(f"train config: grow stage at must be a step >= 1 or a fraction in (0, 1), "
                              f"got {self.at!r}")
        if self.n_layer is None and self.n_embd is None:
            raise GptkitError(f"train config: grow stage at {self.at} changes nothing: give n_layer and/or n_embd")

    def step(self, max_steps: int) -> int:
        """The number of optimiser steps after which the model takes this shape."""
        return self.at if isinstance(self.at, int) else max(1, round(self.at * max_steps))


@dataclass(frozen=True)
class TrainConfig:
    """How to train: data, batch, optimiser, schedule, precision, evaluation, checkpoints."""

    data: str = ""  # shard directory written by `gptkit prepare`
    out_dir: str = "runs/train"  # checkpoints, metrics, plot and report go here
    batch_size: int = 8  # sequences per micro-batch, per process
    grad_accum: int = 1  # micro-batches per optimiser step, per process
    max_steps: int = 1000
    max_minutes: float = 0.0  # stop (and save) after this much wall-clock time; 0 = no limit
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup_steps: int = 100
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"  # wsd: warmup-stable-decay
    decay_fraction: float = 0.2  # wsd: share of steps spent decaying to min_lr
    optimizer: Literal["adamw", "muon"] = "adamw"  # muon: Muon for hidden weight matrices, AdamW for the rest
    muon_lr: float = 0.02  # optimizer=muon: peak lr of the hidden matrices (same schedule shape as lr)
    weight_decay: float = 0.1  # on weight matrices only
    decay_embeddings: bool = False  # also decay the token/position embeddings
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global gradient norm; 0 = off
    dtype: DtypeName = "auto"  # bf16 or fp16 autocast, fp32, or auto (bf16 where the hardware is fast at it)
    device: str = "auto"
    compile: bool = False  # torch.compile the model (falls back to eager if it fails)
    fsdp: bool = False  # under torchrun: shard parameters with FSDP2 instead of DDP
    seed: int = 1337
    eval_interval: int = 250  # steps between evaluations (and at the end)
    eval_batches: int = 20  # val batches per evaluation; 0 = every window of the val split
    sample_tokens: int = 0  # tokens to sample at each evaluation; 0 = none
    sample_temperature: float = 0.8  # sampling of those tokens; 0 = greedy
    sample_top_k: int = 200  # 0 = no top-k filter
    checkpoint_interval: int = 500  # steps between checkpoints (also at the end and on SIGINT/SIGTERM)
    keep_last: int = 2  # step checkpoints kept besides `best`
    log_interval: int = 10  # steps between metric lines
    peak_flops: float = 0.0  # for MFU; 0 = a guess for the device and dtype
    # progressive training: [model] is the starting shape; each stage grows it, e.g.
    # grow = [{at = 0.15, n_layer = 4}, {at = 0.4, n_layer = 8}]
    grow: tuple[GrowStage, ...] = ()
    grow_method: Literal["stack", "identity"] = "stack"  # new blocks: copies of trained ones, or identity blocks
    grow_order: Literal["repeat", "interleave"] = "repeat"  # [1..L, 1..L] or [1, 1, 2, 2, ..] (see gptkit.grow)
    grow_optimizer: Literal["carry", "reset"] = "carry"  # carry the optimizer state along with copied weights
    grow_warmup_steps: int = 0  # after each growth, ramp the lr up again over this many steps

    def __post_init__(self):
        section = "train config"
        check_fields(self, section)
        require(self, section, batch_size=">= 1", grad_accum=">= 1", max_steps=">= 1", eval_interval=">= 1",
                checkpoint_interval=">= 1", keep_last=">= 1", log_interval=">= 1", warmup_steps=">= 0",
                eval_batches=">= 0", sample_tokens=">= 0", sample_temperature=">= 0", sample_top_k=">= 0",
                lr="> 0", min_lr=">= 0", muon_lr="> 0", decay_fraction="(0, 1]", weight_decay=">= 0",
                grad_clip=">= 0", max_minutes=">= 0", peak_flops=">= 0", grow_warmup_steps=">= 0")
        if self.min_lr > self.lr:
            raise GptkitError(f"{section}: min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        if self.optimizer == "muon" and self.fsdp:
            raise GptkitError(f"{section}: optimizer=muon needs whole weight matrices; use DDP (fsdp=false)")
        starts = [stage.step(self.max_steps) for stage in self.grow]
        if starts != sorted(set(starts)) or any(s >= self.max_steps for s in starts):
            raise GptkitError(f"{section}: grow stages must start at increasing steps below max_steps "
                              f"({self.max_steps}); they start at {starts}")


# The projections of a block by role: attention's query, key, value and output, the MLP's gate, up and down
# (GPT-2's GELU MLP has no gate). Roles hold wherever the weights are fused into one Linear.
LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")
# Earlier names of the same projections, still accepted in configs.
_LORA_ALIASES = {"attn.qkv": ("q", "k", "v"), "attn.proj": ("o",), "mlp.fc": ("gate", "up"), "mlp.proj": ("down",)}


@dataclass(frozen=True)
class LoraConfig:
    """Low-rank adapters (gptkit.lora): rank 0 trains every weight instead."""

    rank: int = 0  # rank of each adapter; 0 = no adapters (full fine-tuning)
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.0  # on the adapter's input
    targets: tuple[str, ...] = LORA_TARGETS  # which roles of every block get one (those a block lacks are skipped)

    def __post_init__(self):
        check_fields(self, "lora config")
        require(self, "lora config", rank=">= 0", alpha="> 0", dropout="[0, 1)")
        roles = [role for t in self.targets for role in _LORA_ALIASES.get(t, (t,))]
        if not roles or set(roles) - set(LORA_TARGETS):
            raise GptkitError(f"lora config: targets must be some of {', '.join(LORA_TARGETS)}, "
                              f"got {list(self.targets)}")
        object.__setattr__(self, "targets", tuple(dict.fromkeys(roles)))


@dataclass(frozen=True)
class TranslationSettings:
    """[task.translation]: the languages of a translation task."""

    source_lang: str = "en"  # the {lang} of the source file, and a language name in the template
    target_lang: str = "de"

    def __post_init__(self):
        check_fields(self, "task config [task.translation]")


@dataclass(frozen=True)
class QaSettings:
    """[task.qa]: how questions are answered, and the context windows of an extractive model."""

    answer: Literal["extract", "generate"] = "extract"  # a span of the context (span head) or a completion
    doc_stride: int = 128  # extract: context tokens shared by consecutive windows of a long context
    max_question_tokens: int = 64  # extract: a longer question keeps its first tokens
    max_answer_tokens: int = 30  # extract: the longest span predicted
    window: int = 0  # extract: tokens per window, in training and answering alike; 0 = the model's context

    def __post_init__(self):
        check_fields(self, "task config [task.qa]")
        require(self, "task config [task.qa]", doc_stride=">= 0", max_question_tokens=">= 1",
                max_answer_tokens=">= 1", window=">= 0")


@dataclass(frozen=True)
class SummarizationSettings:
    """[task.summarization]: the JSON keys of a document and of its summary."""

    document_field: str = "document"
    summary_field: str = "summary"

    def __post_init__(self):
        check_fields(self, "task config [task.summarization]")


@dataclass(frozen=True)
class EncoderSettings:
    """[task.encoder]: an encoder's training on text pairs (formats pairs and sts)."""

    temperature: float = 0.05  # pairs: InfoNCE logits are cosine similarities / temperature
    max_text_tokens: int = 256  # a longer text keeps its first tokens (at most block_size)

    def __post_init__(self):
        check_fields(self, "task config [task.encoder]")
        require(self, "task config [task.encoder]", temperature="> 0", max_text_tokens=">= 1")


# keys that moved from [task] into a format's table: a file that still has one is told where it went
MOVED_TASK_KEYS = {**{k: "translation" for k in ("source_lang", "target_lang")},
                   **{k: "qa" for k in ("answer", "doc_stride", "max_question_tokens", "max_answer_tokens")},
                   **{k: "summarization" for k in ("document_field", "summary_field")},
                   **{k: "encoder" for k in ("temperature", "max_text_tokens")}}


@dataclass(frozen=True)
class TaskConfig:
    """Fine-tuning examples: where they are, their format, how they become prompts, how runs are judged.

    train.data names the training examples: a JSONL/JSON file, or for translation two aligned
    text files written as one path with {lang}, e.g. "multi30k/train.{lang}.gz". Settings that
    belong to one format are in its own table: [task.translation], [task.qa],
    [task.summarization], [task.encoder].
    """

    init: str = ""  # start from this gptkit checkpoint or Hugging Face GPT-2 directory; "" = from scratch
    # translation, completion, alpaca, chat, qa, summarization; pairs, sts: an encoder's training (contrastive)
    format: str = "auto"
    val_data: str = ""  # held-out examples in the same format; "" = hold out val_examples of train.data
    val_examples: int = 500  # examples held out of train.data when val_data is unset (0 = none)
    template: str = ""  # prompt template with {fields}; "" = the format's default
    chat_template: str = ""  # Jinja; "" = the init tokenizer's own, else gptkit's (stored in the checkpoint)
    on_malformed: Literal["skip", "error"] = "skip"  # a line that is not a valid example
    pack: bool = True  # several examples per row (attention kept within each); false = one per row, padded
    # at most this many tokens per example and per packed row (and never more than the model's context);
    # 0 = the model's context. A pretrained model's long window (SmolLM2: 8,192) need not be trained whole
    max_length: int = 0
    prompt_loss: bool = False  # also learn the prompt's tokens (language modelling on the documents too)
    vocab_size: int = 8192  # from scratch: size of the byte-level BPE trained on the examples
    tokenizer: str = ""  # from scratch: a tokenizer.json to use instead of training one
    # what picks the best checkpoint: val loss, or a score on val (translation: bleu, chrf; qa: exact, f1;
    # summarization: rouge1, rouge2, rougeL, rougeLsum), decoded greedily; pairs: recall1, mrr; sts: spearman
    select: Literal["loss", "bleu", "chrf", "exact", "f1", "rouge1", "rouge2", "rougeL", "rougeLsum", "recall1", "mrr",
                    "spearman"] = "loss"
    select_examples: int = 200  # val examples decoded for a score at each evaluation
    patience: int = 0  # stop after this many evaluations without a better `select`; 0 = never
    max_new_tokens: int = 128  # generation length limit when scoring
    translation: TranslationSettings = field(default_factory=TranslationSettings)
    qa: QaSettings = field(default_factory=QaSettings)
    summarization: SummarizationSettings = field(default_factory=SummarizationSettings)
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    moved_keys = MOVED_TASK_KEYS  # not a setting: where the loader says an old key went

    def __post_init__(self):
        check_fields(self, "task config")
        require(self, "task config", val_examples=">= 0", vocab_size=">= 1", select_examples=">= 1",
                patience=">= 0", max_new_tokens=">= 1", max_length=">= 0")


@dataclass(frozen=True)
class FinetuneConfig:
    """A fine-tuning run: [task] examples and init, [lora], and the [train] and [model] of any run.

    [model] is the shape when training from scratch; with task.init the model's shape is the
    checkpoint's, and only [model]'s dropout settings (and pooling, for pairs/sts: mean when unset) apply.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)

    def __post_init__(self):
        if self.train.grow:
            raise GptkitError("finetune config: train.grow is for pretraining; fine-tune a grown checkpoint instead")
        if self.lora.rank and not self.task.init:
            raise GptkitError("finetune config: LoRA adapts a trained model: set task.init, or lora.rank = 0")

    @property
    def run(self) -> RunConfig:
        return RunConfig(self.model, self.train)


@dataclass(frozen=True)
class RunConfig:
    """A training run: a [model] and a [train] table in one TOML file."""

    model: ModelConfig = field(default_factory=ModelConfig)  # the starting shape when train.grow is set
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        self.shapes()  # every stage of the growth schedule must be a valid, larger model

    def shapes(self) -> list[ModelConfig]:
        """The model's shape in each stage: [model], then after each grow stage in turn."""
        shapes = [self.model]
        for stage in self.train.grow:
            old = shapes[-1]
            n_layer, n_embd = stage.n_layer or old.n_layer, stage.n_embd or old.n_embd
            if n_layer < old.n_layer or n_embd < old.n_embd or n_embd % old.n_embd:
                raise GptkitError(f"train config: grow stage at {stage.at} must grow the model: n_layer >= "
                                  f"{old.n_layer} and n_embd a multiple of {old.n_embd}, got n_layer={n_layer}, "
                                  f"n_embd={n_embd}")
            shapes.append(old.grown(n_layer, n_embd // old.n_embd))
        return shapes
