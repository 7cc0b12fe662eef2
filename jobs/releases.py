"""``zicht releases list|forget``: the release register beside an output, seen and mended.

Every export is audited against every earlier release in the register
(:mod:`zicht.jobs.export.republication`), so a release that never reached a partner (a trial
export, a rerun with a changed catalogue before anything was sent) can stop the next export
for no reason: nobody holds its tables to subtract. ``forget`` removes such a release from the
audits, on the analyst's explicit statement ``--never-sent``. The entry stays in the register
with ``state: forgotten``, when and why, and its published pattern is deleted, so an auditor
still sees that it existed and who retired it; later exports no longer audit against it.
A release that did reach a partner must never be forgotten: the command cannot tell, which is
why the statement is required. The command holds the output's lease, as an export does.

::

    zicht releases list --output OUT
    zicht releases forget RUN_ID --output OUT --never-sent --reason "trial run, not sent"
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from zicht.jobs import catalog
from zicht.jobs import fs as fsmod

FORGOTTEN = "forgotten"
# appended to a refusal that names earlier releases
FORGET_HINT = (
    " (`zicht releases list --output OUT` shows them; one that never reached a partner can be "
    "retired from these audits with `zicht releases forget RUN_ID --output OUT --never-sent`)"
)


def active(releases: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The releases later exports are audited against: all but the forgotten ones."""
    return [r for r in releases if r.get("state") != FORGOTTEN]


def forget(
    releases: Sequence[Mapping[str, Any]],
    run_id: str,
    *,
    reason: str,
    by: str,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """The register with ``run_id`` marked forgotten (when, by whom, why). Raises KeyError
    when no active release has that id."""
    now = now or dt.datetime.now(dt.UTC)
    out: list[dict[str, Any]] = []
    found = False
    for r in releases:
        entry = dict(r)
        if entry.get("run_id") == run_id and entry.get("state") != FORGOTTEN:
            found = True
            entry.update(
                state=FORGOTTEN,
                forgotten={"at": now.isoformat(), "by": by, "reason": reason, "never_sent": True},
            )
        out.append(entry)
    if not found:
        raise KeyError(run_id)
    return out


def describe(releases: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per release: id, state, output, packages."""
    lines = []
    for r in releases:
        packages = sorted((r.get("packages") or {}).keys())
        lines.append(
            f"{r.get('run_id')}  {r.get('state', 'published')}"
            f"{'  forced' if r.get('forced') else ''}  output={r.get('output', '?')}"
            f"  packages={','.join(packages) or '-'}"
        )
    return lines


def _beside(name: str, output: str, **params: str) -> str:
    """A catalogue dataset of the ``beside`` root (the register, a release's pattern)."""
    return catalog.get(name).path(fsmod.parent(output), **params)


def main(argv: Sequence[str] | None = None) -> int:
    from zicht.jobs.config import load_settings
    from zicht.jobs.export.register import read_register, write_register
    from zicht.jobs.outputs import Lease, OutputRefused
    from zicht.jobs.runtime import add_verbosity_flags, build_spark, configure_logging

    p = argparse.ArgumentParser(prog="zicht releases", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pl = sub.add_parser("list", help="the releases in the register beside OUTPUT")
    pl.add_argument("--output", required=True, help="an output folder (local path or URI)")
    pf = sub.add_parser("forget", help="retire a release that never reached a partner")
    pf.add_argument("run_id", help="the release's run id (see `zicht releases list`)")
    pf.add_argument("--output", required=True, help="an output folder (local path or URI)")
    pf.add_argument(
        "--never-sent",
        action="store_true",
        help="your statement that no file of this release ever left the secure environment",
    )
    pf.add_argument("--reason", default="", help="recorded in the register")
    for sp in (pl, pf):
        add_verbosity_flags(sp)
    args = p.parse_args(argv)
    configure_logging(args.verbosity)
    if args.command == "forget" and not args.never_sent:
        print(
            "zicht releases forget: pass --never-sent to state that no file of release "
            f"{args.run_id} ever reached a partner. A release that did must stay in the "
            "register: later exports are audited against it.",
            file=sys.stderr,
        )
        return 2
    output = fsmod.normalize(args.output)
    register = _beside("release_register", output)
    spark = build_spark(load_settings(None).spark, app_name=f"zicht-releases-{args.command}")
    fs = fsmod.FileSystem(spark)
    if args.command == "list":
        releases = read_register(fs, register)
        for line in describe(releases):
            print(line)
        print(f"{len(releases)} release(s) in {register}")
        return 0
    lease = Lease(fs, output, run_id=f"forget-{args.run_id}", command="zicht releases forget")
    try:
        lease.acquire()
    except OutputRefused as exc:
        print(f"zicht releases: {exc}", file=sys.stderr)
        return 3
    try:
        releases = read_register(fs, register)
        try:
            updated = forget(releases, args.run_id, reason=args.reason, by=getpass.getuser())
        except KeyError:
            known = ", ".join(str(r.get("run_id")) for r in active(releases)) or "none"
            print(
                f"zicht releases: no active release {args.run_id} in {register} (active: {known})",
                file=sys.stderr,
            )
            return 2
        write_register(fs, register, updated)
        pattern = _beside("release_pattern", output, release_id=args.run_id)
        if fs.exists(pattern):
            fs.delete(pattern)
    finally:
        lease.release()
    print(f"release {args.run_id} forgotten: later exports beside {output} no longer audit it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
