"""``zicht synth --scale tiny --seed 7`` then ``zicht run`` into FOLDER, as a process of its own.

Under pytest-xdist the first worker starts this once, right after collection, so the workers
share one tiny run (a pipeline run costs about two minutes here) and run the tests that do not
need it meanwhile (``conftest.pytest_collection_modifyitems`` puts those first). It writes
``FOLDER/rc`` last: the exit code, which the workers wait for; its log is ``FOLDER/log``. Run
serially, ``conftest.tiny_run`` calls :func:`main` in its own process.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(folder: Path, seed: int) -> int:
    from zicht.jobs import run as run_job
    from zicht.jobs import synth as synth_job

    code = synth_job.main(["--scale", "tiny", "--seed", str(seed), "--out", str(folder / "input")])
    if code != 0:
        return code
    tracking = os.environ.pop("MLFLOW_TRACKING_URI", None)  # the run's own SQLite store beside it
    try:
        return run_job.main(["--input", str(folder / "input"), "--output", str(folder / "output")])
    finally:
        if tracking is not None:
            os.environ["MLFLOW_TRACKING_URI"] = tracking


if __name__ == "__main__":
    target, seed = Path(sys.argv[1]), int(sys.argv[2])
    try:
        rc = main(target, seed)
    except BaseException:
        import traceback

        traceback.print_exc()
        rc = 1
    (target / "rc.tmp").write_text(str(rc))
    (target / "rc.tmp").rename(target / "rc")  # atomic: a waiting worker never reads it half
    sys.exit(rc)
