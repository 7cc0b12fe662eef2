"""``python -m zicht.jobs.export`` and ``spark-submit jobs/export/__main__.py``: the export job."""

import os
import sys

if __name__ == "__main__":
    # run as a script (spark-submit), this folder is first on the path, where its modules
    # (csvfile, report, ...) would shadow top-level ones; zicht comes from the installation
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]

    from zicht.jobs.export import main

    sys.exit(main())
