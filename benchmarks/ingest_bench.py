"""Ingest against a plain Parquet copy (issue 14): validate + link time and its ratio to a copy.

Not part of the installed package, and not a test: it prints figures. Uses (or makes) the
synthetic input ``bench/<scale>/input`` (``zicht synth --scale S --seed 42``; ``bench/`` is
git-ignored), then in one Spark session built like ``zicht run`` builds it
(``zicht.jobs.runtime.build_spark`` with the default settings of
``zicht.jobs.config.load_settings()``):

(a) the plain copy: ``spark.read.parquet(table).write.parquet(tmp)`` of every input table;
(b) ingest: ``validate_inputs`` with the reject files written (as ``jobs/pipeline.py`` ``ingest``
    writes them), the key dictionary with its collision check, then the link step (``locate_incidents``, ``build_residence``,
    ``locate_signals``) written to Parquet;

and prints both, per table and in total, and the ratio (b) / (a); the goal is at most 2 at
``medium``. One untimed copy warms the page cache, the JIT and Spark's Python workers; then
``--repeat`` rounds of copy-then-ingest run and the fastest of each side counts (on a shared
machine other work slows a round down, never speeds it up). Beside the wall times it prints
CPU seconds, which other users of a shared machine barely move, so they compare versions
measured at different times: of the whole process tree (driver, JVM, Python workers;
``RESULT_CPU``) and of the Spark tasks alone (``RESULT_TASK_CPU``: the work that grows with the
rows, without the JIT compiler, GC and query planning, which at ``medium`` are a third).

``--profile`` adds where the time goes, from Spark's status store (the same data as the UI's
Jobs and Stages pages, which exists with the UI disabled): per job description
(``validate_inputs`` names each table's jobs ``zicht validate <table>``) the wall time and the
tasks' summed run time, then the slowest stages with their input, shuffle and spill bytes::

    .venv/bin/python benchmarks/ingest_bench.py [--scale medium] [--profile]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SEED = 42


def _ensure_input(scale: str, input_dir: Path) -> None:
    if (input_dir / "incidents.parquet").exists():
        print(f"input: {input_dir} (reused)")
        return
    exe = Path(sys.executable).with_name("zicht")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "zicht.jobs.cli"]
    cmd += ["synth", "--scale", scale, "--seed", str(SEED), "--out", str(input_dir)]
    print("input: making it with", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def _descendants(pid: int) -> list[int]:
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent_of[int(entry.name)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        kids = [c for c, p in parent_of.items() if p == frontier[-1]]
        frontier.pop()
        out += kids
        frontier += kids
    return out


def _tree_cpu_s() -> float:
    """CPU seconds (user + system, and of reaped children) of this process, the JVM it started
    and Spark's Python workers: unlike wall time, other users of a shared machine barely move
    it, so it compares two versions of the code measured at different times."""
    ticks = 0
    for pid in [os.getpid(), *_descendants(os.getpid())]:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _thread_cpu_s() -> dict[str, float]:
    """CPU seconds per thread kind (thread name without its digits) of the process tree's
    threads: where the JVM spends CPU outside the tasks (JIT, GC, the driver's planning)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = defaultdict(float)
    for pid in [os.getpid(), *_descendants(os.getpid())]:
        try:
            proc = Path(f"/proc/{pid}/comm").read_text().strip()
            threads = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for t in threads:
            try:
                stat = (t / "stat").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            kind = f"{proc}: {name.rstrip('0123456789#-_ ') or name}"
            out[kind] += (int(fields[11]) + int(fields[12])) / tick
    return out


def _tables(input_dir: Path) -> list[Path]:
    return sorted(p for p in input_dir.iterdir() if p.name.endswith(".parquet"))


def _plain_copy(spark: Any, tables: list[Path], out: Path) -> dict[str, float]:
    times: dict[str, float] = {}
    for t in tables:
        name = t.name.removesuffix(".parquet")
        spark.sparkContext.setJobDescription(f"copy {name}")
        t0 = time.perf_counter()
        spark.read.parquet(str(t)).write.mode("overwrite").parquet(str(out / name))
        times[name] = time.perf_counter() - t0
    spark.sparkContext.setJobDescription(None)
    return times


def _ingest(spark: Any, input_dir: Path, work: Path) -> dict[str, float]:
    """What ``jobs/pipeline.py`` ``ingest`` does, written to ``work``; seconds per step."""
    from zicht.features.indicators import locate_signals
    from zicht.features.link import build_residence, locate_incidents
    from zicht.jobs.config import load_settings
    from zicht.jobs.validate_inputs import validate_inputs

    settings = load_settings()
    stage_dir = work / "stage"
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    v = validate_inputs(
        spark, str(input_dir), settings, run_date=dt.date.today(), stage_dir=stage_dir
    )
    times["validate_inputs"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    spark.sparkContext.setJobDescription("ingest write rejects")
    for name, rej in v.rejects.items():
        rej.write.mode("overwrite").parquet(str(work / "rejects" / name))
    times["write_rejects"] = time.perf_counter() - t1

    from zicht.features.keys import key_collisions, key_dictionary

    t1 = time.perf_counter()
    spark.sparkContext.setJobDescription("ingest keys")
    key_collisions(v.raw).count()
    key_dictionary(v.raw).write.mode("overwrite").parquet(str(stage_dir / "keys"))
    times["keys"] = time.perf_counter() - t1

    acc = v.accepted
    addresses = acc.get("addresses")
    t1 = time.perf_counter()
    spark.sparkContext.setJobDescription("link incidents_located")
    locate_incidents(
        acc["incidents"], areas=acc["areas"], addresses=addresses, phenomena=settings.phenomena
    ).write.mode("overwrite").parquet(str(stage_dir / "incidents_located"))
    times["locate_incidents"] = time.perf_counter() - t1
    if "persons" in acc and addresses is not None:
        t1 = time.perf_counter()
        spark.sparkContext.setJobDescription("link residence")
        build_residence(
            acc["persons"], addresses=addresses, areas=acc["areas"], years=v.years
        ).write.mode("overwrite").parquet(str(stage_dir / "residence"))
        times["build_residence"] = time.perf_counter() - t1
    if "signals" in acc:
        t1 = time.perf_counter()
        spark.sparkContext.setJobDescription("link signals_located")
        locate_signals(
            acc["signals"], addresses=addresses, phenomena=settings.phenomena
        ).write.mode("overwrite").parquet(str(stage_dir / "signals_located"))
        times["locate_signals"] = time.perf_counter() - t1
    spark.sparkContext.setJobDescription(None)
    rows = sum(a["rows_read"] for a in v.accounting.values())
    rejected = sum(a["rows_rejected"] for a in v.accounting.values())
    print(f"ingest: {rows:,} rows read, {rejected:,} rejected")
    return times


# ------------------------------------------------------------------------------ profile


def _opt(o: Any) -> Any:
    return o.get() if o.isDefined() else None


def _seq(s: Any) -> list[Any]:
    return [s.apply(i) for i in range(s.size())]


def _next_job(spark: Any) -> int:
    return max([-1, *spark.sparkContext.statusTracker().getJobIdsForGroup()]) + 1


def _task_cpu_s(spark: Any, jobs: range) -> float:
    """The tasks' JVM CPU seconds of these jobs' stages (Spark's executorCpuTime)."""
    store = spark.sparkContext._jsc.sc().statusStore()
    stage_ids: set[int] = set()
    for j in _seq(store.jobsList(None)):
        if j.jobId() in jobs:
            stage_ids.update(int(s) for s in _seq(j.stageIds()))
    total = 0
    for sid in stage_ids:
        try:
            total += store.lastStageAttempt(sid).executorCpuTime()
        except Exception:  # skipped stages have no attempt
            continue
    return total / 1e9


def _profile(spark: Any, first_job: int) -> None:
    """Jobs since ``first_job`` grouped by description, then the slowest stages."""
    store = spark.sparkContext._jsc.sc().statusStore()
    jobs = [j for j in _seq(store.jobsList(None)) if j.jobId() >= first_job]
    stage_of: dict[int, str] = {}
    by_desc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for j in jobs:
        desc = _opt(j.description()) or j.name()
        start, end = _opt(j.submissionTime()), _opt(j.completionTime())
        wall = (end.getTime() - start.getTime()) / 1000 if start and end else 0.0
        by_desc[desc][0] += wall
        by_desc[desc][3] += 1
        for sid in _seq(j.stageIds()):
            stage_of[int(sid)] = desc
    stages = []
    for sid in sorted(stage_of):
        try:
            stages.append(store.lastStageAttempt(sid))
        except Exception:  # a skipped stage (its shuffle output reused) has no attempt
            continue
    for s in stages:
        by_desc[stage_of[s.stageId()]][1] += s.executorRunTime() / 1000
        by_desc[stage_of[s.stageId()]][2] += s.executorCpuTime() / 1e9
    print(
        "\nprofile: Spark jobs by description (wall s: summed job wall time; task s: summed "
        "task run time; CPU s: the tasks' JVM CPU time, without Python workers)"
    )
    print(f"  {'description':<44} {'jobs':>5} {'wall s':>8} {'task s':>8} {'CPU s':>8}")
    for desc, (wall, task, cpu, n) in sorted(by_desc.items(), key=lambda kv: -kv[1][2]):
        print(f"  {desc[:44]:<44} {int(n):>5} {wall:>8.1f} {task:>8.1f} {cpu:>8.1f}")

    def mib(n: int) -> str:
        return f"{n / 2**20:.0f}"

    print("\nprofile: costliest stages by task CPU time (MiB: input, shuffle read, write, spill)")
    print(
        f"  {'stage':>5} {'description':<30} {'tasks':>5} {'task s':>7} {'CPU s':>6} "
        f"{'in MiB':>7} {'shufR':>6} {'shufW':>6} {'spill':>6}"
    )
    for s in sorted(stages, key=lambda s: -s.executorCpuTime())[:20]:
        print(
            f"  {s.stageId():>5} {stage_of[s.stageId()][:30]:<30} "
            f"{s.numTasks():>5} {s.executorRunTime() / 1000:>7.1f} "
            f"{s.executorCpuTime() / 1e9:>6.1f} {mib(s.inputBytes()):>7} "
            f"{mib(s.shuffleReadBytes()):>6} {mib(s.shuffleWriteBytes()):>6} "
            f"{mib(s.diskBytesSpilled()):>6}"
        )


def _table_of(label: str, times: dict[str, float]) -> None:
    print(f"\n{label}:")
    for name, s in times.items():
        print(f"  {name:<24} {s:7.1f}")
    print(f"  {'total':<24} {sum(times.values()):7.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--input", type=Path, help="default bench/<scale>/input")
    parser.add_argument("--work", type=Path, help="scratch folder, default bench/<scale>/ingest")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of copy then ingest (after one warm-up copy); the fastest of each counts",
    )
    parser.add_argument("--profile", action="store_true", help="where the time goes")
    args = parser.parse_args(argv)
    input_dir = (args.input or REPO / "bench" / args.scale / "input").resolve()
    work = (args.work or REPO / "bench" / args.scale / "ingest").resolve()
    _ensure_input(args.scale, input_dir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    from zicht.jobs.config import load_settings
    from zicht.jobs.runtime import build_spark

    t0 = time.perf_counter()
    spark = build_spark(load_settings().spark, app_name="zicht-ingest-bench")
    print(f"spark: {spark.sparkContext.master}, up in {time.perf_counter() - t0:.1f} s")
    tables = _tables(input_dir)
    # warm-up: the page cache, the JIT and Spark's Python workers serve both sides alike
    _plain_copy(spark, tables, work / "copy")
    copies: list[dict[str, float]] = []
    ingests: list[dict[str, float]] = []
    cpu: dict[str, list[float]] = {"copy": [], "ingest": []}
    task_cpu: dict[str, list[float]] = {"copy": [], "ingest": []}
    first_job = 0
    for _ in range(max(1, args.repeat)):
        # rounds alternate, so a busy spell on a shared machine hits both sides
        load = os.getloadavg()[0]
        c0, j0 = _tree_cpu_s(), _next_job(spark)
        copies.append(_plain_copy(spark, tables, work / "copy"))
        c1 = _tree_cpu_s()
        first_job = _next_job(spark)
        threads_before = _thread_cpu_s()
        ingests.append(_ingest(spark, input_dir, work))
        c2, j2 = _tree_cpu_s(), _next_job(spark)
        threads_after = _thread_cpu_s()
        cpu["copy"].append(c1 - c0)
        cpu["ingest"].append(c2 - c1)
        task_cpu["copy"].append(_task_cpu_s(spark, range(j0, first_job)))
        task_cpu["ingest"].append(_task_cpu_s(spark, range(first_job, j2)))
        print(
            f"round {len(copies)}: copy {sum(copies[-1].values()):.1f} s "
            f"({c1 - c0:.1f} CPU s, tasks {task_cpu['copy'][-1]:.1f}), "
            f"ingest {sum(ingests[-1].values()):.1f} s "
            f"({c2 - c1:.1f} CPU s, tasks {task_cpu['ingest'][-1]:.1f}); "
            f"1-min load average {load:.1f}",
            flush=True,
        )
    copy = min(copies, key=lambda t: sum(t.values()))
    ingest = min(ingests, key=lambda t: sum(t.values()))
    _table_of("plain copy (read.parquet -> write.parquet), fastest round, s per table", copy)
    _table_of("ingest, fastest round, s per step", ingest)
    total_copy, total_ingest = sum(copy.values()), sum(ingest.values())
    print(
        f"\nRESULT scale={args.scale} copy_s={total_copy:.1f} ingest_s={total_ingest:.1f} "
        f"ratio={total_ingest / total_copy:.2f} (goal <= 2); rounds: copy "
        + ", ".join(f"{sum(t.values()):.1f}" for t in copies)
        + "; ingest "
        + ", ".join(f"{sum(t.values()):.1f}" for t in ingests)
    )
    cpu_copy, cpu_ingest = min(cpu["copy"]), min(cpu["ingest"])
    print(
        f"RESULT_CPU scale={args.scale} copy_cpu_s={cpu_copy:.1f} ingest_cpu_s={cpu_ingest:.1f} "
        f"ratio={cpu_ingest / cpu_copy:.2f} (CPU seconds of driver, JVM and Python workers)"
    )
    t_copy, t_ingest = min(task_cpu["copy"]), min(task_cpu["ingest"])
    print(
        f"RESULT_TASK_CPU scale={args.scale} copy_task_cpu_s={t_copy:.1f} "
        f"ingest_task_cpu_s={t_ingest:.1f} ratio={t_ingest / t_copy:.2f} (the tasks' JVM CPU "
        "time: the work that grows with the rows; JIT, GC and planning are left out)"
    )
    if args.profile:
        print("(profile of the last round)")
        _profile(spark, first_job)
        print("\nprofile: CPU s of the ingest by thread kind (process: thread name), last round")
        spent = {
            k: v - threads_before.get(k, 0.0)
            for k, v in threads_after.items()
            if v - threads_before.get(k, 0.0) >= 0.2
        }
        for kind, cpu_s in sorted(spent.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {kind[:50]:<50} {cpu_s:7.1f}")
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
