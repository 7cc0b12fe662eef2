"""One pipeline stage as a Spark job on an output folder: ``zicht ingest``, ``zicht network
build``, ``zicht indicators``, ``zicht models`` and ``zicht export --from``.

The stages are those ``zicht run`` chains (:mod:`zicht.jobs.pipeline`), run by the same
orchestrator. ``zicht ingest`` builds (or reuses) the analysis-ready store and starts the
output folder; each later stage reads what the stages before it left (the store named in
``manifest.json``, ``restricted/`` and the hand-overs in ``restricted/stage/``), writes its own
outputs in place and updates the manifest. ``zicht export --from`` prepares the new
``export/`` and audit beside the old ones and swaps them in only when every check passed.
``restricted/stage/`` holds person-level hand-overs and stays inside the secure environment
like all of ``restricted/``; ``zicht run`` never keeps it. Each job is its own MLflow run,
tagged with the run id of its ingest (``zicht.run_id``) and the stage (``zicht.stage``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from zicht.jobs import catalog, outputs, store
from zicht.jobs import fs as fsmod
from zicht.jobs.runtime import add_ui_flag, add_verbosity_flags, configure_logging, handled

PROG = {"network": "zicht network build", "export": "zicht export"}


def parse_args(name: str, argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG.get(name, f"zicht {name}"),
        description=f"The {name} stage of the pipeline alone, on an output folder.",
    )
    if name == "ingest":
        p.add_argument("--input", required=True, help="input folder in contract form")
        p.add_argument("--output", required=True, help="output folder to start")
        p.add_argument("--store", default=None, help="root of the stores (default: beside)")
        p.add_argument("--strict", action="store_true", help="stop at the first rejected row")
    else:
        p.add_argument("--from", dest="output", required=True, help="output folder of ingest")
    if name == "network":
        p.add_argument(
            "--previous",
            default=None,
            help="an earlier output: communities keep its ids "
            "(restricted/community_lineage.parquet)",
        )
    if name == "export":
        p.add_argument(
            "--force-release",
            action="store_true",
            help="record the release even if the release register finds it could be "
            "differenced against an earlier one (after checking both releases together)",
        )
    p.add_argument("--conf", default=None, help="YAML overlay on the committed defaults")
    add_ui_flag(p)
    add_verbosity_flags(p)
    return p.parse_args(argv)


def run_stage(name: str, spark: Any, settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Run stage ``name`` on ``args.output``; returns the manifest."""
    from zicht.jobs.context import RunContext
    from zicht.jobs.io import InputError
    from zicht.jobs.pipeline import claimed, execute, new_run_id, stage_named
    from zicht.jobs.tracking import tracking_uri

    fs = fsmod.FileSystem(spark)
    output = fsmod.normalize(args.output)
    tracking_uri(output)
    if name == "ingest":
        input_dir = fsmod.normalize(args.input)
        if not fs.is_dir(input_dir):
            raise InputError(f"--input {input_dir}: no such folder")
        outputs.check_output(fs, output, input_dir=input_dir)
    else:
        outputs.require_zicht_output(fs, output)
    outputs.check_not_mount_point(fs, output)
    command = PROG.get(name, f"zicht {name}")
    with claimed(fs, output, run_id=new_run_id(), command=command) as (lease, recovered):
        previous: dict[str, Any] = {}
        if name == "ingest":
            run_id = lease.run_id
            fs.mkdirs(output)
            outputs.write_marker(fs, output, run_id=run_id, version=outputs._version())
            work = output
            store_root = fsmod.normalize(args.store) if args.store else store.default_root(output)
        else:
            work = outputs.readable(fs, output)
            manifest_loc = catalog.get("manifest").path(work)
            if not fs.exists(manifest_loc):
                raise InputError(f"--from {output}: no manifest.json; run zicht ingest first")
            previous = json.loads(fs.read_text(manifest_loc))
            run_id = previous["run_id"]
            input_dir = previous.get("input_dir")
            store_root = None
        ctx = RunContext(
            spark=spark,
            settings=settings,
            fs=fs,
            run_id=run_id,
            output=output,
            work=work,
            store=store_root,
            input=input_dir,
            lease=lease,
            recovered=recovered,
            previous_output=getattr(args, "previous", None),
        )
        stage = stage_named(name, force_release=getattr(args, "force_release", False))
        if name != "export":
            return execute(ctx, [stage], command=name, previous=previous)
        return _export(ctx, stage, previous)


def _export(ctx: Any, stage: Any, previous: dict[str, Any]) -> dict[str, Any]:
    """The export stage on a finished output: built in ``.export.tmp-<id>`` inside it, then
    ``export/`` and the audit swapped in (the old ones moved aside first, then deleted)."""
    from zicht.jobs.io import InputError
    from zicht.jobs.pipeline import execute, new_run_id

    if "indicators" not in previous.get("stages", {}):
        raise InputError(f"--from {ctx.output}: no indicators yet; run zicht indicators first")
    fs, target = ctx.fs, ctx.work
    release_id = new_run_id()
    stage.release_id = release_id
    tmp = fsmod.join(target, f".export.tmp-{release_id}")
    old = fsmod.join(target, f".export.old-{release_id}")
    ctx.source, ctx.work = target, tmp
    try:
        manifest = execute(ctx, [stage], command="export", previous=previous)
    except BaseException:
        fs.delete(tmp)
        raise
    report = json.loads(fs.read_text(ctx.location("disclosure_report")))
    manifest["exports"] = [
        *previous.get("exports", []),
        {
            "release_id": release_id,
            "finished": manifest["finished"],
            "rules": report["parameters"],
            "forced": bool(stage.force_release),
            "timings_s": {k: ctx.timer.timings[k] for k in ("disclosure", "export")},
        },
    ]
    # the manifest first: a kill during the swap leaves a release the register keeps (the
    # safe side), never an export the register does not know
    text = json.dumps(manifest, indent=2, default=str)
    fs.write_text(catalog.get("manifest").path(target), text, overwrite=True)
    fs.mkdirs(old)
    for rel in ("export", ctx.relative("disclosure_audit")):
        if fs.exists(fsmod.join(target, rel)):
            fs.rename(fsmod.join(target, rel), fsmod.join(old, fsmod.name(rel)))
        fs.rename(fsmod.join(tmp, rel), fsmod.join(target, rel))
    stage.after_commit(ctx, ctx.results[stage.name])
    fs.delete(tmp)
    fs.delete(old)
    return manifest


def main(name: str, argv: Sequence[str] | None = None) -> int:
    from zicht.jobs.config import load_settings
    from zicht.jobs.runtime import build_spark

    args = parse_args(name, sys.argv[1:] if argv is None else argv)
    configure_logging(args.verbosity)
    prog = PROG.get(name, f"zicht {name}")

    def prepare() -> Any:
        if name == "ingest":
            outputs.precheck_local(args.output, input_dir=args.input)
        overrides: dict[str, Any] = (
            {"validation": {"strict": True}} if getattr(args, "strict", False) else {}
        )
        return load_settings(args.conf, **overrides)

    settings = handled(prog, prepare)
    if isinstance(settings, int):
        return settings
    spark = build_spark(settings.spark, app_name=f"zicht-{name}", ui=args.ui)
    manifest = handled(prog, lambda: run_stage(name, spark, settings, args))
    if isinstance(manifest, int):
        return manifest
    out = outputs.readable(fsmod.FileSystem(spark), fsmod.normalize(args.output))
    if name == "export":
        last = manifest["exports"][-1]
        print(f"zicht export {last['release_id']} finished")
        print(f"  partner tables : {fsmod.join(out, 'export')}")
        print(f"  rules          : {json.dumps(last['rules'])}")
    else:
        print(f"zicht {name} finished; manifest {fsmod.join(out, 'manifest.json')}")
    return 0
