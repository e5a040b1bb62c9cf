"""The family matrix's fixtures, and the table of its results.

Each family's tiny model is built once per session (``family_case``). Every test of the
matrix takes a ``family`` parameter (and most a ``method``) and is named for the check it
makes; ``pytest tests/engine/families --family-table FILE`` rewrites the table of tested
families between the markers in FILE from the outcomes of that run (``make families``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TEST_DEVICE
from tests.tiny_model import FAMILIES, build_tiny_model

BEGIN = "<!-- family-table:begin (written by `make families`; do not edit) -->"
END = "<!-- family-table:end -->"
#: Check names for the table: a test function's name without ``test_``, as people read it.
CHECKS = {
    "loss_and_gradients_equal_peft": "loss & gradients = PEFT",
    "greedy_tokens_are_pefts_argmax": "greedy = PEFT",
    "mixed_batch_equals_each_row_alone": "mixed batch = alone",
    "prompt_cache_gives_the_same_scores": "prompt KV cache",
    "resume_and_eval_agree": "resume & eval",
    "forward_check_passes": "forward check",
    "a_vllm_export_through_inputs_embeds_gives_our_greedy_answer": "vLLM prompt_embeds",
}
_RESULTS = pytest.StashKey[dict]()


@dataclass
class FamilyCase:
    """One family's tiny model: its folder and its host (float32 on the test device)."""

    family: str
    folder: Path
    host: object


@pytest.fixture(scope="session")
def family_case(tmp_path_factory: pytest.TempPathFactory):
    """``family_case(name)``: the family's tiny lively model, built and loaded once."""
    from engine.model.host import ModelHost

    built: dict[str, FamilyCase] = {}

    def get(family: str) -> FamilyCase:
        if family not in built:
            folder = build_tiny_model(tmp_path_factory.mktemp(f"family-{family}"),
                                      family=family, lively=True)
            host = ModelHost(str(folder), device=TEST_DEVICE, dtype="float32")
            built[family] = FamilyCase(family, folder, host)
        return built[family]

    return get


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--family-table", default=None, metavar="FILE",
                     help="rewrite the tested-families table in FILE from this run's results")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RESULTS] = defaultdict(lambda: defaultdict(list))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    check = CHECKS.get(getattr(item, "originalname", "").removeprefix("test_"))
    params = getattr(getattr(item, "callspec", None), "params", {})
    if check and "family" in params and (call.when == "call" or report.failed):
        item.config.stash[_RESULTS][params["family"]][check].append(
            (params.get("method", ""), report.outcome))


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = session.config.getoption("--family-table")
    if not target:
        return
    path = Path(target)
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise pytest.UsageError(f"{path} has no family-table markers")
    table = family_table(session.config.stash[_RESULTS])
    head, rest = text.split(BEGIN, 1)
    path.write_text(head + BEGIN + "\n" + table + END + rest.split(END, 1)[1])


def family_table(results: dict) -> str:
    """Markdown: one row per family, what sets it apart, and each check's outcome."""
    checks = list(CHECKS.values())
    lines = ["| family | what sets it apart | " + " | ".join(checks) + " |",
             "| --- | --- | " + " | ".join("---" for _ in checks) + " |"]
    for name, spec in FAMILIES.items():
        cells = []
        for check in checks:
            outcomes = results.get(name, {}).get(check, [])
            if not outcomes:
                cells.append("not run")
                continue
            methods = ", ".join(sorted({m for m, _ in outcomes if m}))
            ok = all(o == "passed" for _, o in outcomes)
            cells.append(f"{'✓' if ok else '✗'} {methods}".strip())
        lines.append(f"| {spec.model_type} | {'; '.join(spec.traits)} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines) + "\n"
