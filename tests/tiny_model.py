"""Tiny random models of the common decoder families, with a small BPE tokenizer and a chat
template, saved as ordinary Hugging Face folders so tests go through the real loading code.

``FAMILIES`` names each family with what makes it differ from Llama; the suite's family
matrix (``tests/engine/families``) runs every one through the engine and checks it against
PEFT and transformers' own forward. Sizes stay tiny (hidden 32-64, 2-3 layers) and each
sliding-window family gets a window shorter than the test rows, so windows really cut.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "the movie was great and the acting was wonderful",
    "a terrible boring film with bad jokes",
    "positive negative neutral sports world business science",
    "classify the sentiment of this review",
    "translate the restaurant description into a sentence",
    "name food price area rating near family friendly",
    "hello world how are you today i am fine thank you",
    "spam ham win a free prize call now text stop",
    "0123456789 , . ! ? : ; ' \" ( ) - _ / = + * # @ & %",
] * 4

#: A window shorter than a test row (prompt + template + input), so sliding layers cut.
WINDOW = 6


@dataclass(frozen=True)
class Family:
    """A model family: its config class's ``model_type``, what sets it apart (the suite
    names these), and its tiny config's arguments."""

    model_type: str
    traits: tuple[str, ...]
    config: Callable[[], dict[str, Any]]


def _rope(**extra: Any) -> dict[str, Any]:
    return {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 512, **extra}


FAMILIES: dict[str, Family] = {
    "llama": Family("llama", ("rotary", "grouped-query attention"), _rope),
    "qwen2": Family("qwen2", ("rotary", "qkv bias", "hybrid sliding-window layers"),
                    lambda: _rope(num_hidden_layers=3, use_sliding_window=True,
                                  sliding_window=WINDOW, max_window_layers=1)),
    "qwen3": Family("qwen3", ("rotary", "QK-norm", "explicit head_dim"),
                    lambda: _rope(head_dim=16)),
    "mistral": Family("mistral", ("rotary", "sliding window on every layer"),
                      lambda: _rope(sliding_window=40)),
    "phi3": Family("phi3", ("rotary", "fused qkv and gate-up projections",
                            "partial rotary"),
                   lambda: _rope(partial_rotary_factor=0.5, pad_token_id=None)),
    "phi": Family("phi", ("parallel attention", "partial rotary", "QK layer norm",
                          "untied head with bias"),
                  lambda: _rope(partial_rotary_factor=0.5, qk_layernorm=True,
                                num_key_value_heads=4, tie_word_embeddings=False)),
    "gemma2": Family("gemma2", ("embedding scaling in the model", "sliding/full layers",
                                "attention and final logit softcapping"),
                     lambda: _rope(head_dim=16, sliding_window=WINDOW,
                                   query_pre_attn_scalar=16, final_logit_softcapping=3.0,
                                   attn_logit_softcapping=5.0)),
    "gemma3_text": Family("gemma3_text", ("embedding scaling in the embedding module",
                                          "5:1 sliding/full layers with two rope bases",
                                          "QK-norm"),
                          lambda: _rope(head_dim=16, num_hidden_layers=3,
                                        sliding_window=WINDOW, query_pre_attn_scalar=16,
                                        layer_types=["sliding_attention", "sliding_attention",
                                                     "full_attention"])),
    "olmo2": Family("olmo2", ("QK-norm", "norm after attention and MLP"),
                    lambda: _rope(num_key_value_heads=4)),
    "granite": Family("granite", ("embedding, residual, attention and logit multipliers",),
                      lambda: _rope(embedding_multiplier=1.5, residual_multiplier=0.9,
                                    attention_multiplier=0.25, logits_scaling=2.0)),
    "gpt2": Family("gpt2", ("learned absolute positions", "fused qkv (Conv1D)"),
                   lambda: {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 512,
                            "n_inner": 64}),
    "opt": Family("opt", ("learned positions with an offset of 2",
                          "embeddings narrower than the hidden size (projected in and out)"),
                  lambda: {"hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 2,
                           "num_attention_heads": 4, "max_position_embeddings": 512,
                           "word_embed_proj_dim": 16}),
    "gpt_neox": Family("gpt_neox", ("parallel attention", "partial rotary",
                                    "untied output head"),
                       lambda: {"hidden_size": 32, "intermediate_size": 64,
                                "num_hidden_layers": 2, "num_attention_heads": 4,
                                "max_position_embeddings": 512, "rotary_pct": 0.5,
                                "use_parallel_residual": True, "tie_word_embeddings": False}),
}


def build_tokenizer(folder: Path, *, vocab_size: int = 384):
    """Train the tiny BPE tokenizer (ChatML template) and save it into ``folder``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return fast


def build_tiny_model(folder: Path, *, family: str = "llama", vocab_size: int = 384,
                     seed: int = 0, lively: bool = False) -> Path:
    """Write a tiny ``family`` model and the tokenizer into ``folder`` and return it;
    ``lively`` makes its outputs depend on everything (see ``_enliven``)."""
    import torch
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM

    fast = build_tokenizer(folder, vocab_size=vocab_size)
    spec = FAMILIES[family]
    ids = {"vocab_size": len(fast), "bos_token_id": fast.bos_token_id,
           "eos_token_id": fast.eos_token_id, "pad_token_id": fast.pad_token_id,
           "tie_word_embeddings": True}
    config = CONFIG_MAPPING[spec.model_type](**{**ids, **spec.config()})
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    if lively:
        _enliven(model, seed)
    model.save_pretrained(folder)
    return folder


#: Matrices initialised with std 0.02 make greedy decoding repeat one token whatever the
#: context; this many times larger, outputs depend on the prompt, the input and positions.
LIVELY_SCALE = 8.0


def _enliven(model, seed: int) -> None:
    """Scale the matrices up and give norm weights and biases random values: left at 1 and
    0 they would hide a wrong norm offset (Gemma's ``1 + w``), a skipped bias or QK-norm."""
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.add_(torch.randn(param.shape, generator=gen) * 0.3)
            else:
                param.mul_(LIVELY_SCALE)


if __name__ == "__main__":
    print(build_tiny_model(Path(sys.argv[1]), family=sys.argv[2] if len(sys.argv) > 2
                           else "llama"))
