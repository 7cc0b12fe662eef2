"""``zicht models``: the models stage alone, as a Spark job (see ``zicht.jobs.stagejob``).

    spark-submit --master spark://host:7077 --py-files dist/zicht-0.1.0-py3-none-any.zip \\
        jobs/models.py --from DIR
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from zicht.jobs.stagejob import main as stage_main


def main(argv: Sequence[str] | None = None) -> int:
    return stage_main("models", argv)


if __name__ == "__main__":
    sys.exit(main())
