"""Random-weight models of published shapes with the embedded tokenizer, for speed benchmarks
at real sizes without their weights (``--geometry``). Timings match the real models of that
shape; their outputs mean nothing."""

from __future__ import annotations

import argparse

#: Published shapes with their vocabularies (the embedded tokenizer's ids all fall inside).
GEOMETRIES = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, vocab_size=49152,
                         tie_word_embeddings=True, rope_theta=100000.0),
    "llama-1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                     num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                     tie_word_embeddings=True, rope_theta=500000.0),
    "llama-3b": dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                     num_attention_heads=24, num_key_value_heads=8, vocab_size=128256,
                     tie_word_embeddings=True, rope_theta=500000.0),
    "llama-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                     tie_word_embeddings=False, rope_theta=500000.0),
}


def add_option(parser: argparse.ArgumentParser) -> None:
    """The ``--geometry`` option of a benchmark."""
    parser.add_argument("--geometry", choices=sorted(GEOMETRIES), default=None,
                        help="a random-weight model of this published shape with the embedded "
                             "tokenizer (speed only) instead of --model")


def bench_host(args: argparse.Namespace):
    """The benchmark's model: ``--geometry`` (random weights) or the usual ``--model``."""
    from engine.commands._common import load_host

    if getattr(args, "geometry", None) is None:
        return load_host(args)
    from engine.api.threads import resolve_threads
    from engine.model.host import ModelHost

    tokenizer = embedded_tokenizer()
    return ModelHost.random(geometry_config(args.geometry, tokenizer), tokenizer,
                            name=f"{args.geometry} (random weights)", device=args.device,
                            dtype=args.dtype, threads=resolve_threads(args.threads))


def embedded_tokenizer():
    """The embedded model's tokenizer: from ``$PROMPTBANK_TOKENIZER`` when set (a GPU machine
    that was sent the tokenizer but not the model), else from its conversion."""
    import os

    from transformers import AutoTokenizer

    from engine.model.convert import converted_folder
    from engine.model.spec import resolve_spec

    folder = os.environ.get("PROMPTBANK_TOKENIZER") or converted_folder(resolve_spec("default"))
    return AutoTokenizer.from_pretrained(folder)


def geometry_config(name: str, tokenizer):
    """A Llama config of the published shape ``name`` around ``tokenizer``'s special ids."""
    from transformers import LlamaConfig

    return LlamaConfig(max_position_embeddings=8192, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, **GEOMETRIES[name])
