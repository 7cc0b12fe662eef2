"""The release register beside the output: what each release published, so a later one of
the same data cannot be differenced against it.

``zicht_releases.json`` (the catalogue's ``release_register``) holds one entry per release: the
input digests, the disclosure rules, the phenomenon definitions and the partner packages it
wrote (name, gemeenten, and the digest of each file); ``zicht_releases/<release_id>/`` holds
its published pattern (statuses only) for joint audits. Both live beside the output folder
inside the secure environment: digests and rules only, nothing person-level. An entry is
``pending`` from the export until its commit (:func:`publish_release`); the next command on the
output removes one whose export never arrived (:func:`recover_register`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from zicht.jobs import fs as fsmod
from zicht.jobs.context import PrivacyRefusal, RunContext

RELEASES_DIR = "zicht_releases"  # beside the register: each release's published pattern

REGISTER_NAME = "zicht_releases.json"


def release_entry(
    run_id: str,
    *,
    inputs: Mapping[str, Mapping[str, object]],
    rules: Mapping[str, object],
    phenomena: Mapping[str, object],
) -> dict[str, object]:
    """One register entry: the input hashes, the disclosure parameters and the phenomenon
    definitions (what a later release could be differenced against)."""
    return {
        "run_id": run_id,
        "digest_scheme": fsmod.DIGEST_SCHEME,
        "inputs": {t: a.get("sha256") for t, a in sorted(inputs.items())},
        "rules": dict(rules),
        "phenomena": {k: phenomena[k] for k in sorted(phenomena)},
    }


def read_register(fs: fsmod.FileSystem, register: str) -> list[dict[str, Any]]:
    if not fs.exists(register):
        return []
    releases: list[dict[str, Any]] = json.loads(fs.read_text(register))
    return releases


def migrate_register(
    releases: list[dict[str, Any]], entry: Mapping[str, Any], legacy: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """Entries written before digests had a scheme hold per-file sha256 of local inputs (and
    null for remote ones). An old entry whose hashes equal this input's legacy hashes is the
    same data: it gets this run's digests, so the register compares one scheme only. An old
    entry with a null hash could be any data, so it is compared as if it were the same."""
    out = []
    for old in releases:
        if old.get("digest_scheme") == fsmod.DIGEST_SCHEME:
            out.append(old)
            continue
        inputs = old.get("inputs") or {}
        same = set(inputs) == set(entry["inputs"]) and all(
            v is None or v == legacy.get(t) for t, v in inputs.items()
        )
        migrated = {**old, "digest_scheme": fsmod.DIGEST_SCHEME, "migrated_from": "file-sha256"}
        migrated["inputs"] = (
            dict(entry["inputs"])
            if same
            else {t: f"unmatched-legacy:{v}" for t, v in inputs.items()}
        )
        out.append(migrated)
    return out


def register_release(
    fs: fsmod.FileSystem, register: str, entry: Mapping[str, Any], *, force: bool = False
) -> list[str]:
    """Check ``entry`` against the register and add it (what ``publish`` does in two steps,
    around the export). Returns the conflicts; with conflicts and not ``force`` nothing is
    added. A forced release is recorded with ``"forced": true``. The register holds digests and
    rules only, nothing person-level."""
    from zicht.features.export import release_conflicts

    releases = read_register(fs, register)
    problems = release_conflicts(releases, entry)
    if problems and not force:
        return problems
    write_register(fs, register, [*releases, {**entry, "forced": bool(problems)}])
    return []


def publish_release(fs: fsmod.FileSystem, register: str, release_id: str) -> None:
    """The export of ``release_id`` is committed: its register entry is published."""
    releases = read_register(fs, register)
    for r in releases:
        if r.get("run_id") == release_id:
            r["state"] = "published"
    write_register(fs, register, releases)


def recover_register(
    fs: fsmod.FileSystem, register: str, output: str, committed: set[str]
) -> list[str]:
    """Drop the pending entries of ``output`` whose export never got committed (a command
    killed between writing its release and committing it); ``committed``: the release ids the
    output's manifest records. Call holding the output's lease."""
    releases = read_register(fs, register)
    keep, done = [], []
    for r in releases:
        if r.get("state") == "pending" and r.get("output") == output:
            if r.get("run_id") in committed:
                r["state"] = "published"
                done.append(f"release {r.get('run_id')} was committed: marked published")
            else:
                done.append(f"removed release {r.get('run_id')} from {register}: never exported")
                continue
        keep.append(r)
    if done:
        write_register(fs, register, keep)
    return done


def write_register(
    fs: fsmod.FileSystem, register: str, releases: Sequence[Mapping[str, Any]]
) -> None:
    fs.write_text(register, json.dumps(list(releases), indent=2, default=str), overwrite=True)


def legacy_hashes(ctx: RunContext) -> dict[str, str | None]:
    """This input's hashes as registers before the digest scheme recorded them (per-file
    sha256 of local inputs; remote inputs had none)."""
    from zicht.jobs.io import file_sha256, find_tables

    inp = ctx.fact("input_dir")
    if not inp or not fsmod.is_local(inp) or not ctx.fs.exists(inp):
        return {}
    return {name: file_sha256(loc) for name, (loc, _) in find_tables(ctx.fs, inp).items()}


def joint_verdict(
    ctx: RunContext, audit: DataFrame, patterns: Sequence[DataFrame], hierarchy: DataFrame
) -> dict[str, Any]:
    """``audited_cells``, ``unprotected_cells`` and ``passed`` of the audit of this release
    together with earlier releases' patterns (:func:`zicht.models.disclosure.joint_audit`): one
    row per jointly hidden count, bounded by the partner tables' size, aggregated in Spark."""
    from zicht.features.regions import regions_of
    from zicht.models.disclosure import joint_audit

    regions = regions_of(ctx.settings.export.partners)  # the same tree as the release's audit
    row = (
        joint_audit(audit, patterns, hierarchy, settings=ctx.settings.disclosure, regions=regions)
        .agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(F.when(F.col("protected") == F.lit(False), 1).otherwise(0)).alias("bad"),
        )
        .collect()[0]
    )
    bad = int(row["bad"] or 0)
    return {"audited_cells": int(row["n"]), "unprotected_cells": bad, "passed": not bad}


def check_against_earlier_releases(
    ctx: RunContext,
    audit: DataFrame,
    hierarchy: DataFrame,
    earlier: Sequence[Mapping[str, Any]],
    entry: Mapping[str, Any],
    *,
    force_release: bool,
) -> dict[str, Any] | None:
    """Refuse a release the register finds differencable against earlier ones of the same data;
    when forced, audit it together with them (``joint_audit``) and stop if that fails.
    Returns the joint audit's summary for the report, or None when nothing conflicted."""
    from zicht.features.export import release_conflicts
    from zicht.jobs.releases import FORGET_HINT

    conflicts = release_conflicts(earlier, entry)
    if not conflicts:
        return None
    register = ctx.location("release_register")
    if not force_release:
        raise PrivacyRefusal(
            f"release register {register} refuses this export: "
            + "; ".join(conflicts[:3])
            + " (a partner could subtract the releases; pass --force-release to publish it "
            "anyway, after an audit of the releases together)" + FORGET_HINT
        )
    same = [e for e in earlier if e.get("inputs") == entry.get("inputs")]
    paths = {
        str(e["run_id"]): ctx.location("release_pattern", release_id=str(e["run_id"])) for e in same
    }
    with_pattern = sorted(r for r, path in paths.items() if ctx.fs.exists(path))
    patterns = [ctx.spark.read.parquet(paths[r]) for r in with_pattern]
    summary = {
        "releases": with_pattern,
        "releases_without_pattern": sorted(set(paths) - set(with_pattern)),
        **joint_verdict(ctx, audit, patterns, hierarchy),
    }
    if not summary["passed"]:
        raise PrivacyRefusal(
            f"joint audit with {len(with_pattern)} earlier release(s) of the same data failed: "
            f"{summary['unprotected_cells']} counts hidden in every release can be recovered "
            "from the releases together; nothing was exported" + FORGET_HINT
        )
    return summary
