"""Named kill points for the fault tests: ``ZICHT_KILL_AT=<point>`` makes the process SIGKILL
itself there, as a crash, an OOM kill or a pre-empted node would.

Points: ``after:<stage>`` (a stage finished and wrote its outputs), ``before_commit`` (every
stage done, the manifest written), ``commit:aside`` (rename commit: the previous output moved
aside, the new one not yet in) and ``commit:pointer`` (pointer commit: the run folder complete,
the pointer not yet written). Unset, nothing happens; the variable is read where the point is
reached, so a test sets it for one child process only.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "ZICHT_KILL_AT"


def point(name: str) -> None:
    if os.environ.get(VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
