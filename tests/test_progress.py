"""Progress lines from Spark's status tracker, and the run's log kept in memory with secrets
redacted.

The Spark tests run planted work on the shared session: ``parallelize(range(8), 8)`` with a
sleep per element is one Spark job of one stage with exactly 8 tasks, so the expected counts
come from the work itself, not from the code under test.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pyspark.sql import SparkSession

from zicht.jobs.progress import (
    LogCapture,
    Progress,
    ProgressSnapshot,
    RedactSecrets,
    capture_log,
    format_elapsed,
    secret_values,
)
from zicht.jobs.runtime import HANDLER_NAME, configure_logging

LINE = re.compile(
    r"progress: stage (?P<stage>\S+), (?P<jobs_done>\d+) of (?P<jobs_total>\d+) Spark jobs"
    r"(?: \(\d+ failed\))? and (?P<tasks_done>\d+) of (?P<tasks_total>\d+) tasks done, "
    r"(?P<active>\d+) active, elapsed (?P<elapsed>\S+)$"
)
TASKS_PER_JOB = 8


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    zicht, root = logging.getLogger("zicht"), logging.getLogger()
    level, handlers = zicht.level, list(root.handlers)
    zicht_handlers = list(zicht.handlers)
    yield
    zicht.setLevel(level)
    root.handlers[:] = handlers
    zicht.handlers[:] = zicht_handlers


def _slow_job(spark: SparkSession, seconds_per_task: float = 0.25) -> int:
    """One Spark job, one stage, 8 tasks; on local[2] about 4 x ``seconds_per_task``."""

    def slow(x: int) -> int:
        time.sleep(seconds_per_task)
        return x

    return spark.sparkContext.parallelize(range(TASKS_PER_JOB), TASKS_PER_JOB).map(slow).count()


def _settled(progress: Progress, jobs: int) -> ProgressSnapshot:
    """The snapshot once the tracker has seen ``jobs`` jobs end: Spark's listener bus delivers
    a job's end a moment after the action returned."""
    deadline = time.monotonic() + 60  # a loaded machine's listener bus can lag for seconds
    while True:
        snap = progress.snapshot()
        assert snap is not None
        if (snap.jobs_done >= jobs and snap.tasks_active == 0) or time.monotonic() > deadline:
            return snap
        time.sleep(0.05)


@contextmanager
def _job_group(spark: SparkSession, group: str, description: str) -> Iterator[None]:
    """The block's jobs in ``group``; the session's later jobs in none again."""
    sc = spark.sparkContext
    sc.setJobGroup(group, description)
    try:
        yield
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
        sc.setLocalProperty("spark.job.description", None)  # type: ignore[arg-type]


def _job_before_the_start(spark: SparkSession) -> None:
    """One job, run and seen to its end by the status tracker. "Before the start" is as the
    tracker sees it: a job whose end the listener bus has not delivered yet when a Progress
    starts counts as one of its jobs (on a loaded machine the bus lags for seconds; the full
    suite once counted the job before the start that way). The job runs in a group of its own
    so that the tracker can be asked for it by name."""
    group = "zicht-test-before-the-start"
    with _job_group(spark, group, "a job before the progress starts"):
        spark.range(10).count()
    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        infos = [tracker.getJobInfo(i) for i in tracker.getJobIdsForGroup(group)]
        if infos and all(i is not None and i.status == "SUCCEEDED" for i in infos):
            return
        time.sleep(0.05)
    raise AssertionError("the status tracker did not see the job's end within 60 s")


def _progress_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "zicht-progress"]


def _lines(caplog: pytest.LogCaptureFixture) -> list[re.Match[str]]:
    found = []
    for r in caplog.records:
        if r.levelno == logging.INFO and r.getMessage().startswith("progress:"):
            m = LINE.match(r.getMessage())
            assert m, r.getMessage()
            found.append(m)
    return found


@pytest.mark.spark
def test_lines_name_the_stage_and_count_only_the_jobs_since_start(
    spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zicht")
    _job_before_the_start(spark)  # not counted
    stage = {"name": "network"}
    with Progress(spark, lambda: stage["name"], interval_s=0.2) as progress:
        assert progress.is_running
        assert _slow_job(spark) == TASKS_PER_JOB
        stage["name"] = "indicators"
        assert _slow_job(spark) == TASKS_PER_JOB
        final = _settled(progress, jobs=2)
        time.sleep(0.5)  # a line after the last task
    assert (final.jobs_done, final.jobs_total, final.jobs_failed) == (2, 2, 0)
    assert (final.tasks_done, final.tasks_total, final.tasks_active) == (16, 16, 0)

    lines = _lines(caplog)
    print(f"{len(lines)} progress lines; last: {lines[-1].group(0) if lines else None}")
    assert len(lines) >= 3
    assert {m["stage"] for m in lines} >= {"network", "indicators"}
    done_before = 0
    for m in lines:
        jobs_done, jobs_total = int(m["jobs_done"]), int(m["jobs_total"])
        tasks_done, tasks_total = int(m["tasks_done"]), int(m["tasks_total"])
        assert 0 <= jobs_done <= jobs_total <= 2
        assert 0 <= tasks_done <= tasks_total <= 2 * TASKS_PER_JOB
        # a task's end reaches the tracker after the next one starts: active may exceed the
        # two slots of local[2] for a moment, never the tasks not yet done
        assert tasks_done + int(m["active"]) <= tasks_total
        assert tasks_done >= done_before  # done never goes back
        done_before = tasks_done
    assert any(int(m["jobs_total"]) >= 1 for m in lines)
    assert lines[-1]["tasks_done"] == "16" and lines[-1]["jobs_done"] == "2"
    # the thread is gone after the block
    assert not progress.is_running
    assert _progress_threads() == []
    # at most one line per interval: 2 jobs of about a second each, interval 0.2 s
    assert len(lines) <= 40


@pytest.mark.spark
def test_jobs_in_another_job_group_are_counted(spark: SparkSession) -> None:
    with Progress(spark, lambda: "models", interval_s=30) as progress:
        with _job_group(spark, "zicht-test-other-group", "a group the progress never heard of"):
            spark.sparkContext.parallelize(range(4), 4).count()
        snap = _settled(progress, jobs=1)
    assert (snap.jobs_done, snap.jobs_total, snap.tasks_done, snap.tasks_total) == (1, 1, 4, 4)


@pytest.mark.spark
def test_leaving_the_block_does_not_wait_for_the_interval(
    spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zicht")
    t0 = time.perf_counter()
    with Progress(spark, lambda: "ingest", interval_s=30):
        pass
    assert time.perf_counter() - t0 < 2
    assert _progress_threads() == []
    assert _lines(caplog) == []


@pytest.mark.spark
def test_a_failed_read_is_skipped_at_debug_and_never_raises(
    spark: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="zicht")
    calls = {"n": 0}

    def flaky_stage() -> str:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("stage name not there yet")
        return "export"

    with Progress(spark, flaky_stage, interval_s=0.1):
        deadline = time.monotonic() + 5
        while calls["n"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    skipped = [r for r in caplog.records if "line skipped" in r.getMessage()]
    assert len(skipped) == 2 and all(r.levelno == logging.DEBUG for r in skipped)
    assert any(m["stage"] == "export" for m in _lines(caplog))
    assert _progress_threads() == []


def test_without_a_status_tracker_it_only_says_so() -> None:
    # what a Spark Connect session gives: no SparkContext
    with Progress(object(), lambda: "ingest", interval_s=0.1) as progress:
        assert not progress.is_running
        assert progress.snapshot() is None


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (12.7, "12s"), (252, "4m12s"), (3732, "1h02m12s")]
)
def test_format_elapsed(seconds: float, text: str) -> None:
    assert format_elapsed(seconds) == text


# -- the run's log ---------------------------------------------------------------------------

KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"  # planted, 64 hex


def test_capture_keeps_zicht_records_in_the_log_format_and_detaches() -> None:
    logging.getLogger("zicht").setLevel(logging.INFO)
    with capture_log() as captured:
        logging.getLogger("zicht").info("stage ingest started")
        logging.getLogger("zicht.network").warning("areas without inhabitants: %d", 3)
        logging.getLogger("zicht").debug("rows per partition")  # below INFO
        logging.getLogger("py4j").warning("not zicht's")
    logging.getLogger("zicht").info("after the block")
    lines = captured.text().splitlines()
    assert len(lines) == 2, lines
    assert re.match(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO zicht stage ingest started$", lines[0]
    )
    assert lines[1].endswith("WARNING zicht.network areas without inhabitants: 3")
    assert captured not in logging.getLogger("zicht").handlers
    assert not captured.truncated


def test_capture_keeps_info_under_quiet_while_the_console_stays_quiet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for h in [h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME]:
        logging.getLogger().removeHandler(h)  # recreated under capsys
    configure_logging(-1)
    zicht = logging.getLogger("zicht")
    with capture_log(logging.INFO) as captured:
        zicht.info("stage network done")
        zicht.warning("a warning")
    assert "stage network done" in captured.text() and "a warning" in captured.text()
    err = capsys.readouterr().err
    assert "a warning" in err and "stage network done" not in err
    assert zicht.level == logging.WARNING  # restored
    zicht.info("quiet again")
    assert "quiet again" not in capsys.readouterr().err


def test_a_planted_key_never_reaches_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZICHT_PSEUDONYM_KEY", KEY)
    monkeypatch.setenv("ZICHT_TEST_API_TOKEN", "tok-123456789")
    monkeypatch.setenv("ZICHT_TEST_SHORT_KEY", "abc")  # too short to be a secret
    monkeypatch.setenv("ZICHT_TEST_PLAIN", "plain-value-123456")  # not a secret's name
    logging.getLogger("zicht").setLevel(logging.INFO)
    log = logging.getLogger("zicht.pseudonymize")
    with capture_log() as captured:
        log.info("key in the message %s", KEY)
        log.info(f"key in an f-string {KEY} and a token tok-123456789")
        log.info("a short value abc and a plain one plain-value-123456")
        log.info("tracking uri https://analyst:s3cr3t-pw@mlflow.example.nl/api")
        try:
            raise ValueError(f"bad key {KEY}")
        except ValueError:
            log.exception("refused")
    text = captured.text()
    print(text)
    assert KEY not in text and KEY[:16] not in text
    assert "tok-123456789" not in text and "s3cr3t-pw" not in text
    assert text.count("[redacted ZICHT_PSEUDONYM_KEY]") == 3  # message, f-string, traceback
    assert "[redacted ZICHT_TEST_API_TOKEN]" in text
    assert "https://analyst:[redacted]@mlflow.example.nl/api" in text
    assert "a short value abc and a plain one plain-value-123456" in text
    assert "Traceback" in text and "ValueError: bad key [redacted ZICHT_PSEUDONYM_KEY]" in text


def test_secret_values_by_name_and_length() -> None:
    env = {
        "ZICHT_PSEUDONYM_KEY": KEY,
        "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
        "MLFLOW_TRACKING_PASSWORD": "pw-1234567",
        "GITHUB_TOKEN": "short",
        "HOME": "/home/analyst",
    }
    assert dict(secret_values(env)) == {
        "ZICHT_PSEUDONYM_KEY": KEY,
        "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
        "MLFLOW_TRACKING_PASSWORD": "pw-1234567",
    }


def test_a_bad_format_call_reaches_no_caller() -> None:
    handler = LogCapture()
    handler.handleError = lambda record: None  # type: ignore[method-assign]  # keep stderr clean
    record = logging.LogRecord("zicht", logging.INFO, __file__, 1, "%d rows", ("x",), None)
    assert RedactSecrets().filter(record) is True
    handler.handle(record)  # logging reports the bad call; nothing raises
    assert handler.text() == ""


def test_the_log_keeps_the_last_bytes_and_says_what_it_dropped() -> None:
    handler = LogCapture(max_bytes=2_000)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for i in range(100):
        handler.handle(
            logging.LogRecord(
                "zicht", logging.INFO, __file__, 1, f"line {i:03d} " + "x" * 40, None, None
            )
        )
    text = handler.text()
    lines = text.splitlines()
    assert handler.truncated
    assert lines[0].startswith("[zicht.log: the first ") and "were dropped" in lines[0]
    assert lines[-1].startswith("line 099 ")
    kept = lines[1:]
    assert len("".join(f"{line}\n" for line in kept).encode()) <= 2_000
    dropped = int(re.search(r"the first (\d+) records", lines[0]).group(1))  # type: ignore[union-attr]
    assert dropped + len(kept) == 100
    assert kept[0].startswith(f"line {dropped:03d} ")
