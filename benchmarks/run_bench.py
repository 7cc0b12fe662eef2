"""Benchmark harness for ``zicht run`` (issue 8): time, throughput and peak memory per scale.

Not part of the installed package. For each requested scale it uses (or makes) a synthetic
input folder ``bench/<scale>/input`` (``zicht synth --scale S --seed 42``), runs
``zicht run --input bench/<scale>/input --output bench/<scale>/output`` as a subprocess and
records:

- per-stage wall time (``timings_s`` of OUTPUT/manifest.json) and the total wall time of the
  subprocess (JVM start, MLflow logging and the output swap included);
- input rows (the sum of ``inputs.*.rows_read`` of the manifest) and rows per second of total
  wall time;
- peak memory, sampled every 0.5 s over the whole process tree of the run (the Python driver,
  the JVM it starts, Spark's Python workers): peak RSS of the tree, of the JVM and of the
  Python driver, in MiB (a sum of RSS counts shared pages once per process);
- unless ``--no-reference``: the DuckDB reference (``benchmarks/duckdb_reference.py``, run as
  its own process so its memory stays out of the samples): its time, the ratio of zicht's
  indicator stage to it, and the number of mismatching indicator cells (must be 0).

Appends one row per scale to ``bench/results.csv`` (with a timestamp and the git commit) and
redraws ``bench/time_vs_rows.png`` (log-log time against input rows, one line per stage and
the total, from the latest row of each scale in the CSV)::

    .venv/bin/python benchmarks/run_bench.py --scales small,medium [--fresh] [--no-reference]
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SEED = 42
SAMPLE_S = 0.5
STAGES = (
    "fingerprint",
    "validate",
    "keys",
    "link",
    "network",
    "indicators",
    "area_models",
    "disclosure",
    "export",
)
FIELDS = [
    "timestamp",
    "git_commit",
    "git_dirty",
    "scale",
    "input_rows",
    "synth_s",
    "synth_reused",
    "total_s",
    "stages_sum_s",
    *[f"{s}_s" for s in STAGES],
    "rows_per_s",
    "peak_tree_rss_mib",
    "peak_jvm_rss_mib",
    "peak_driver_rss_mib",
    "duckdb_s",
    "indicators_to_duckdb",
    "duckdb_mismatches",
    "exit_code",
    "stages_json",
]


def _zicht_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("zicht")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "zicht.jobs.cli"]


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


# ---------------------------------------------------------------------------------------------
# Memory sampling of a process tree
# ---------------------------------------------------------------------------------------------


def _children_proc(pid: int) -> list[int]:
    """All descendants of ``pid`` from /proc (fallback when psutil is absent)."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: split after the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        parent_of[int(entry.name)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent_of.items() if pp == p]
        out += kids
        frontier += kids
    return out


def _rss_name_proc(pid: int) -> tuple[int, str]:
    rss, name = 0, ""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Name:"):
                name = line.split(None, 1)[1].strip()
    except OSError:
        pass
    return rss, name


class TreeSampler:
    """Sample the RSS of a process and all its descendants every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = SAMPLE_S) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_tree = 0
        self.peak_jvm = 0
        self.peak_driver = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        try:
            import psutil

            self._psutil: Any = psutil
        except ImportError:
            self._psutil = None

    def _sample(self) -> tuple[int, int, int]:
        """(tree RSS, JVM RSS, driver RSS) in bytes, now."""
        if self._psutil is not None:
            ps = self._psutil
            try:
                root = ps.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
            except ps.Error:
                return 0, 0, 0
            tree = jvm = driver = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    name = p.name()
                except ps.Error:
                    continue
                tree += rss
                if name == "java":
                    jvm += rss
                if p.pid == self.pid:
                    driver = rss
            return tree, jvm, driver
        tree = jvm = driver = 0
        for p in [self.pid, *_children_proc(self.pid)]:
            rss, name = _rss_name_proc(p)
            tree += rss
            if name == "java":
                jvm += rss
            if p == self.pid:
                driver = rss
        return tree, jvm, driver

    def _run(self) -> None:
        while not self._stop.is_set():
            tree, jvm, driver = self._sample()
            self.peak_tree = max(self.peak_tree, tree)
            self.peak_jvm = max(self.peak_jvm, jvm)
            self.peak_driver = max(self.peak_driver, driver)
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _mib(n: int) -> float:
    return round(n / 2**20, 1)


# ---------------------------------------------------------------------------------------------
# One scale
# ---------------------------------------------------------------------------------------------


def ensure_input(scale: str, root: Path, *, fresh: bool) -> tuple[Path, float | None, bool]:
    """The input folder for ``scale``; (folder, synth seconds, reused?)."""
    input_dir = root / scale / "input"
    meta = root / scale / "synth.json"
    if not fresh and (input_dir / "_truth" / "truth.json").exists():
        synth_s = json.loads(meta.read_text()).get("synth_s") if meta.exists() else None
        print(f"[{scale}] reusing {input_dir}", flush=True)
        return input_dir, synth_s, True
    if input_dir.exists():
        shutil.rmtree(input_dir)
    input_dir.parent.mkdir(parents=True, exist_ok=True)
    print(f"[{scale}] zicht synth --scale {scale} --seed {SEED} ...", flush=True)
    t0 = time.perf_counter()
    cmd = [*_zicht_cmd(), "synth", "--scale", scale, "--seed", str(SEED), "--out", str(input_dir)]
    with open(root / scale / "synth.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    synth_s = round(time.perf_counter() - t0, 2)
    meta.write_text(json.dumps({"synth_s": synth_s, "seed": SEED}))
    print(f"[{scale}] synth done in {synth_s} s", flush=True)
    return input_dir, synth_s, False


def run_zicht(input_dir: Path, output_dir: Path, log_path: Path) -> dict[str, Any]:
    cmd = [*_zicht_cmd(), "run", "--input", str(input_dir), "--output", str(output_dir)]
    env = dict(os.environ)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env)
        with TreeSampler(proc.pid) as sampler:
            rc = proc.wait()
    total = round(time.perf_counter() - t0, 2)
    return {
        "exit_code": rc,
        "total_s": total,
        "peak_tree_rss_mib": _mib(sampler.peak_tree),
        "peak_jvm_rss_mib": _mib(sampler.peak_jvm),
        "peak_driver_rss_mib": _mib(sampler.peak_driver),
        "samples": sampler.samples,
    }


def run_reference(input_dir: Path, output_dir: Path, log_path: Path) -> dict[str, Any]:
    """duckdb_reference.py in its own process; its JSON summary (empty when it cannot run)."""
    script = Path(__file__).with_name("duckdb_reference.py")
    json_path = log_path.with_suffix(".json")
    json_path.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        str(script),
        "--input",
        str(input_dir),
        "--output",
        str(output_dir),
        "--json",
        str(json_path),
    ]
    with open(log_path, "w") as log:
        rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO).returncode
    print(log_path.read_text(), end="", flush=True)
    if not json_path.exists():
        print(f"duckdb reference failed (exit {rc}), see {log_path}", file=sys.stderr)
        return {}
    return json.loads(json_path.read_text())


def bench_scale(scale: str, root: Path, *, fresh: bool, reference: bool) -> dict[str, Any]:
    input_dir, synth_s, reused = ensure_input(scale, root, fresh=fresh)
    output_dir = root / scale / "output"
    # a cold run: no analysis-ready store from an earlier benchmark (the bench owns both
    # folders; a second `zicht run` on the same input would reuse the store and skip ingest)
    shutil.rmtree(root / scale / "zicht_store", ignore_errors=True)
    # a benchmark run is no release to partners: without this, the release register would
    # audit it against the earlier benchmark runs (other code, other patterns) and may refuse
    from zicht.jobs import catalog

    beside = str(root / scale)
    register = Path(catalog.get("release_register").path(beside))
    register.unlink(missing_ok=True)
    shutil.rmtree(Path(catalog.get("release_pattern").path(beside, release_id="x")).parent,
                  ignore_errors=True)  # fmt: skip
    print(f"[{scale}] zicht run ... (log: {root / scale / 'run.log'})", flush=True)
    res = run_zicht(input_dir, output_dir, root / scale / "run.log")
    row: dict[str, Any] = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": int(bool(_git("status", "--porcelain", "--untracked-files=no"))),
        "scale": scale,
        "synth_s": synth_s if synth_s is not None else "",
        "synth_reused": int(reused),
        **{k: res[k] for k in res if k in FIELDS},
    }
    manifest_path = output_dir / "manifest.json"
    if res["exit_code"] != 0 or not manifest_path.exists():
        print(f"[{scale}] zicht run failed (exit {res['exit_code']})", file=sys.stderr)
        return row
    manifest = json.loads(manifest_path.read_text())
    timings: dict[str, float] = manifest.get("timings_s", {})
    rows = sum(int(t.get("rows_read", 0)) for t in manifest.get("inputs", {}).values())
    row.update(
        input_rows=rows,
        stages_sum_s=round(sum(timings.values()), 2),
        rows_per_s=round(rows / res["total_s"]) if res["total_s"] else "",
        stages_json=json.dumps(timings, sort_keys=True),
        **{f"{s}_s": timings.get(s, "") for s in STAGES},
    )
    if reference:
        ref = run_reference(input_dir, output_dir, root / scale / "duckdb.log")
        row.update(
            duckdb_s=ref.get("duckdb_s", ""),
            indicators_to_duckdb=ref.get("ratio", ""),
            duckdb_mismatches=ref.get("mismatches", ""),
        )
    return row


# ---------------------------------------------------------------------------------------------
# CSV and plot
# ---------------------------------------------------------------------------------------------


def append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    if not new:
        with open(path, newline="") as f:
            header = next(csv.reader(f), [])
        if header != FIELDS:
            # the columns changed since the file was started: keep it, start a new one
            path.rename(path.with_name(f"{path.stem}-{int(time.time())}.csv"))
            new = True
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow(row)


def plot(csv_path: Path, png_path: Path) -> bool:
    """Log-log time against input rows from the latest successful row of each scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latest: dict[str, dict[str, str]] = {}
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            if r.get("exit_code") == "0" and r.get("input_rows") and r.get("stages_json"):
                latest[r["scale"]] = r
    if not latest:
        return False
    runs = sorted(latest.values(), key=lambda r: int(r["input_rows"]))
    xs = [int(r["input_rows"]) for r in runs]
    stages: list[str] = []
    for r in runs:
        stages += [s for s in json.loads(r["stages_json"]) if s not in stages]
    # pipeline order for the known stages, new ones after them
    stages.sort(key=lambda s: STAGES.index(s) if s in STAGES else len(STAGES))
    fig, ax = plt.subplots(figsize=(7, 5))
    for s in stages:
        pts = [(x, json.loads(r["stages_json"]).get(s)) for x, r in zip(xs, runs, strict=True)]
        pts = [(x, y) for x, y in pts if y]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=s)
    ax.plot(xs, [float(r["total_s"]) for r in runs], marker="s", color="black", lw=2, label="total")
    for x, r in zip(xs, runs, strict=True):
        ax.annotate(r["scale"], (x, float(r["total_s"])), textcoords="offset points", xytext=(4, 6))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input rows (sum of rows read)")
    ax.set_ylabel("wall time (s)")
    ax.set_title("zicht run: time against input size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scales", default="small", help="comma-separated: tiny,small,medium,nl")
    p.add_argument("--root", type=Path, default=REPO / "bench", help="bench folder (ignored)")
    p.add_argument("--fresh", action="store_true", help="synthesise the input again")
    p.add_argument("--no-reference", action="store_true", help="skip the DuckDB reference")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    root: Path = args.root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = root / "results.csv", root / "time_vs_rows.png"
    failed = False
    for scale in [s.strip() for s in args.scales.split(",") if s.strip()]:
        row = bench_scale(scale, root, fresh=args.fresh, reference=not args.no_reference)
        append_csv(csv_path, row)
        # a failed run, a reference that did not finish, or any mismatching cell fails the bench
        checked = args.no_reference or row.get("duckdb_mismatches") == 0
        failed |= row.get("exit_code") != 0 or not checked
        print(
            f"[{scale}] rows={row.get('input_rows')} total={row.get('total_s')} s "
            f"indicators={row.get('indicators_s')} s rows/s={row.get('rows_per_s')} "
            f"peak tree RSS={row.get('peak_tree_rss_mib')} MiB "
            f"(JVM {row.get('peak_jvm_rss_mib')}, driver {row.get('peak_driver_rss_mib')}) "
            f"duckdb={row.get('duckdb_s')} s ratio={row.get('indicators_to_duckdb')} "
            f"mismatches={row.get('duckdb_mismatches')}",
            flush=True,
        )
    print(f"results: {csv_path}")
    if plot(csv_path, png_path):
        print(f"plot:    {png_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
