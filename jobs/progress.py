"""Visible progress during a run and the run's own log, kept in memory for the output.

:class:`Progress` reads Spark's status tracker (``SparkContext.statusTracker()``: job ids, job
and stage infos) from a daemon thread and logs one INFO line at most once per interval::

    progress: stage indicators, 12 of 15 Spark jobs and 340 of 402 tasks done, 3 active, elapsed 4m12s

It counts the jobs started since it began: Spark numbers jobs one after another, so every id
above the highest one known at the start is the run's, whatever job group or thread started it
(the tracker lists finished jobs only per group, so the newest id is found by asking for the
ids after the highest one known until a few in a row are unknown). "Known" is as the tracker
sees it: a job that ended just before the start but whose events Spark's listener bus has not
delivered yet counts as the run's (one job too many in the lines, on a loaded machine). A stage a
finished job skipped (its shuffle output already existed) counts in neither total; while its
job runs, such a stage cannot be told from one still to come and counts as to do. The tracker
keeps only the last ``spark.ui.retainedJobs`` jobs; a finished job's counts are remembered
once read, so a long run's totals do not shrink when Spark forgets old jobs.

:class:`LogCapture` keeps the formatted records of the ``zicht`` logger (the format of
:data:`zicht.jobs.runtime.LOG_FORMAT`) in memory, the last ``max_bytes`` of them, for the
orchestrator to write to ``OUTPUT/zicht.log`` and to the MLflow run. :class:`RedactSecrets`
replaces the value of every secret-looking environment variable, and the password of a URL,
before a record is kept. Nothing here writes a file or talks to MLflow.
"""

from __future__ import annotations

import collections
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from zicht.jobs.runtime import HANDLER_NAME, LOG_FORMAT

log = logging.getLogger("zicht")

FINISHED = frozenset({"SUCCEEDED", "FAILED"})
# ids asked for past the newest known job before taking it as the newest: a job whose start
# the listener bus has not yet delivered is unknown for a moment while a later one may be known
LOOKAHEAD = 3


@dataclass(frozen=True)
class ProgressSnapshot:
    """Spark's work since a :class:`Progress` started, as the status tracker last saw it."""

    stage: str
    jobs_done: int
    jobs_total: int
    jobs_failed: int
    tasks_done: int
    tasks_total: int
    tasks_active: int
    elapsed_s: float

    def line(self) -> str:
        failed = f" ({self.jobs_failed} failed)" if self.jobs_failed else ""
        return (
            f"progress: stage {self.stage}, {self.jobs_done} of {self.jobs_total} Spark jobs"
            f"{failed} and {self.tasks_done} of {self.tasks_total} tasks done, "
            f"{self.tasks_active} active, elapsed {format_elapsed(self.elapsed_s)}"
        )


def format_elapsed(seconds: float) -> str:
    """``12s``, ``4m12s``, ``1h04m12s``."""
    s = int(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    return f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Log Spark's progress at most once per ``interval_s`` while the ``with`` block runs.

    ``stage`` returns the name of the stage now running (e.g. ``lambda: ctx.current_stage``).
    Never raises into the caller: a session without a status tracker (Spark Connect) only gets
    a DEBUG message, and a failed read of the tracker skips that line. Leaving the block stops
    the thread and waits for it (at most ``join_timeout_s``; it is a daemon thread, so a
    tracker call stuck in a dying JVM cannot hold the interpreter).
    """

    def __init__(
        self,
        spark: Any,
        stage: Callable[[], str | None],
        *,
        interval_s: float = 30.0,
        logger: logging.Logger | None = None,
        join_timeout_s: float = 10.0,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, not {interval_s}")
        self.spark = spark
        self.stage = stage
        self.interval_s = interval_s
        self.logger = logger or log
        self.join_timeout_s = join_timeout_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._tracker: Any = None
        self._started = 0.0
        self._baseline = -1  # the highest job id known at the start: not ours
        self._max_seen = -1
        # a finished job's status and stages, and a stage's (total, done) once all its jobs
        # finished: read once, never asked of the tracker again
        self._final_jobs: dict[int, tuple[str, tuple[int, ...]]] = {}
        self._final_stages: dict[int, tuple[int, int]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Progress:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._started = time.monotonic()
        try:
            sc = self.spark.sparkContext
            self._tracker = sc.statusTracker()
            self._baseline = self._max_seen = self._newest_job_id()
        except Exception as exc:  # Spark Connect has no SparkContext; a stopped session
            self._tracker = None
            self.logger.debug("progress: no Spark status tracker, no progress lines (%s)", exc)
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="zicht-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.join_timeout_s)
            if thread.is_alive():
                self.logger.debug("progress: the status thread did not stop in time")

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                snap = self.snapshot()
            except Exception as exc:  # the tracker's consistency is weak; a line may fail
                self.logger.debug("progress: status tracker read failed, line skipped: %r", exc)
                continue
            if snap is not None and not self._stop.is_set():
                self.logger.info("%s", snap.line())

    # -- reading the tracker -----------------------------------------------------------------

    def _newest_job_id(self) -> int:
        """The highest job id the tracker knows (-1 before the first job)."""
        tracker = self._tracker
        known = set(tracker.getJobIdsForGroup(None)) | set(tracker.getActiveJobsIds())
        newest = max(known | {self._max_seen}, default=-1)
        candidate, misses = newest + 1, 0
        while misses < LOOKAHEAD:
            if tracker.getJobInfo(candidate) is None:
                misses += 1
            else:
                newest, misses = candidate, 0
            candidate += 1
        return newest

    def snapshot(self) -> ProgressSnapshot | None:
        """Jobs and tasks since the start; None without a tracker. May raise a tracker error."""
        if self._tracker is None:
            return None
        stage = self.stage()
        with self._lock:
            return self._read(str(stage) if stage is not None else "-")

    def _read(self, stage: str) -> ProgressSnapshot:
        tracker = self._tracker
        self._max_seen = self._newest_job_id()
        jobs: dict[int, tuple[str, tuple[int, ...]]] = {}
        for job_id in range(self._baseline + 1, self._max_seen + 1):
            if job_id in self._final_jobs:
                jobs[job_id] = self._final_jobs[job_id]
                continue
            info = tracker.getJobInfo(job_id)
            if info is None:  # forgotten before we read it, or not registered yet
                continue
            jobs[job_id] = (info.status, tuple(int(s) for s in info.stageIds))
            if info.status in FINISHED:
                self._final_jobs[job_id] = jobs[job_id]

        # a stage can belong to several jobs: count it once, final when all its jobs are
        running_stages: set[int] = set()
        all_stages: set[int] = set()
        for status, stage_ids in jobs.values():
            all_stages.update(stage_ids)
            if status not in FINISHED:
                running_stages.update(stage_ids)
        tasks_total = tasks_done = tasks_active = 0
        for stage_id in sorted(all_stages):
            if stage_id in self._final_stages:
                total, done = self._final_stages[stage_id]
            else:
                info = tracker.getStageInfo(stage_id)
                if info is None:
                    continue
                total, done = info.numTasks, min(info.numCompletedTasks, info.numTasks)
                if stage_id not in running_stages:
                    if done == 0 and info.numActiveTasks == 0:
                        total = 0  # skipped: its output already existed
                    self._final_stages[stage_id] = (total, done)
                else:
                    tasks_active += info.numActiveTasks
            tasks_total += total
            tasks_done += done
        statuses = [status for status, _ in jobs.values()]
        return ProgressSnapshot(
            stage=stage,
            jobs_done=sum(s in FINISHED for s in statuses),
            jobs_total=len(statuses),
            jobs_failed=statuses.count("FAILED"),
            tasks_done=tasks_done,
            tasks_total=tasks_total,
            tasks_active=tasks_active,
            elapsed_s=time.monotonic() - self._started,
        )


# -- the run's log -------------------------------------------------------------------------

SECRET_NAME_PARTS = ("KEY", "SECRET", "TOKEN", "PASSWORD")
MIN_SECRET_CHARS = 8  # shorter values are not secrets worth the name (the pseudonym key: 32)
# user:password@ in a URL (an MLflow or object-store URI)
URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@")


def secret_values(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``(name, value)`` of the environment variables whose name holds KEY, SECRET, TOKEN or
    PASSWORD (``ZICHT_PSEUDONYM_KEY`` among them) and whose value has at least 8 characters;
    longest value first, so a secret that contains another is replaced whole."""
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for name in sorted(env):
        value = env[name]
        if len(value) >= MIN_SECRET_CHARS and any(p in name.upper() for p in SECRET_NAME_PARTS):
            found.setdefault(value, name)
    return sorted(((name, value) for value, name in found.items()), key=lambda nv: -len(nv[1]))


class RedactSecrets(logging.Filter):
    """Replace secret environment values and URL passwords in a record's text.

    It rewrites the record in place (message, exception and stack text), so handlers that see
    the record after it see the redacted text too. The environment is read at every record:
    a key set after the filter was made is still caught.
    """

    def redact(self, text: str) -> str:
        for name, value in secret_values():
            if value in text:
                text = text.replace(value, f"[redacted {name}]")
        return URL_PASSWORD.sub(r"\g<head>[redacted]@", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad format arguments: the handler reports it, never the caller
            return True
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class LogCapture(logging.Handler):
    """The formatted records it handles, the last ``max_bytes`` (UTF-8) of them, in memory."""

    def __init__(self, level: int = logging.INFO, *, max_bytes: int = 5 * 1024 * 1024) -> None:
        super().__init__(level)
        self.max_bytes = max_bytes
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self.redactor = RedactSecrets()
        self.addFilter(self.redactor)
        self._lines: collections.deque[tuple[str, int]] = collections.deque()
        self._bytes = 0
        self._dropped_records = 0
        self._dropped_bytes = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # redact the whole line again: a formatter may add text the filter did not see
            line = self.redactor.redact(self.format(record))
        except Exception:
            self.handleError(record)
            return
        size = len(line.encode("utf-8")) + 1
        if size > self.max_bytes:  # one record larger than the cap: keep its start
            keep = max(self.max_bytes - 20, 0)
            line = line.encode("utf-8")[:keep].decode("utf-8", "ignore")
            line += " ...[cut]"
            size = len(line.encode("utf-8")) + 1
        self._lines.append((line, size))  # handle() holds self.lock around emit
        self._bytes += size
        while self._bytes > self.max_bytes and self._lines:
            _, dropped = self._lines.popleft()
            self._bytes -= dropped
            self._dropped_records += 1
            self._dropped_bytes += dropped

    @property
    def truncated(self) -> bool:
        return self._dropped_records > 0

    def text(self) -> str:
        """The log as one string, newline-terminated; a first line says what was dropped."""
        self.acquire()  # emit runs under the same lock
        try:
            lines = [line for line, _ in self._lines]
            dropped, dropped_bytes = self._dropped_records, self._dropped_bytes
        finally:
            self.release()
        if dropped:
            note = (
                f"[zicht.log: the first {dropped} records ({dropped_bytes} bytes) were "
                f"dropped; the last {self.max_bytes} bytes are kept]"
            )
            lines.insert(0, note)
        return "".join(f"{line}\n" for line in lines)


@contextmanager
def capture_log(
    level: int = logging.INFO, *, max_bytes: int = 5 * 1024 * 1024
) -> Iterator[LogCapture]:
    """Attach a :class:`LogCapture` to the ``zicht`` logger for the ``with`` block.

    The kept log holds ``level`` and above even when the console shows less (``--quiet``):
    the ``zicht`` logger passes ``level`` while the block runs, and the stderr handler of
    :func:`zicht.jobs.runtime.configure_logging` keeps the threshold the console had. Both
    are restored on exit. Call ``configure_logging`` before, not inside, the block.
    """
    logger = logging.getLogger("zicht")
    handler = LogCapture(level, max_bytes=max_bytes)
    old_level = logger.level
    console = logger.getEffectiveLevel()
    raised: list[tuple[logging.Handler, int]] = []
    if console > level:
        for h in logging.getLogger().handlers:
            if h.get_name() == HANDLER_NAME and h.level < console:
                raised.append((h, h.level))
                h.setLevel(console)
        logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        if console > level:
            logger.setLevel(old_level)
            for h, h_level in raised:
                h.setLevel(h_level)
