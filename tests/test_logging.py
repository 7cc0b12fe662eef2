"""``--verbose`` / ``--quiet``: the zicht logger's level, the one stderr handler, and the
Spark log level a session started afterwards gets. Pure Python: no Spark session starts."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

import pytest

from zicht.jobs.runtime import (
    HANDLER_NAME,
    add_verbosity_flags,
    configure_logging,
    spark_log_level,
)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    zicht, root = logging.getLogger("zicht"), logging.getLogger()
    level, handlers = zicht.level, list(root.handlers)
    yield
    zicht.setLevel(level)
    root.handlers[:] = handlers


def _ours() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if h.get_name() == HANDLER_NAME]


@pytest.mark.parametrize(
    ("verbosity", "level", "spark_level"),
    [(1, logging.DEBUG, "INFO"), (0, logging.INFO, "WARN"), (-1, logging.WARNING, "WARN")],
)
def test_verbosity_sets_zicht_and_spark_levels(
    verbosity: int, level: int, spark_level: str
) -> None:
    assert configure_logging(verbosity) == level
    assert logging.getLogger("zicht").level == level
    assert logging.getLogger("zicht.synth").getEffectiveLevel() == level
    assert spark_log_level() == spark_level
    # other libraries keep the root's level: --verbose is not py4j's debug chatter
    assert logging.getLogger("py4j").getEffectiveLevel() == logging.getLogger().level


def test_a_second_call_adds_no_second_handler() -> None:
    configure_logging(0)
    configure_logging(1)
    configure_logging(-1)
    assert len(_ours()) == 1
    assert logging.getLogger("zicht").level == logging.WARNING


def test_messages_reach_stderr_by_level(capsys: pytest.CaptureFixture[str]) -> None:
    # the handler binds sys.stderr when it is created: make it under capsys
    for h in _ours():
        logging.getLogger().removeHandler(h)
    log = logging.getLogger("zicht")
    configure_logging(-1)
    log.info("stage indicators ...")
    log.warning("areas without inhabitants")
    err = capsys.readouterr().err
    assert "areas without inhabitants" in err and "WARNING zicht" in err
    assert "stage indicators" not in err
    configure_logging(1)
    log.debug("rows per partition")
    assert "DEBUG zicht rows per partition" in capsys.readouterr().err


def test_flags_parse_to_verbosity() -> None:
    p = argparse.ArgumentParser()
    add_verbosity_flags(p)
    assert p.parse_args([]).verbosity == 0
    assert p.parse_args(["--verbose"]).verbosity == 1
    assert p.parse_args(["-q"]).verbosity == -1
    with pytest.raises(SystemExit):
        p.parse_args(["--verbose", "--quiet"])
