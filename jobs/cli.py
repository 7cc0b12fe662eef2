"""The ``zicht`` command: one entry point with a registry of jobs.

Each job module has ``main(argv) -> int``; arguments are parsed strictly (never
``parse_known_args``) and checked before Spark starts. ``zicht network disrupt`` needs no Spark.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

JOBS: dict[str, tuple[str, str]] = {
    "synth": ("zicht.jobs.synth", "write a synthetic input folder with planted ground truth"),
    "run": ("zicht.jobs.run", "run the whole pipeline on an input folder"),
    "ingest": (
        "zicht.jobs.ingest",
        "stage job: validate and link an input folder into the store, start OUTPUT",
    ),
    "indicators": ("zicht.jobs.indicators", "stage job: the indicator catalogue on OUTPUT"),
    "models": ("zicht.jobs.models", "stage job: typology, anomalies, hot spots on OUTPUT"),
    "export": (
        "zicht.jobs.export",
        "re-apply disclosure to a finished run: `zicht export --from OUTPUT --conf FILE`",
    ),
    "network": (
        "zicht.jobs.network",
        "`zicht network build --from OUTPUT` (stage job), `zicht network disrupt ...`",
    ),
    "store": ("zicht.jobs.store", "`zicht store purge --store ROOT`: remove stores past retention"),
    "releases": (
        "zicht.jobs.releases",
        "`zicht releases list|forget RUN_ID --output OUT --never-sent`: the release register",
    ),
    "areas": ("zicht.jobs.areas", "`zicht areas diff OLD NEW --output FILE`: area_changes"),
    "experiment": ("zicht.jobs.experiment", "sweep area-typology candidates, one MLflow run each"),
    "pseudonymize": (
        "zicht.jobs.pseudonymize",
        "raw partner extract -> contract table (key holder)",
    ),
}

USAGE = (
    "usage: zicht {"
    + ",".join(JOBS)
    + "} ...\n\n"
    + "\n".join(f"  {name:<13} {help_}" for name, (_, help_) in JOBS.items())
)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] == "--version":
        from zicht.jobs.pipeline import version
        from zicht.jobs.store import CONTRACT_VERSION

        print(f"zicht {version()} (data contract version {CONTRACT_VERSION})")
        return 0
    name, rest = args[0], args[1:]
    if name not in JOBS:
        print(f"zicht: unknown command {name!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    module = importlib.import_module(JOBS[name][0])
    return int(module.main(rest))


if __name__ == "__main__":
    sys.exit(main())
