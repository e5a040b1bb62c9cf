"""Families the engine cannot serve exactly are refused when the model loads, with the reason,
and docs/models.md's table of tested families is the family matrix's own output."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.cli import main
from tests.engine.families.conftest import BEGIN, END
from tests.tiny_model import FAMILIES, build_tokenizer

MODELS_DOC = Path(__file__).resolve().parents[3] / "docs" / "models.md"


def _save(folder: Path, model_type: str, **config) -> Path:
    from transformers import CONFIG_MAPPING, AutoModelForCausalLM

    tokenizer = build_tokenizer(folder)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        CONFIG_MAPPING[model_type](vocab_size=len(tokenizer), **config))
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize(("model_type", "config", "reason"), [
    # ALiBi biases built from a 2-D mask, and a cache of its own layout.
    ("bloom", {"n_embed": 32, "n_layer": 2, "n_head": 4}, "cannot run this bloom model"),
    # State-space layers keep no keys/values for a prefix to extend.
    ("mamba", {"hidden_size": 32, "num_hidden_layers": 2, "state_size": 4},
     "linear_attention layers"),
])
def test_a_family_the_engine_cannot_serve_is_refused_at_model_info(
        tmp_path, capsys, model_type, config, reason):
    folder = _save(tmp_path / model_type, model_type, **config)
    code = main(["--model", str(folder), "--device", "cpu", "model", "info"])
    err = capsys.readouterr().err
    assert code == 2 and reason in err
    assert "Traceback" not in err


def test_the_docs_table_lists_every_family_of_the_matrix_all_passing():
    text = MODELS_DOC.read_text()
    table = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    named = [row.split("|")[1].strip() for row in rows[1:]]
    assert named == [spec.model_type for spec in FAMILIES.values()], "run `make families`"
    assert "✗" not in table and "not run" not in table
