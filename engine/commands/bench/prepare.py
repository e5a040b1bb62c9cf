"""``promptbank bench prepare``: what a training job costs before its first step, per row.

A CSV of ``--rows`` rows is made from the benchmark data (AG News, SST-2 and SMS texts with
their labels, in turn, numbered so no two rows are alike) and measured as a user meets it:
``task create`` (read, check and snapshot the file), then ``TrainingJob.start`` (read the
snapshot, tokenise every row through the chat format, build the job) with its progress
callbacks. One very long row (``--long-mb``) is tokenised alone to show that it is cut before
tokenising: its time and the memory it added.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from engine.commands.bench._geometry import add_option, bench_host
from engine.commands.bench.quality import DATA_DIR, LOADERS

if TYPE_CHECKING:
    from engine.model.host import ModelHost

FALLBACK = [("a gripping , funny and moving film", "positive"),
            ("the plot is thin and the jokes fall flat", "negative")]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prepare", help="preparing a dataset for training: ms per row")
    p.add_argument("--rows", type=int, default=100_000, help="rows of the CSV")
    p.add_argument("--data", default=str(DATA_DIR), help="folder of the benchmark data")
    p.add_argument("--long-mb", type=float, default=50.0, help="size of the one long row")
    add_option(p)
    p.set_defaults(func=cmd_prepare_bench)


def source_rows(data_dir: Path) -> list[tuple[str, str]]:
    """(text, label) pairs of every benchmark task found, interleaved (else a fallback)."""
    tasks = [LOADERS[name][0](data_dir)[0] for name in ("agnews", "sst2", "sms_spam")
             if (data_dir / name).is_dir()]
    mixed = [row for group in itertools.zip_longest(*tasks) for row in group if row]
    return mixed or FALLBACK


def write_csv(path: Path, rows: int, data_dir: Path) -> Path:
    """A CSV (text, label) of ``rows`` rows from the benchmark data, numbered."""
    pool = source_rows(data_dir)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(rows):
            text, label = pool[i % len(pool)]
            writer.writerow([f"{text} ({i})", label])
    return path


def _rss_mb() -> float | None:
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / 2**20


def start_job(host: ModelHost, folder: Path, csv_path: Path) -> dict:
    """Create the task from the CSV, then start a training job on it; seconds of each."""
    from engine.library import Library
    from engine.training.config import TrainConfig
    from engine.training.job import TrainingJob

    lib = Library(folder / "lib")
    started = time.perf_counter()
    lib.create_task("big", kind="classify", data=csv_path, instruction="Classify this text.")
    created = time.perf_counter() - started
    calls: list[float] = []
    started = time.perf_counter()
    job = TrainingJob.start(lib, host, "big", TrainConfig(steps=1, eval_every=0),
                            on_rows=lambda done, total: calls.append(time.perf_counter()))
    seconds = time.perf_counter() - started
    rows = len(job.rows)
    gaps = [b - a for a, b in itertools.pairwise([started, *calls])]
    lib.close()
    return {"task_create_s": round(created, 2), "job_start_s": round(seconds, 2),
            "train_rows": rows, "truncated_rows": job.summary["truncated_rows"],
            "ms_per_row": round(1000 * (created + seconds) / rows, 4),
            "job_start_ms_per_row": round(1000 * seconds / rows, 4),
            "progress_calls": len(calls),
            "first_progress_s": round(gaps[0], 3) if gaps else None,
            "longest_gap_s": round(max(gaps), 3) if gaps else None}


def long_row(host: ModelHost, megabytes: float, data_dir: Path) -> dict:
    """Tokenise one row of ``megabytes`` of text through the training format."""
    pool = " ".join(text for text, _ in source_rows(data_dir)[:200])
    text = (pool * (int(megabytes * 2**20) // len(pool) + 1))[: int(megabytes * 2**20)]
    before = _rss_mb()
    started = time.perf_counter()
    (row,) = host.chat.rows([(text, "positive")])
    seconds = time.perf_counter() - started
    after = _rss_mb()
    return {"chars": len(text), "seconds": round(seconds, 3), "tokens": len(row),
            "truncated": row.truncated,
            "rss_added_mb": None if before is None else round(after - before, 1)}


def cmd_prepare_bench(args: argparse.Namespace) -> int:
    import torch

    from engine.commands._common import emit

    host = bench_host(args)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = write_csv(folder / "big.csv", args.rows, Path(args.data))
        size_mb = csv_path.stat().st_size / 2**20
        out = {"rows": args.rows, "csv_mb": round(size_mb, 1), "model": host.name,
               "threads": torch.get_num_threads(), **start_job(host, folder, csv_path)}
    out["long_row"] = long_row(host, args.long_mb, Path(args.data))
    emit(args, out)
    return 0
