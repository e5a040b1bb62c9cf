"""Writes tiny Hugging Face models as GGUF files, as llama.cpp's converter lays them out, so the
engine's GGUF conversion can be checked against the model it came from.

Only what the tests need: the Llama, Qwen2 and Gemma 3 architectures, float32 or Q8_0
tensors, the tiny byte-level BPE tokenizer, and the metadata that decides how a converted
model frames text (chat template, fine-tune name, add-BOS flag).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tests.tiny_model import build_tokenizer

#: Per architecture: the transformers config of the tiny model, and whether llama.cpp
#: permutes q/k rows (Llama) or stores norms as 1 + w (Gemma).
ARCHES = {
    "llama": {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 512, "rope_theta": 10000.0},
    "qwen2": {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
              "max_position_embeddings": 512, "rope_theta": 10000.0},
    # Six layers: the file keeps no layer types, and transformers rebuilds Gemma 3's
    # default 5:1 sliding/full pattern; the other settings are ones GGUF stores.
    "gemma3": {"model_type": "gemma3_text", "hidden_size": 32, "intermediate_size": 64,
               "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 1,
               "head_dim": 16, "max_position_embeddings": 512, "sliding_window": 8,
               "rope_theta": 1000000.0},
}


def build_hf(folder: Path, arch: str, *, seed: int = 0) -> Path:
    """A tiny random ``arch`` model with the tiny tokenizer, as a Hugging Face folder."""
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM

    tokenizer = build_tokenizer(folder)
    settings = dict(ARCHES[arch])
    kind = settings.pop("model_type")
    theta = settings.pop("rope_theta")
    config = CONFIG_MAPPING[kind](vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                  eos_token_id=tokenizer.eos_token_id,
                                  pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
                                  **settings)
    if kind == "gemma3_text":
        config.rope_parameters["full_attention"]["rope_theta"] = theta
    else:
        config.rope_parameters["rope_theta"] = theta
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 1:
                param.add_(torch.randn(param.shape, generator=gen) * 0.3)
            else:
                param.mul_(8.0)
    model.save_pretrained(folder)
    return folder


def _llama_permute(weights: np.ndarray, heads: int) -> np.ndarray:
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_gguf(hf_folder: Path, out: Path, arch: str, *, quant: str = "F32",
               chat_template: bool = True, finetune: str = "", add_bos: bool = False) -> Path:
    """Write the model in ``hf_folder`` as the GGUF file ``out``."""
    import gguf
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_folder, dtype=torch.float32)
    config = model.config
    tokenizer_json = json.loads((hf_folder / "tokenizer.json").read_text())
    writer = gguf.GGUFWriter(str(out), arch)
    writer.add_name("tiny test model")
    if finetune:
        writer.add_string("general.finetune", finetune)
    writer.add_file_type(0 if quant == "F32" else 7)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(ARCHES[arch]["rope_theta"])
    if arch == "gemma3":
        writer.add_key_length(config.head_dim)
        writer.add_value_length(config.head_dim)
        writer.add_sliding_window(config.sliding_window)

    vocab = tokenizer_json["model"]["vocab"]
    added = {t["content"]: t["id"] for t in tokenizer_json["added_tokens"]}
    tokens = sorted({**vocab, **added}.items(), key=lambda item: item[1])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([t for t, _ in tokens])
    writer.add_token_types([3 if t in added else 1 for t, _ in tokens])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m)
                             for m in tokenizer_json["model"]["merges"]])
    writer.add_bos_token_id(config.bos_token_id)
    writer.add_eos_token_id(config.eos_token_id)
    writer.add_pad_token_id(config.pad_token_id)
    writer.add_unk_token_id(tokenizer_json["model"]["vocab"].get("<unk>", 0))
    writer.add_add_bos_token(add_bos)
    if chat_template:
        from tests.tiny_model import CHAT_TEMPLATE

        writer.add_chat_template(CHAT_TEMPLATE)

    names = gguf.get_tensor_name_map(
        next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch), config.num_hidden_layers)
    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight":
            continue  # tied to the embedding, which llama.cpp writes once
        base, suffix = hf_name.rsplit(".", 1)
        name = names.get_name(base) + "." + suffix
        data = tensor.numpy().astype(np.float32)
        if arch == "llama" and base.endswith(("q_proj", "k_proj")):
            heads = config.num_attention_heads if base.endswith("q_proj") \
                else config.num_key_value_heads
            data = _llama_permute(data, heads)
        if arch == "gemma3" and base.endswith("norm"):
            data = data + 1
        if quant == "Q8_0" and data.ndim == 2 and data.shape[1] % 32 == 0:
            packed = gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(name, packed, raw_shape=packed.shape,
                              raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out
