"""Ownership and commit of output folders: zicht replaces only what it wrote.

Reads and writes the marker ``OUTPUT/.zicht-output`` (JSON: the run id, zicht's version, when it
was written), which only zicht creates. A run writes into an empty or missing folder, or
replaces a folder that carries the marker; any other non-empty folder is refused with
:class:`OutputRefused` (exit code 3) and left untouched. Input and output may not contain each
other in either direction, so a run can never replace its own input. Follows
``../shared/CONTRACT.md`` section 3 (output marker) and section 4 (exit codes).

Two ways to commit a finished run (``output.commit``):

- ``rename`` (local disks, HDFS, ABFS with a hierarchical namespace: renames are atomic). The
  run is written into a temporary sibling ``.<name>.tmp-<run_id>`` in the same folder (so the
  same mount: viewfs refuses renames across mount points), the previous output is renamed aside
  to ``.<name>.old-<run_id>`` (Hadoop's rename onto an existing folder would move into it), the
  work folder renamed in, the old one deleted. An output that is a viewfs mount point is
  refused: the folder beside it lies in the read-only mount table.
- ``pointer`` (object stores such as s3a, which have no atomic rename). The run is written to
  ``OUTPUT/runs/<run_id>/`` and committed by writing ``OUTPUT/CURRENT`` (the run id) last; older
  run folders are removed afterwards. A run killed before the pointer leaves the previous run
  current; the next run removes the orphan. Readers find the run through :func:`readable`.

``auto`` picks rename where the file system renames atomically, else pointer. Every file
operation goes through :mod:`zicht.jobs.fs` (Hadoop's FileSystem), so every location may be a
URI. The pre-Spark checks of the command line use :class:`LocalFiles` on local paths.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Protocol

from zicht.jobs import faults
from zicht.jobs import fs as fsmod

log = logging.getLogger("zicht")

MARKER = ".zicht-output"
POINTER = "CURRENT"
RUNS = "runs"


class OutputRefused(Exception):
    """The output location cannot be used: zicht did not write it, or it overlaps the input."""


class Files(Protocol):
    def exists(self, loc: str) -> bool: ...
    def is_dir(self, loc: str) -> bool: ...
    def is_file(self, loc: str) -> bool: ...
    def list(self, loc: str) -> list[str]: ...


class LocalFiles:
    """The few read-only checks on local paths, before a Spark session exists."""

    def exists(self, loc: str) -> bool:
        return Path(loc).exists()

    def is_dir(self, loc: str) -> bool:
        return Path(loc).is_dir()

    def is_file(self, loc: str) -> bool:
        return Path(loc).is_file()

    def list(self, loc: str) -> list[str]:
        return sorted(str(p) for p in Path(loc).iterdir())


def _local(loc: str) -> str:
    """A local location as a plain path (``file:///x`` -> ``/x``)."""
    return fsmod.normalize(loc).removeprefix("file://").removeprefix("file:")


def is_zicht_output(files: Files, folder: str) -> bool:
    return files.is_file(fsmod.join(folder, MARKER))


def check_output(files: Files, output: str, *, input_dir: str | None = None) -> None:
    """Refuse an output zicht may not replace; returns quietly when the run may write it."""
    if input_dir is not None:
        if fsmod.contains(output, input_dir):
            raise OutputRefused(
                f"--output {output} holds the input folder {input_dir}: a run replaces its "
                "output, so the input would be deleted; choose an output outside the input"
            )
        if fsmod.contains(input_dir, output):
            raise OutputRefused(
                f"--output {output} is inside the input folder {input_dir}; choose an "
                "output outside the input"
            )
    if files.exists(output) and not files.is_dir(output):
        raise OutputRefused(f"--output {output} is a file, not a folder")
    if files.is_dir(output) and files.list(output) and not is_zicht_output(files, output):
        raise OutputRefused(
            f"--output {output} is not empty and was not written by zicht (no {MARKER} "
            "marker); zicht replaces only folders it wrote: choose an empty or new folder"
        )


def precheck_local(output: str, *, input_dir: str | None = None) -> None:
    """The ownership checks before Spark starts, where both locations are local."""
    if fsmod.is_local(output) and (input_dir is None or fsmod.is_local(input_dir)):
        check_output(
            LocalFiles(),
            _local(output),
            input_dir=_local(input_dir) if input_dir is not None else None,
        )


def require_zicht_output(files: Files, folder: str, *, flag: str = "--from") -> None:
    """A stage or export on an existing output: it must be one zicht wrote."""
    if not is_zicht_output(files, folder):
        raise OutputRefused(
            f"{flag} {folder}: not a zicht output folder (no {MARKER} marker); run `zicht run` "
            "or `zicht ingest` into it first"
        )


def marker_text(*, run_id: str, version: str) -> str:
    body = {"run_id": run_id, "zicht_version": version, "written": dt.datetime.now(dt.UTC)}
    return json.dumps(body, default=str) + "\n"


def write_marker(fs: fsmod.FileSystem, folder: str, *, run_id: str, version: str) -> None:
    fs.write_text(
        fsmod.join(folder, MARKER), marker_text(run_id=run_id, version=version), overwrite=True
    )


# --------------------------------------------------------------------------- commit


def commit_mode(fs: fsmod.FileSystem, output: str, configured: str) -> str:
    if configured != "auto":
        return configured
    return "rename" if fs.supports_atomic_rename(output) else "pointer"


def check_not_mount_point(fs: fsmod.FileSystem, output: str) -> None:
    if fs.is_mount_point(output):
        raise OutputRefused(
            f"--output {output} is a viewfs mount point: the folder beside it, where the run is "
            "prepared and its lease kept, lies in the read-only mount table; choose a folder "
            "inside the mount"
        )


def work_location(fs: fsmod.FileSystem, output: str, run_id: str, mode: str) -> str:
    """Where a run writes before its commit (created, with the marker for pointer runs)."""
    if mode == "rename":
        work = fsmod.sibling(output, f".{fsmod.name(output)}.tmp-{run_id}")
        fs.mkdirs(work)
        return work
    fs.mkdirs(output)
    if not is_zicht_output(fs, output):
        write_marker(fs, output, run_id=run_id, version=_version())
    work = fsmod.join(output, RUNS, run_id)
    fs.mkdirs(work)
    return work


def commit_rename(fs: fsmod.FileSystem, work: str, output: str, run_id: str) -> None:
    """Swap the finished work folder in; the previous output survives until then.

    The previous output is moved aside and deleted only when it carries zicht's marker
    (checked again here: the folder may have changed while the run worked); an empty folder
    is replaced by the work folder, anything else is refused and left as it was.
    """
    write_marker(fs, work, run_id=run_id, version=_version())
    check_output(fs, output)
    old = fsmod.sibling(output, f".{fsmod.name(output)}.old-{run_id}")
    if fs.exists(output):
        fs.rename(output, old)
        faults.point("commit:aside")
    fs.rename(work, output)
    if fs.exists(old):
        fs.delete(old)


def commit_pointer(fs: fsmod.FileSystem, output: str, run_id: str) -> None:
    """Make ``runs/<run_id>`` current by writing the pointer last; then drop older runs."""
    faults.point("commit:pointer")
    fs.write_text(fsmod.join(output, POINTER), run_id + "\n", overwrite=True)
    for run in fs.list(fsmod.join(output, RUNS)):
        if fsmod.name(run) != run_id:
            fs.delete(run)


def commit(fs: fsmod.FileSystem, work: str, output: str, run_id: str, mode: str) -> None:
    if mode == "rename":
        commit_rename(fs, work, output, run_id)
    else:
        commit_pointer(fs, output, run_id)


def readable(files: Files | fsmod.FileSystem, output: str) -> str:
    """Where a committed output's files are: the folder itself, or its current run folder."""
    pointer = fsmod.join(output, POINTER)
    if files.is_file(pointer):
        if isinstance(files, LocalFiles):
            run_id = Path(_local(pointer)).read_text().strip()
        else:
            assert isinstance(files, fsmod.FileSystem)
            run_id = files.read_text(pointer).strip()
        return fsmod.join(output, RUNS, run_id)
    return output


def discard(fs: fsmod.FileSystem, work: str, output: str) -> None:
    """Remove a failed run's work folder: only ever our own temp sibling or run folder."""
    own = fsmod.name(work).startswith(f".{fsmod.name(output)}.tmp-") or fsmod.contains(
        fsmod.join(output, RUNS), work
    )
    if own and fs.exists(work):
        fs.delete(work)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zicht")
    except PackageNotFoundError:  # pragma: no cover - running from an unpacked wheel on --py-files
        return os.environ.get("ZICHT_VERSION", "unknown")


# --------------------------------------------------------------------------- lock


class Lease:
    """A lease on an output: ``.<name>.lock`` beside it (host, PID, run id, start, renewal),
    taken atomically (a create that fails when the file exists: atomic on local disks and
    HDFS) and renewed by a daemon thread while the command works, so it also holds when the
    driver runs on another node. A lease not renewed for ``stale_after_s`` seconds, or one whose
    holder is a process of this host that no longer exists, is taken over with a warning.
    """

    def __init__(
        self,
        fs: fsmod.FileSystem,
        output: str,
        *,
        run_id: str,
        command: str,
        stale_after_s: float = 600.0,
        renew_every_s: float = 30.0,
    ) -> None:
        self.fs, self.output, self.run_id, self.command = fs, output, run_id, command
        self.location = fsmod.sibling(output, f".{fsmod.name(output)}.lock")
        self.stale_after_s, self.renew_every_s = stale_after_s, renew_every_s
        self.started = dt.datetime.now(dt.UTC)
        self.mlflow_run_id: str | None = None
        self.previous: dict[str, object] | None = None  # the dead holder this lease replaced
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def body(self) -> str:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "run_id": self.run_id,
                "command": self.command,
                "started": self.started.isoformat(),
                "renewed": dt.datetime.now(dt.UTC).isoformat(),
                "mlflow_run_id": self.mlflow_run_id,
            }
        )

    def _holder(self) -> dict[str, object] | None:
        try:
            held: dict[str, object] = json.loads(self.fs.read_text(self.location))
            return held
        except (fsmod.FileSystemError, ValueError):
            return None

    def _is_dead(self, held: dict[str, object]) -> bool:
        renewed = dt.datetime.fromisoformat(str(held.get("renewed")))
        if (dt.datetime.now(dt.UTC) - renewed).total_seconds() > self.stale_after_s:
            return True
        if held.get("host") == socket.gethostname():
            try:
                os.kill(int(str(held.get("pid"))), 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
        return False

    def acquire(self) -> None:
        self.fs.mkdirs(fsmod.parent(self.output))
        try:
            self.fs.write_text(self.location, self.body(), overwrite=False)
        except fsmod.FileSystemError:
            held = self._holder()
            if held is not None and not self._is_dead(held):
                raise OutputRefused(
                    f"--output {self.output} is in use by {held.get('command')} run "
                    f"{held.get('run_id')} (host {held.get('host')}, PID {held.get('pid')}, since "
                    f"{held.get('started')}); its lease {self.location} was renewed at "
                    f"{held.get('renewed')}"
                ) from None
            log.warning(
                "taking over the lease of %s: its holder (host %s, PID %s, run %s) is gone",
                self.output,
                None if held is None else held.get("host"),
                None if held is None else held.get("pid"),
                None if held is None else held.get("run_id"),
            )
            self.previous = held
            self.fs.delete(self.location)
            self.fs.write_text(self.location, self.body(), overwrite=False)
        self._thread = threading.Thread(target=self._renew, name="zicht-lease", daemon=True)
        self._thread.start()

    def renew(self) -> None:
        self.fs.write_text(self.location, self.body(), overwrite=True)

    def _renew(self) -> None:
        while not self._stop.wait(self.renew_every_s):
            try:
                self.renew()
            except Exception as exc:  # a missed renewal must not kill the run
                log.warning("could not renew the lease %s: %s", self.location, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        held = self._holder()
        if held is not None and held.get("run_id") == self.run_id:
            self.fs.delete(self.location)

    def __enter__(self) -> Lease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------------- recovery


def recover(fs: fsmod.FileSystem, output: str) -> list[str]:
    """Clean what dead runs left around ``output``; call it holding the lease (no live run
    can be using these). Returns what was done, one line each, for the log.

    - ``.<name>.tmp-<id>`` beside it: an unfinished run's work folder (person-level stage
      tables): removed;
    - ``.<name>.old-<id>`` beside it: a run killed mid-swap. With the output gone, the old one
      is the last committed output and is renamed back; otherwise it is removed;
    - ``runs/<id>`` that ``CURRENT`` does not name: a pointer run killed before its pointer;
    - ``.export.tmp-<id>`` / ``.export.old-<id>`` inside it: an unfinished ``zicht export``;
      an old ``export/`` is put back when the new one never arrived.
    """
    done: list[str] = []
    name = fsmod.name(output)
    try:
        beside = fs.list(fsmod.parent(output))
    except fsmod.FileSystemError:
        beside = []
    for loc in beside:
        base = fsmod.name(loc)
        if base.startswith(f".{name}.old-"):
            if not fs.exists(output):
                fs.rename(loc, output)
                done.append(f"restored the previous output from {loc} (a run died mid-commit)")
            else:
                fs.delete(loc)
                done.append(f"removed {loc} (the previous output of a run that died committing)")
    for loc in beside:
        if fsmod.name(loc).startswith(f".{name}.tmp-") and fs.exists(loc):
            fs.delete(loc)
            done.append(f"removed {loc} (the work folder of a run that did not finish)")
    if fs.is_dir(output) and is_zicht_output(fs, output):
        runs = fsmod.join(output, RUNS)
        pointer = fsmod.join(output, POINTER)
        if fs.is_dir(runs) and fs.is_file(pointer):
            current = fs.read_text(pointer).strip()
            for loc in fs.list(runs):
                if fsmod.name(loc) != current:
                    fs.delete(loc)
                    done.append(f"removed {loc} (a run killed before its pointer)")
        target = readable(fs, output)
        if fs.is_dir(target):
            for loc in fs.list(target):
                base = fsmod.name(loc)
                if base.startswith(".export.old-"):
                    for part in fs.list(loc):
                        dest = fsmod.join(target, _export_part(fsmod.name(part)))
                        if not fs.exists(dest):
                            fs.rename(part, dest)
                            done.append(f"restored {dest} from an unfinished zicht export")
                    fs.delete(loc)
                elif base.startswith(".export.tmp-"):
                    fs.delete(loc)
                    done.append(f"removed {loc} (the work folder of an unfinished zicht export)")
    for line in done:
        log.warning("%s", line)
    return done


def _export_part(name: str) -> str:
    """Where a part moved aside by ``zicht export`` belongs in the output folder."""
    return "export" if name == "export" else f"restricted/{name}"
