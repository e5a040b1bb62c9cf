"""The method registry: every file in engine/methods is a method, found without torch, and
what the desktop and the library know of a method comes from it."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.api.session import Hello, MethodInfo
from engine.library.headers import is_prompt_file, read_header_metadata
from engine.methods import METHODS, describe_methods, get_method
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt

METHODS_DIR = Path(__file__).resolve().parents[3] / "engine" / "methods"
GEOMETRY = ModelGeometry("f" * 32, 32, 2, 2, 8)


def test_every_module_in_engine_methods_is_a_method_and_nothing_else_is():
    files = {p.stem for p in METHODS_DIR.glob("*.py")} - {"__init__", "base"}
    assert set(METHODS) == files and len(METHODS) >= 2
    assert [m.name for m in describe_methods()] == list(METHODS)


def test_the_registry_describes_each_method_from_its_own_module():
    for info in describe_methods():
        method = get_method(info.name)
        assert info.tensor_key == method.name and info.summary
        assert info.input_embeddings == method.input_embeddings
        assert info.default_lr == method.default_lr
        tensor = torch.randn(method.shape(3, GEOMETRY))
        assert tensor.shape[info.token_axis] == 3 == method.length_of(tensor)


def test_a_prompt_of_every_method_is_a_library_prompt_file_with_its_token_axis():
    for info in describe_methods():
        data = SoftPrompt(info.name, torch.ones(get_method(info.name).shape(2, GEOMETRY)),
                          GEOMETRY, task="t").to_bytes()
        meta = read_header_metadata(data)
        assert is_prompt_file(data, meta) and meta["token_axis"] == str(info.token_axis)
        renamed = dict(meta, method="something-else")
        assert not is_prompt_file(data, renamed)  # the method must name a tensor in the file


def test_the_worker_says_which_methods_it_has_in_its_hello():
    import argparse

    from engine.server.context import Context

    ctx = Context(argparse.Namespace(), lambda _event: None)
    hello = Hello.from_data(ctx.hello().to_data())
    assert hello.methods == describe_methods()
    assert all(isinstance(m, MethodInfo) for m in hello.methods)
