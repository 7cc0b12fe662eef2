"""``zicht run``: the whole pipeline in one Spark application, tracked as one MLflow run.

Reads the contract's input folder (``--input``) and the configuration (``conf/`` + ``--conf``).
Writes the contract's output folder (``--output``): ``restricted/``, ``export/``,
``manifest.json`` and the marker ``.zicht-output``; and the analysis-ready store (``--store``,
default ``zicht_store/`` beside the output), which the next run on the same input reuses.
Every stage is in :mod:`zicht.jobs.pipeline`; the output is written aside first and committed
only when every stage succeeded (:mod:`zicht.jobs.outputs`), so a failed or killed run leaves
the previous output as it was. Locations may be local paths or URIs (``hdfs://``,
``viewfs://``, ``s3a://``, ``abfss://``).

Also runs under spark-submit with the same code::

    spark-submit --master spark://host:7077 --py-files dist/zicht-0.1.0-py3-none-any.zip \\
        jobs/run.py --input DIR --output DIR
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from zicht.jobs import fs as fsmod
from zicht.jobs import outputs, store
from zicht.jobs.runtime import add_ui_flag, add_verbosity_flags, configure_logging, handled


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="zicht run", description="Run the whole zicht pipeline.")
    p.add_argument("--input", required=True, help="input folder in contract form (path or URI)")
    p.add_argument(
        "--output",
        required=True,
        help="output folder, replaced when the run succeeds (path or URI)",
    )
    p.add_argument(
        "--store",
        default=None,
        help="root of the analysis-ready stores (default: zicht_store/ beside the output)",
    )
    p.add_argument("--conf", default=None, help="YAML overlay on the committed defaults")
    p.add_argument("--strict", action="store_true", help="stop at the first rejected row")
    p.add_argument(
        "--previous",
        default=None,
        help="an earlier output: communities keep its ids (restricted/community_lineage.parquet)",
    )
    add_ui_flag(p)
    add_verbosity_flags(p)
    return p.parse_args(argv)


def run(
    spark: Any,
    settings: Any,
    input_dir: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    store_root: str | os.PathLike[str] | None = None,
    previous: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Every stage on ``input_dir`` into ``output`` (paths or URIs); returns the manifest.
    ``previous``: an earlier output whose community ids this run's communities keep."""
    from zicht.jobs.context import RunContext
    from zicht.jobs.io import InputError
    from zicht.jobs.pipeline import all_stages, claimed, execute, new_run_id
    from zicht.jobs.tracking import tracking_uri

    fs = fsmod.FileSystem(spark)
    input_dir, output = fsmod.normalize(os.fspath(input_dir)), fsmod.normalize(os.fspath(output))
    if not fs.is_dir(input_dir):
        raise InputError(f"--input {input_dir}: no such folder")
    if previous is not None:
        from zicht.jobs.lineage import check_previous

        check_previous(fs, os.fspath(previous))
    outputs.check_output(fs, output, input_dir=input_dir)
    outputs.check_not_mount_point(fs, output)
    tracking_uri(output)  # a remote output without MLFLOW_TRACKING_URI stops here
    run_id = new_run_id()
    with claimed(fs, output, run_id=run_id, command="zicht run") as (lease, recovered):
        outputs.check_output(fs, output, input_dir=input_dir)  # as recovery left it
        mode = outputs.commit_mode(fs, output, settings.output.commit)
        work = outputs.work_location(fs, output, run_id, mode)
        ctx = RunContext(
            spark=spark,
            settings=settings,
            fs=fs,
            run_id=run_id,
            output=output,
            work=work,
            store=fsmod.normalize(os.fspath(store_root))
            if store_root
            else store.default_root(output),
            input=input_dir,
            lease=lease,
            recovered=recovered,
            previous_output=os.fspath(previous) if previous is not None else None,
        )
        return execute(ctx, all_stages(), command="run", commit_mode=mode)


def main(argv: Sequence[str] | None = None) -> int:
    from zicht.jobs.config import load_settings
    from zicht.jobs.runtime import build_spark

    args = parse_args(argv)
    configure_logging(args.verbosity)

    def prepare() -> Any:
        outputs.precheck_local(args.output, input_dir=args.input)
        overrides: dict[str, Any] = {"validation": {"strict": True}} if args.strict else {}
        return load_settings(args.conf, **overrides)

    settings = handled("zicht run", prepare)
    if isinstance(settings, int):
        return settings
    spark = build_spark(settings.spark, app_name="zicht-run", ui=args.ui)
    manifest = handled(
        "zicht run",
        lambda: run(
            spark,
            settings,
            args.input,
            args.output,
            store_root=args.store,
            previous=args.previous,
        ),
    )
    if isinstance(manifest, int):
        return manifest
    out = outputs.readable(fsmod.FileSystem(spark), fsmod.normalize(args.output))
    reused = (manifest.get("store") or {}).get("reused")
    print(f"zicht run {manifest['run_id']} finished")
    print(f"  partner tables : {fsmod.join(out, 'export')}")
    print(f"  restricted     : {fsmod.join(out, 'restricted')}")
    print(f"  manifest       : {fsmod.join(out, 'manifest.json')}")
    print(
        f"  store          : {manifest['store']['location']}"
        + (" (reused: input unchanged)" if reused else "")
    )
    print(f"  MLflow run     : {manifest['mlflow_run_id']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
