"""``zicht releases list|forget``: a release that never reached a partner can be retired from
the audits of later exports, on the analyst's explicit statement, and stays on record."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from zicht.jobs.releases import FORGOTTEN, active, forget


def test_forget_marks_the_release_and_keeps_it_on_record() -> None:
    releases = [{"run_id": "r1", "state": "published"}, {"run_id": "r2", "state": "published"}]
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    out = forget(releases, "r1", reason="trial", by="analist", now=now)
    assert [r["run_id"] for r in out] == ["r1", "r2"]  # nothing is removed from the record
    assert out[0]["state"] == FORGOTTEN
    assert out[0]["forgotten"] == {
        "at": "2026-12-01T00:00:00+00:00",
        "by": "analist",
        "reason": "trial",
        "never_sent": True,
    }
    assert [r["run_id"] for r in active(out)] == ["r2"]
    assert releases[0]["state"] == "published"  # the input is not changed in place
    with pytest.raises(KeyError):
        forget(out, "r1", reason="", by="x")  # already forgotten
    with pytest.raises(KeyError):
        forget(out, "r9", reason="", by="x")


def test_forget_without_the_statement_is_refused(tmp_path: Path) -> None:
    from zicht.jobs.releases import main

    assert main(["forget", "r1", "--output", str(tmp_path / "out")]) == 2


@pytest.mark.e2e
@pytest.mark.spark
def test_a_forgotten_release_no_longer_stops_an_export(
    tiny_run: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tiny run's release, recorded with stricter rules than today's, refuses the export of
    the same data (a partner could subtract the two); forgotten, the same export passes, and
    the register still holds it, marked."""
    from zicht.jobs import export as export_job
    from zicht.jobs.releases import main as releases_main

    out = tmp_path / "output"
    shutil.copytree(tiny_run["output"], out)
    register = tmp_path / "zicht_releases.json"
    entries = json.loads((tiny_run["root"] / "zicht_releases.json").read_text())
    (earlier,) = entries
    earlier["rules"]["min_count"] = int(earlier["rules"]["min_count"]) + 5
    register.write_text(json.dumps(entries))
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        assert export_job.main(["--from", str(out)]) == 4
        err = capsys.readouterr().err
        assert "is weaker than" in err and "zicht releases forget" in err
        assert releases_main(["forget", earlier["run_id"], "--output", str(out)]) == 2
        assert releases_main(["forget", "nope", "--output", str(out), "--never-sent"]) == 2
        code = releases_main(
            ["forget", earlier["run_id"], "--output", str(out), "--never-sent", "--reason", "t"]
        )
        assert code == 0
        assert export_job.main(["--from", str(out)]) == 0
        assert releases_main(["list", "--output", str(out)]) == 0
    finally:
        mp.undo()
    listed = capsys.readouterr().out
    assert f"{earlier['run_id']}  forgotten" in listed
    after = json.loads(register.read_text())
    assert [(r["run_id"] == earlier["run_id"], r["state"]) for r in after] == [
        (True, FORGOTTEN),
        (False, "published"),
    ]
    assert after[0]["forgotten"]["reason"] == "t"
