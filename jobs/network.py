"""``zicht network``: network jobs that run without the pipeline.

``zicht network build --from OUTPUT`` is the pipeline's network stage alone, as a Spark job
(``zicht.jobs.stagejob``; ``spark-submit ... jobs/network.py build --from OUTPUT``).

``zicht network disrupt --edges FILE --metric {betweenness,degree} --mode {sequential,block}
[--block-size 5] --out FILE`` reads one edge list (CSV with header ``source,target[,weight]``),
simulates node removal as in Cavallaro et al. (2020) with
:func:`zicht.models.network.simulate_disruption`, and writes a CSV with ``removed`` and
``lcc_share`` (CONTRACT.md section 4). It works on any network, a single small one by nature, so
it reads with pandas on the driver and starts no Spark.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Hashable
from pathlib import Path

import pandas as pd

from zicht.jobs.runtime import add_verbosity_flags, configure_logging
from zicht.models.network import simulate_disruption

log = logging.getLogger("zicht")

REQUIRED_COLUMNS = ("source", "target")


class EdgeFileError(ValueError):
    """The edge list cannot be used as it is."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zicht network", description="Network jobs.")
    sub = parser.add_subparsers(dest="command", required=True)
    # `build` is dispatched to the stage job before this parser runs (main); it is here so the
    # help lists it, and `zicht network build -h` shows the stage job's own flags.
    sub.add_parser(
        "build",
        help="the pipeline's network stage on an output folder: zicht network build --from OUTPUT",
        description="The pipeline's network stage alone (a Spark job); see "
        "`zicht network build -h` for its flags (--from, --previous, --conf, -v/-q).",
    )
    disrupt = sub.add_parser(
        "disrupt",
        help="remove nodes by centrality and follow the largest connected component",
        description="Disruption simulation (Cavallaro et al. 2020) on any network.",
    )
    disrupt.add_argument(
        "--edges",
        required=True,
        type=Path,
        help="CSV with header source,target[,weight]; one undirected tie per row",
    )
    disrupt.add_argument("--metric", required=True, choices=("betweenness", "degree"))
    disrupt.add_argument(
        "--mode",
        required=True,
        choices=("sequential", "block"),
        help="sequential: recompute after every removal; block: once per block",
    )
    disrupt.add_argument(
        "--block-size", type=int, default=5, help="nodes per block in block mode (default 5)"
    )
    disrupt.add_argument("--out", required=True, type=Path, help="CSV to write: removed,lcc_share")
    add_verbosity_flags(disrupt)
    return parser


def read_edges(path: Path) -> pd.DataFrame:
    """The edge list with labels as text; a clear error for a file that does not fit."""
    if not path.is_file():
        raise EdgeFileError(f"edges file {path} does not exist")
    try:
        header = pd.read_csv(path, nrows=0, dtype=str)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise EdgeFileError(f"edges file {path} is not a readable CSV: {exc}") from exc
    columns = [str(c).strip() for c in header.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise EdgeFileError(
            f"edges file {path} needs a header row with columns source,target[,weight]; "
            f"missing {', '.join(missing)}; the first row reads {', '.join(columns)}"
        )
    # header names may carry spaces ("source, target"): read them as they are, rename after
    names = {str(c): str(c).strip() for c in header.columns}
    wanted = {"source": "str", "target": "str", "weight": "float64"}
    dtypes: dict[Hashable, str] = {
        raw: wanted[name] for raw, name in names.items() if name in wanted
    }
    try:
        edges = pd.read_csv(path, dtype=dtypes, usecols=list(dtypes))
    except ValueError as exc:  # a weight that is not a number
        raise EdgeFileError(f"edges file {path}: {exc}") from exc
    edges = edges.rename(columns=names)
    empty = edges[["source", "target"]].isna().any(axis=1)
    if empty.any():
        lines = (edges.index[empty][:5] + 2).tolist()  # +2: header line, 1-based
        raise EdgeFileError(f"edges file {path}: empty source or target on line(s) {lines}")
    if edges.empty:
        raise EdgeFileError(f"edges file {path} holds no edges")
    return edges


def _disrupt(args: argparse.Namespace) -> int:
    if args.block_size < 1:
        log.error("--block-size must be at least 1")
        return 2
    try:
        edges = read_edges(args.edges)
    except EdgeFileError as exc:
        log.error("%s", exc)
        return 2
    curve = simulate_disruption(
        edges, metric=args.metric, mode=args.mode, block_size=args.block_size
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    curve.to_csv(args.out, index=False)
    log.info(
        "disruption (%s, %s) of %d nodes written to %s",
        args.metric,
        args.mode,
        len(curve) - 1,
        args.out,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``zicht network``; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["build"]:
        # the pipeline's network stage on an output folder (Spark): zicht.jobs.stagejob, which
        # parses its own flags (-v/-q among them) and configures logging
        from zicht.jobs.stagejob import main as stage_main

        return stage_main("network", argv[1:])
    args = _parser().parse_args(argv)
    configure_logging(args.verbosity)
    if args.command == "disrupt":
        return _disrupt(args)
    raise AssertionError(f"unhandled command {args.command}")  # build is dispatched above


if __name__ == "__main__":
    raise SystemExit(main())
