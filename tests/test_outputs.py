"""zicht never deletes a folder it did not write (trust issue, finding 1).

Each case runs the real command line on real folders and checks the exit code (3: output
refused, contract section 4) and that every file of the user's folder is still there, byte for
byte. The refusals happen before Spark starts, so these tests need no session.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from zicht.jobs import outputs
from zicht.jobs import run as run_job
from zicht.jobs.fs import FileSystem
from zicht.jobs.outputs import MARKER, LocalFiles, OutputRefused


def check_output(output: Path, *, input_dir: Path | None = None) -> None:
    outputs.check_output(
        LocalFiles(), str(output), input_dir=None if input_dir is None else str(input_dir)
    )


pytestmark = pytest.mark.e2e


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _web_app(folder: Path) -> dict[str, bytes]:
    """A user's folder that happens to hold a manifest.json (what fooled the old check)."""
    (folder / "src").mkdir(parents=True)
    (folder / "index.html").write_text("<h1>mine</h1>")
    (folder / "src" / "app.js").write_text("console.log('mine')")
    (folder / "manifest.json").write_text('{"name": "my web app"}')
    return _snapshot(folder)


def _input(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    (folder / "areas.csv").write_text("buurt_code\nBU00000000\n")
    (folder / "incidents.csv").write_text("incident_id\ni1\n")
    return _snapshot(folder)


def test_folder_with_a_manifest_but_no_marker_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inp = tmp_path / "input"
    _input(inp)
    app = tmp_path / "webapp"
    before = _web_app(app)
    assert run_job.main(["--input", str(inp), "--output", str(app)]) == 3
    err = capsys.readouterr().err
    assert str(app) in err and MARKER in err
    assert _snapshot(app) == before


def test_input_kept_inside_the_output_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).write_text("{}")  # even a folder zicht wrote: it holds the input
    before = _input(out / "inp")
    assert run_job.main(["--input", str(out / "inp"), "--output", str(out)]) == 3
    assert _snapshot(out / "inp") == before


def test_output_inside_the_input_is_refused(tmp_path: Path) -> None:
    inp = tmp_path / "input"
    before = _input(inp)
    assert run_job.main(["--input", str(inp), "--output", str(inp / "out")]) == 3
    assert _snapshot(inp) == before


def test_output_that_is_the_input_is_refused(tmp_path: Path) -> None:
    inp = tmp_path / "input"
    before = _input(inp)
    assert run_job.main(["--input", str(inp), "--output", str(inp)]) == 3
    assert _snapshot(inp) == before


def test_sibling_with_a_common_prefix_is_not_taken_for_inside(tmp_path: Path) -> None:
    inp = tmp_path / "data"
    _input(inp)
    check_output(tmp_path / "data-out", input_dir=inp)  # /x/data-out is not inside /x/data


def test_empty_missing_and_marked_folders_are_accepted(tmp_path: Path) -> None:
    inp = tmp_path / "input"
    _input(inp)
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", input_dir=inp)
    check_output(tmp_path / "missing", input_dir=inp)
    marked = tmp_path / "marked"
    marked.mkdir()
    (marked / MARKER).write_text("{}")
    (marked / "export").mkdir()
    check_output(marked, input_dir=inp)


def test_a_file_as_output_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("mine")
    with pytest.raises(OutputRefused, match="is a file"):
        check_output(tmp_path / "out")


@pytest.mark.spark
def test_commit_refuses_a_folder_whose_marker_went_away(spark, tmp_path: Path) -> None:
    """The ownership is checked again at the swap: the folder may change during a run."""
    work = tmp_path / ".out.tmp-1"
    (work / "export").mkdir(parents=True)
    out = tmp_path / "out"
    before = _web_app(out)
    with pytest.raises(OutputRefused):
        outputs.commit_rename(FileSystem(spark), str(work), str(out), "1")
    assert _snapshot(out) == before


@pytest.mark.spark
def test_commit_replaces_a_marked_folder_and_leaves_no_debris(spark, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "export").mkdir(parents=True)
    (out / MARKER).write_text("{}")
    (out / "export" / "old.csv").write_text("old")
    work = tmp_path / ".out.tmp-2"
    (work / "export").mkdir(parents=True)
    (work / "export" / "new.csv").write_text("new")
    outputs.commit_rename(FileSystem(spark), str(work), str(out), "2")
    assert sorted(_snapshot(out)) == [MARKER, "export/new.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    shutil.rmtree(out)
