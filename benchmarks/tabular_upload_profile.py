"""Benchmark: upload parsing + profiling of a wide CSV vs bare pandas.read_csv of the same file.

Generates a ROWS × 30 CSV (numeric, integer, categorical and boolean columns, ~5 % missing,
an ID and a binary outcome) in a temporary folder, then times, each in a fresh subprocess
so peak memory (ru_maxrss) is per measurement:

  baseline   pandas.read_csv(path)                                  (C engine, defaults)
  naive      pandas.read_csv + describe(include="all") + isna().sum() + nunique()
  platform   read_table(bytes) + profile_frame(frame)                (what an upload does)
  target     profile_frame(frame, target="outcome")                 (adds class balance + leakage)

Usage: .venv/bin/python benchmarks/tabular_upload_profile.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def generate(path: Path, rows: int, seed: int = 0) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {"patient_id": np.arange(1, rows + 1)}
    for index in range(14):
        values = rng.normal(50 + index, 10, rows).round(3)
        values[rng.random(rows) < 0.05] = np.nan
        columns[f"lab_{index:02d}"] = values
    for index in range(6):
        columns[f"count_{index}"] = rng.integers(0, 200, rows)
    for index in range(6):
        picked = rng.integers(0, 12 + index * 20, rows) % (12 + index * 20)
        strings = np.array([f"cat_{i}" for i in range(12 + index * 20)], dtype=object)[picked]
        strings[rng.random(rows) < 0.05] = None
        columns[f"category_{index}"] = strings
    columns["smoker"] = np.where(rng.random(rows) < 0.3, "yes", "no")
    columns["sex"] = np.array(["F", "M"], dtype=object)[rng.integers(0, 2, rows)]
    columns["outcome"] = np.where(rng.random(rows) < 0.15, "sick", "well")
    assert len(columns) == 30
    table = pa.table(columns)
    # Quote only when needed (never here), as most hospital exports do.
    pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(quoting_style="needed"))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, path: str) -> dict:
    import pandas as pd

    from tabular.ml.io import read_table
    from tabular.ml.profiling import profile_frame

    baseline_rss = _peak_mb()
    result: dict[str, float] = {}
    if mode == "baseline":
        start = time.perf_counter()
        frame = pd.read_csv(path)
        result["read_s"] = time.perf_counter() - start
    elif mode == "naive":
        start = time.perf_counter()
        frame = pd.read_csv(path)
        frame.describe(include="all")
        frame.isna().sum()
        frame.nunique()
        result["total_s"] = time.perf_counter() - start
    elif mode in {"platform", "target"}:
        data = Path(path).read_bytes()
        start = time.perf_counter()
        frame = read_table(data, filename="bench.csv").frame
        result["read_s"] = time.perf_counter() - start
        del data
        start = time.perf_counter()
        profile = profile_frame(frame, target="outcome" if mode == "target" else None)
        result["profile_s"] = time.perf_counter() - start
        assert profile.n_rows == len(frame)
    else:
        raise SystemExit(f"unknown mode {mode}")
    result["shape"] = list(frame.shape)
    result["peak_rss_mb"] = _peak_mb()
    result["startup_rss_mb"] = baseline_rss
    return result


def run_child(mode: str, path: Path) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    with tempfile.TemporaryDirectory(prefix="deepmed-bench-") as folder:
        path = Path(folder) / "wide.csv"
        start = time.perf_counter()
        generate(path, args.rows)
        size_mb = os.path.getsize(path) / 1e6
        print(f"generated {args.rows:,} rows x 30 columns, {size_mb:.0f} MB in {time.perf_counter() - start:.1f} s")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        results: dict[str, list[dict]] = {mode: [] for mode in ("baseline", "naive", "platform", "target")}
        for _ in range(args.repeat):
            for mode in results:
                results[mode].append(run_child(mode, path))

    def best(mode: str, key: str) -> float:
        return min(run[key] for run in results[mode])

    def peak(mode: str) -> float:
        return max(run["peak_rss_mb"] for run in results[mode])

    bare = best("baseline", "read_s")
    naive = best("naive", "total_s")
    read = best("platform", "read_s")
    profile = best("platform", "profile_s")
    platform = min(run["read_s"] + run["profile_s"] for run in results["platform"])
    target = min(run["read_s"] + run["profile_s"] for run in results["target"])
    startup = results["baseline"][0]["startup_rss_mb"]
    print(f"best of {args.repeat}; each figure from a fresh process (interpreter + imports ≈ {startup:.0f} MB RSS)")
    print(f"  pandas.read_csv (bare)                       {bare:7.2f} s   peak RSS {peak('baseline'):7.0f} MB")
    print(f"  pandas read_csv + describe/isna/nunique      {naive:7.2f} s   peak RSS {peak('naive'):7.0f} MB")
    print(f"  read_table(bytes)                            {read:7.2f} s   ({read / bare:.2f}x bare read_csv)")
    print(f"  profile_frame                                {profile:7.2f} s")
    print(f"  read_table + profile_frame (upload)          {platform:7.2f} s   peak RSS {peak('platform'):7.0f} MB")
    print(f"  read_table + profile_frame(target=outcome)   {target:7.2f} s   peak RSS {peak('target'):7.0f} MB")
    print(f"ratio upload (read+profile) / bare read_csv: {platform / bare:.2f}x")
    print(f"ratio upload (read+profile) / naive pandas profile: {platform / naive:.2f}x")


if __name__ == "__main__":
    main()
