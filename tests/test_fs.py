"""zicht.jobs.fs: location strings, file operations through Hadoop, digests computed by Spark.

The file operations run on a pytest folder named three ways: a bare path, a ``file://`` URI and
``viewfs://zt/data`` (a viewfs mount table whose one link points at the folder, set on the
session's Hadoop configuration at runtime). Expected contents come from ``os`` and ``hashlib``
on the local folder, never from the module under test.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from zicht.jobs import fs
from zicht.jobs.fs import FileSystem, FileSystemError

SEED = 20240611

# ---------------------------------------------------------------------------------------------
# Location helpers (pure)


@pytest.mark.parametrize(
    ("base", "parts", "expected"),
    [
        ("s3a://b/out", ("export", "x.csv"), "s3a://b/out/export/x.csv"),
        ("s3a://b/out/", ("export/x.csv",), "s3a://b/out/export/x.csv"),
        ("s3a://b", ("x",), "s3a://b/x"),
        ("/tmp/o", ("a",), "/tmp/o/a"),
        ("/", ("a",), "/a"),
        ("out", ("a", "b"), "out/a/b"),
        ("file:///tmp/o", ("a",), "file:///tmp/o/a"),
        ("file:/tmp/o", ("a",), "file:/tmp/o/a"),
        ("viewfs://cluster/x", ("y",), "viewfs://cluster/x/y"),
        ("hdfs://nn:8020/data/", ("out", "part-0"), "hdfs://nn:8020/data/out/part-0"),
        (
            "abfss://c@acct.dfs.core.windows.net/o",
            ("a",),
            "abfss://c@acct.dfs.core.windows.net/o/a",
        ),
    ],
)
def test_join_keeps_scheme_and_authority(base: str, parts: tuple[str, ...], expected: str) -> None:
    assert fs.join(base, *parts) == expected


@pytest.mark.parametrize("part", ["", "/abs", "s3a://other/x"])
def test_join_refuses_parts_that_are_not_relative(part: str) -> None:
    with pytest.raises(ValueError):
        fs.join("s3a://b/out", part)


def test_a_location_is_a_string() -> None:
    # Path("s3a://b/out") is already s3a:/b/out: refuse it rather than guess
    with pytest.raises(TypeError):
        fs.join(Path("/tmp/o"), "a")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fs.normalize("")


@pytest.mark.parametrize(
    ("loc", "parent", "name"),
    [
        ("s3a://b/out/x", "s3a://b/out", "x"),
        ("s3a://b/out", "s3a://b/", "out"),
        ("hdfs://nn/data/out/", "hdfs://nn/data", "out"),
        ("file:///tmp/o", "file:///tmp", "o"),
        ("/tmp/o", "/tmp", "o"),
        ("/tmp", "/", "tmp"),
        ("viewfs://zt/data", "viewfs://zt/", "data"),
    ],
)
def test_parent_and_name(loc: str, parent: str, name: str) -> None:
    assert fs.parent(loc) == parent
    assert fs.name(loc) == name


@pytest.mark.parametrize("root", ["/", "s3a://b", "s3a://b/", "file:///"])
def test_a_root_has_no_parent(root: str) -> None:
    assert fs.name(root) == ""
    with pytest.raises(ValueError):
        fs.parent(root)


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        ("hdfs://nn/data/out", "hdfs://nn/data/.out.tmp-1"),
        ("s3a://b/out/", "s3a://b/.out.tmp-1"),
        ("file:///tmp/o", "file:///tmp/.out.tmp-1"),
        ("/tmp/o", "/tmp/.out.tmp-1"),
        ("viewfs://zt/data/out", "viewfs://zt/data/.out.tmp-1"),
    ],
)
def test_sibling(loc: str, expected: str) -> None:
    assert fs.sibling(loc, ".out.tmp-1") == expected


def test_sibling_name_is_one_component() -> None:
    for bad in ["", "a/b", "..", "."]:
        with pytest.raises(ValueError):
            fs.sibling("/tmp/o", bad)


@pytest.mark.parametrize(
    ("loc", "scheme", "local"),
    [
        ("/tmp/o", "", True),
        ("out", "", True),
        ("file:///tmp/o", "file", True),
        ("FILE:/tmp/o", "file", True),
        ("hdfs://nn/o", "hdfs", False),
        ("viewfs://zt/o", "viewfs", False),
        ("s3a://b/o", "s3a", False),
        ("abfss://c@a.dfs.core.windows.net/o", "abfss", False),
    ],
)
def test_scheme_and_is_local(loc: str, scheme: str, local: bool) -> None:
    assert fs.scheme(loc) == scheme
    assert fs.is_local(loc) is local


def test_normalize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert fs.normalize("out/") == str(tmp_path / "out")
    assert fs.normalize("./a/../out") == str(tmp_path / "out")
    assert fs.normalize("/tmp/o//") == "/tmp/o"
    assert fs.normalize("/") == "/"
    assert fs.normalize("s3a://b/out/") == "s3a://b/out"
    assert fs.normalize("s3a://b/") == "s3a://b/"
    assert fs.normalize("file:///tmp/o/") == "file:///tmp/o"
    assert fs.normalize("viewfs://zt/data") == "viewfs://zt/data"


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("/a/b", "/a/b", True),
        ("/a/b", "/a/b/c/d", True),
        ("/a/b", "/a/bc", False),
        ("/a/b/", "/a/b/c", True),
        ("/a/b/c", "/a/b", False),
        ("/a/b", "/a/b/../c", False),
        ("/a/b", "file:///a/b/c", True),
        ("file:/a/b", "/a/b", True),
        ("s3a://b/out", "s3a://b/out/export/x.csv", True),
        ("s3a://b/out", "s3a://b/outside", False),
        ("s3a://b/out", "s3a://c/out/x", False),
        ("s3a://b", "s3a://b/anything", True),
        ("s3a://b/out", "/b/out/x", False),
        ("hdfs://nn/data", "hdfs://nn/data/out", True),
        ("hdfs://nn/data", "hdfs://other/data/out", False),
        ("HDFS://nn/data", "hdfs://nn/data/out", True),
        ("viewfs://zt/data", "viewfs://zt/data2", False),
    ],
)
def test_contains_compares_components(outer: str, inner: str, expected: bool) -> None:
    assert fs.contains(outer, inner) is expected


def test_digest_of_lines_is_the_documented_scheme() -> None:
    a, b = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    text = f"x/a.parquet {a}\nz.csv {b}\n"  # sorted lines, each ending in a newline
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert fs.digest_of_lines([("z.csv", b), ("x/a.parquet", a)]) == expected
    assert fs.digest_of_lines([("x/a.parquet", a), ("z.csv", b)]) == expected
    assert fs.digest_of_lines([]) == hashlib.sha256(b"").hexdigest()
    assert fs.DIGEST_SCHEME == "sha256-of-sorted-path-sha256-lines-v1"


@pytest.mark.parametrize(
    "pairs",
    [
        [("a\nb", "0" * 64)],
        [("/abs", "0" * 64)],
        [("a", "0" * 64), ("a", "1" * 64)],
        [("a", "not-a-digest")],
    ],
)
def test_digest_of_lines_refuses_ambiguous_input(pairs: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        fs.digest_of_lines(pairs)


# ---------------------------------------------------------------------------------------------
# FileSystem on one folder named three ways


@pytest.fixture
def viewfs(spark: SparkSession, tmp_path: Path) -> Iterator[str]:
    """``viewfs://zt/data`` linked to this test's folder, for this test only.

    Hadoop caches one FileSystem per scheme and authority and a ViewFileSystem reads its mount
    table once, when created: without ``disable.cache`` a later test would see an earlier
    test's link.
    """
    conf = spark._jsc.hadoopConfiguration()
    link, no_cache = "fs.viewfs.mounttable.zt.link./data", "fs.viewfs.impl.disable.cache"
    before = conf.get(no_cache)
    conf.set(link, tmp_path.as_uri())
    conf.set(no_cache, "true")
    yield "viewfs://zt/data"
    conf.unset(link)
    if before is None:
        conf.unset(no_cache)
    else:
        conf.set(no_cache, before)


@pytest.fixture(params=["path", "file_uri", "viewfs"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """(location, the local folder it names)."""
    if request.param == "path":
        return str(tmp_path), tmp_path
    if request.param == "file_uri":
        return tmp_path.as_uri(), tmp_path
    return request.getfixturevalue("viewfs"), tmp_path


@pytest.fixture
def hfs(spark: SparkSession) -> FileSystem:
    return FileSystem(spark)


def _data_files(folder: Path) -> list[str]:
    """Relative paths of the files below ``folder``, without Hadoop's local ``.crc`` files."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.name.endswith(".crc")
    )


@pytest.mark.spark
def test_exists_is_dir_is_file_mkdirs(hfs: FileSystem, place: tuple[str, Path]) -> None:
    root, local = place
    (local / "f.txt").write_text("x")
    assert hfs.exists(root) and hfs.is_dir(root) and not hfs.is_file(root)
    f = fs.join(root, "f.txt")
    assert hfs.exists(f) and hfs.is_file(f) and not hfs.is_dir(f)
    missing = fs.join(root, "missing")
    assert not hfs.exists(missing) and not hfs.is_dir(missing) and not hfs.is_file(missing)

    hfs.mkdirs(fs.join(root, "a", "b"))
    assert (local / "a" / "b").is_dir()
    hfs.mkdirs(fs.join(root, "a", "b"))  # an existing folder is fine
    with pytest.raises(FileSystemError, match="f.txt"):
        hfs.mkdirs(f)  # an existing file is not


@pytest.mark.spark
def test_write_and_read_bytes_and_text(hfs: FileSystem, place: tuple[str, Path]) -> None:
    root, local = place
    payload = random.Random(SEED).randbytes(5000) + b"\x00\xff"
    print(f"seed {SEED}")
    loc = fs.join(root, "new", "deep", "blob.bin")  # create() makes the missing folders
    hfs.write_bytes(loc, payload)
    assert (local / "new" / "deep" / "blob.bin").read_bytes() == payload
    assert hfs.read_bytes(loc) == payload

    with pytest.raises(FileSystemError, match="blob.bin"):
        hfs.write_bytes(loc, b"other")
    assert (local / "new" / "deep" / "blob.bin").read_bytes() == payload
    hfs.write_bytes(loc, b"other", overwrite=True)
    assert (local / "new" / "deep" / "blob.bin").read_bytes() == b"other"

    text = "buurt Überwijk, €1 — ok\n"
    hfs.write_text(fs.join(root, "t.txt"), text)
    assert (local / "t.txt").read_bytes() == text.encode("utf-8")
    assert hfs.read_text(fs.join(root, "t.txt")) == text

    with pytest.raises(FileSystemError, match="missing"):
        hfs.read_bytes(fs.join(root, "missing"))


@pytest.mark.spark
def test_list_and_walk(hfs: FileSystem, place: tuple[str, Path]) -> None:
    root, local = place
    for rel, size in [("b.csv", 3), ("a/x.parquet", 10), ("a/y z.bin", 0), ("_SUCCESS", 0)]:
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_bytes(b"x" * size)
    (local / "empty").mkdir()

    assert hfs.list(root) == [f"{root}/{n}" for n in sorted(os.listdir(local))]
    assert hfs.list(fs.join(root, "empty")) == []
    expected = [(rel, (local / rel).stat().st_size) for rel in _data_files(local)]
    assert hfs.walk(root) == expected
    assert hfs.walk(fs.join(root, "a")) == [("x.parquet", 10), ("y z.bin", 0)]
    assert hfs.walk(fs.join(root, "b.csv")) == [("b.csv", 3)]
    with pytest.raises(FileSystemError, match="not a folder"):
        hfs.list(fs.join(root, "b.csv"))
    with pytest.raises(FileSystemError, match="no such"):
        hfs.walk(fs.join(root, "missing"))


@pytest.mark.spark
def test_delete(hfs: FileSystem, place: tuple[str, Path]) -> None:
    root, local = place
    (local / "d" / "e").mkdir(parents=True)
    (local / "d" / "e" / "f").write_text("x")
    (local / "g").write_text("x")

    hfs.delete(fs.join(root, "missing"))  # absent: nothing to do
    hfs.delete(fs.join(root, "g"))
    assert not (local / "g").exists()
    with pytest.raises(FileSystemError, match="d"):
        hfs.delete(fs.join(root, "d"), recursive=False)  # not empty
    assert (local / "d" / "e" / "f").exists()
    hfs.delete(fs.join(root, "d"))
    assert not (local / "d").exists()
    with pytest.raises(FileSystemError, match="root"):
        hfs.delete("viewfs://zt/")


@pytest.mark.spark
def test_rename(hfs: FileSystem, place: tuple[str, Path]) -> None:
    root, local = place
    (local / "src").mkdir()
    (local / "src" / "part-0").write_text("new")
    (local / "file.txt").write_text("f")

    hfs.rename(fs.join(root, "file.txt"), fs.join(root, "renamed.txt"))
    assert (local / "renamed.txt").read_text() == "f" and not (local / "file.txt").exists()
    hfs.rename(fs.join(root, "src"), fs.join(root, "dst"))
    assert (local / "dst" / "part-0").read_text() == "new" and not (local / "src").exists()


@pytest.mark.spark
@pytest.mark.parametrize("dst_kind", ["full folder", "empty folder", "file"])
def test_rename_refuses_an_existing_destination(
    hfs: FileSystem, place: tuple[str, Path], dst_kind: str
) -> None:
    # Hadoop's own rename would move src INTO an existing folder (HDFS, viewfs, and the local
    # file system for a non-empty one) or replace an empty local folder.
    root, local = place
    (local / "src").mkdir()
    (local / "src" / "part-0").write_text("new")
    if dst_kind == "file":
        (local / "dst").write_text("old")
    else:
        (local / "dst").mkdir()
        if dst_kind == "full folder":
            (local / "dst" / "part-0").write_text("old")
    before = _data_files(local)

    src, dst = fs.join(root, "src"), fs.join(root, "dst")
    with pytest.raises(FileSystemError) as refused:
        hfs.rename(src, dst)
    assert src in str(refused.value) and dst in str(refused.value)
    assert "exists" in str(refused.value)
    assert _data_files(local) == before


@pytest.mark.spark
def test_rename_refuses_what_hadoop_would_do_differently(
    hfs: FileSystem, place: tuple[str, Path]
) -> None:
    root, local = place
    (local / "src").mkdir()
    with pytest.raises(FileSystemError, match="source does not exist"):
        hfs.rename(fs.join(root, "missing"), fs.join(root, "x"))
    with pytest.raises(FileSystemError, match="does not exist"):
        hfs.rename(fs.join(root, "src"), fs.join(root, "no", "such", "parent"))
    with pytest.raises(FileSystemError, match="inside the source"):
        hfs.rename(fs.join(root, "src"), fs.join(root, "src", "sub"))
    assert (local / "src").is_dir() and not (local / "no").exists()


@pytest.mark.spark
def test_rename_across_file_systems_is_refused(
    hfs: FileSystem, viewfs: str, tmp_path: Path
) -> None:
    (tmp_path / "a").write_text("x")
    with pytest.raises(FileSystemError, match="same file system"):
        hfs.rename(str(tmp_path / "a"), fs.join(viewfs, "b"))


@pytest.mark.spark
def test_modification_time(hfs: FileSystem, place: tuple[str, Path]) -> None:
    root, local = place
    (local / "f").write_text("x")
    os.utime(local / "f", (1_700_000_000.25, 1_700_000_000.25))
    assert hfs.modification_time(fs.join(root, "f")) == pytest.approx(1_700_000_000.25, abs=1e-3)
    with pytest.raises(FileSystemError, match="missing"):
        hfs.modification_time(fs.join(root, "missing"))


@pytest.mark.spark
def test_is_mount_point(hfs: FileSystem, viewfs: str, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert hfs.is_mount_point("viewfs://zt/data")
    assert hfs.is_mount_point("viewfs://zt/data/")
    assert hfs.is_mount_point("viewfs://zt/")  # the mount-table root
    assert not hfs.is_mount_point("viewfs://zt/data/sub")
    assert not hfs.is_mount_point("viewfs://zt/data/not-yet")
    assert not hfs.is_mount_point(str(tmp_path))
    assert not hfs.is_mount_point(tmp_path.as_uri())
    # a sibling of a mount point lies in the read-only mount table itself
    with pytest.raises(FileSystemError, match="readonly"):
        hfs.mkdirs(fs.sibling("viewfs://zt/data", ".data.tmp"))


@pytest.mark.spark
def test_supports_atomic_rename(hfs: FileSystem, viewfs: str, tmp_path: Path) -> None:
    assert hfs.supports_atomic_rename(str(tmp_path))
    assert hfs.supports_atomic_rename(tmp_path.as_uri())
    assert hfs.supports_atomic_rename("hdfs://nn/data/out")
    assert hfs.supports_atomic_rename("abfss://c@a.dfs.core.windows.net/out")
    assert hfs.supports_atomic_rename(fs.join(viewfs, "out"))  # a link to file:
    assert not hfs.supports_atomic_rename(viewfs)  # the link itself cannot be renamed
    for loc in ["s3a://b/out", "gs://b/out", "wasbs://c@a.blob.core.windows.net/out"]:
        assert not hfs.supports_atomic_rename(loc), loc


@pytest.mark.spark
def test_errors_are_one_line(hfs: FileSystem, tmp_path: Path) -> None:
    with pytest.raises(FileSystemError) as failed:
        hfs.read_bytes(str(tmp_path / "missing"))
    message = str(failed.value)
    assert "\n" not in message and "FileNotFoundException" in message
    assert str(tmp_path / "missing") in message
    assert failed.value.__cause__ is None and failed.value.__suppress_context__


# ---------------------------------------------------------------------------------------------
# Digest


def _hashlib_digest(folder: Path) -> str:
    """The digest scheme written out again with os.walk and hashlib."""
    lines = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
        for file_name in filenames:
            if file_name.startswith((".", "_")):
                continue
            full = Path(dirpath) / file_name
            rel = full.relative_to(folder).as_posix()
            lines.append(f"{rel} {hashlib.sha256(full.read_bytes()).hexdigest()}\n")
    return hashlib.sha256("".join(sorted(lines)).encode("utf-8")).hexdigest()


def _tree(folder: Path) -> None:
    rng = random.Random(SEED)
    print(f"seed {SEED}")
    files = {
        "part-00000.parquet": rng.randbytes(3000),
        "part-00001.parquet": rng.randbytes(10),
        "year=2024/part-00000.parquet": rng.randbytes(500),
        "dir é/a b%20c #1.txt": "ondermijning é\n".encode(),
        "a/b/c/deep.bin": b"",
        "_SUCCESS": b"",
        ".keep": b"bookkeeping",
        "_temporary/0/part-00000.parquet": rng.randbytes(20),
        ".hidden/x.bin": b"y",
    }
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


@pytest.mark.spark
def test_digest_equals_hashlib_by_path_uri_and_viewfs(
    spark: SparkSession, viewfs: str, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    _tree(tree)
    expected = _hashlib_digest(tree)
    assert fs.digest(spark, str(tree)) == expected
    assert fs.digest(spark, str(tree) + "/") == expected
    assert fs.digest(spark, tree.as_uri()) == expected
    assert fs.digest(spark, fs.join(viewfs, "tree")) == expected

    (tree / "part-00001.parquet").write_bytes(b"changed")  # no stale listing or content
    changed = _hashlib_digest(tree)
    assert changed != expected
    assert fs.digest(spark, fs.join(viewfs, "tree")) == changed


@pytest.mark.spark
def test_digest_of_one_file_and_an_empty_folder(
    spark: SparkSession, viewfs: str, tmp_path: Path
) -> None:
    f = tmp_path / "incidents.csv"
    f.write_bytes(b"incident_id\nI1\n")
    line = f"incidents.csv {hashlib.sha256(f.read_bytes()).hexdigest()}\n"
    expected = hashlib.sha256(line.encode("utf-8")).hexdigest()
    assert fs.digest(spark, str(f)) == expected
    assert fs.digest(spark, fs.join(viewfs, "incidents.csv")) == expected

    (tmp_path / "empty").mkdir()
    assert fs.digest(spark, str(tmp_path / "empty")) == hashlib.sha256(b"").hexdigest()


@pytest.mark.spark
def test_digest_refuses_missing_and_glob_locations(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(FileSystemError, match="no such"):
        fs.digest(spark, str(tmp_path / "missing"))
    with pytest.raises(FileSystemError, match="glob"):
        fs.digest(spark, str(tmp_path / "part-*"))


@pytest.mark.spark
def test_bytes_larger_than_one_py4j_chunk_round_trip(hfs: FileSystem, tmp_path: Path) -> None:
    """py4j carries a byte[] as one base64 string (a national partner table overflowed it):
    reads and writes go in chunks, and the bytes come back whole."""
    data = os.urandom(fs.CHUNK_BYTES * 2 + 12345)
    loc = str(tmp_path / "big.csv")
    hfs.write_bytes(loc, data)
    assert (tmp_path / "big.csv").read_bytes() == data
    assert hfs.read_bytes(loc) == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]  # no .crc beside it


@pytest.mark.spark
def test_digest_of_bytes_in_hand_equals_the_digest_of_the_written_file(
    spark: SparkSession, hfs: FileSystem, tmp_path: Path
) -> None:
    data = b"level,area_code\r\nbuurt,BU00010101\r\n"
    hfs.write_bytes(str(tmp_path / "indicators_buurt.csv"), data)
    expected = hashlib.sha256(
        f"indicators_buurt.csv {hashlib.sha256(data).hexdigest()}\n".encode()
    ).hexdigest()
    assert fs.digest(spark, str(tmp_path / "indicators_buurt.csv")) == expected
    assert fs.digest_of_bytes("indicators_buurt.csv", data) == expected
