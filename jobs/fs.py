"""Locations and file operations through Hadoop's FileSystem of the running Spark session.

Every location zicht reads or writes (input folder, output folder, store) is a string: a local
path or a URI (``file://``, ``hdfs://``, ``viewfs://``, ``s3a://``, ``abfss://``). The helpers at
the top are pure string operations that keep ``scheme://authority`` intact (``pathlib`` turns
``s3a://b/out`` into ``s3a:/b/out``). ``FileSystem`` does every file operation through
``org.apache.hadoop.fs.FileSystem`` with the session's Hadoop configuration, so the cluster's
credentials, mount tables and file-system settings apply; nothing here touches the driver's disk
directly. ``digest`` hashes the data files under a location with Spark's ``binaryFile`` source.

Reads and writes only the locations its callers name; keeps no state beyond a cache of Hadoop
FileSystem handles per scheme and authority (Hadoop's own cache shares them with Spark, so they
are never closed here).

A bare path (no scheme) is "local" to the pure helpers, and Hadoop resolves it against
``fs.defaultFS``: ``file:///`` in local and standalone mode, often ``hdfs://...`` on a YARN
cluster, where Spark reads the same string the same way. ``FileSystem.qualify`` gives the fully
qualified form to record or to pass on when that difference matters.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import posixpath
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from py4j.java_gateway import is_instance_of
from py4j.protocol import Py4JError, Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

DIGEST_SCHEME = "sha256-of-sorted-path-sha256-lines-v1"
CHUNK_BYTES = 16 << 20  # what one py4j call carries between Python and the JVM

# Schemes whose rename of a file or folder is one atomic metadata operation. ABFS assumes an
# account with hierarchical namespace (ADLS Gen2); without it rename is a copy. webhdfs is the
# HDFS rename over REST. Anything not listed counts as not atomic (S3A, GCS, WASB, OSS, ...:
# rename copies object by object, a reader can see half a folder).
_ATOMIC_RENAME_SCHEMES = frozenset({"file", "hdfs", "webhdfs", "swebhdfs", "abfs", "abfss"})

# Hadoop (and so Spark's DataFrameReader) expands these in a path; a location holding one would
# be read as a pattern and digest other files.
_GLOB_CHARS = re.compile(r"[*?\[\]{}\\]")

# A scheme is letters, digits, + - . before the first ':' that comes before any '/'; Hadoop's
# Path parses the same way (a local file name with ':' before its first '/' reads as a scheme).
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*):(?P<rest>.*)$", re.DOTALL)


class FileSystemError(Exception):
    """A file operation failed or was refused; the message names the operation and location."""


# ---------------------------------------------------------------------------------------------
# Location helpers (pure)


class _Loc(NamedTuple):
    scheme: str  # as written ("" for a bare path)
    authority: str | None  # None when the location has no "//" part
    path: str

    def __str__(self) -> str:
        head = f"{self.scheme}:" if self.scheme else ""
        if self.authority is not None:
            head += f"//{self.authority}"
        return head + self.path


def _parse(loc: str) -> _Loc:
    if not isinstance(loc, str):
        raise TypeError(f"a location is a string (a path or a URI), got {type(loc).__name__}")
    if not loc:
        raise ValueError("a location must not be empty")
    m = _SCHEME.match(loc)
    if m is None:
        return _Loc("", None, loc)
    rest = m.group("rest")
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        return _Loc(m.group("scheme"), authority, slash + path)
    return _Loc(m.group("scheme"), None, rest)


def _strip_trailing(path: str) -> str:
    stripped = path.rstrip("/")
    return stripped if stripped or not path.startswith("/") else "/"


def scheme(loc: str) -> str:
    """The location's scheme in lower case: "" for a bare path, "file", "hdfs", "s3a", ..."""
    return _parse(loc).scheme.lower()


def is_local(loc: str) -> bool:
    """True for a bare path or a ``file:`` URI (by the string; see the module docstring)."""
    return scheme(loc) in ("", "file")


def normalize(loc: str) -> str:
    """A bare path made absolute against the driver's working directory (and ``.``/``..``
    resolved); a URI kept as given. Trailing slashes are stripped (a root keeps its ``/``)."""
    parsed = _parse(loc)
    if not parsed.scheme:
        return os.path.abspath(loc)
    return str(parsed._replace(path=_strip_trailing(parsed.path)))


def join(base: str, *parts: str) -> str:
    """``base`` with relative ``parts`` appended, ``scheme://authority`` left intact.

    A part may hold ``/`` (``"export/x.csv"``); an empty or absolute part is an error, since
    ``posixpath.join`` would silently drop everything before it.
    """
    parsed = _parse(base)
    path = parsed.path.rstrip("/")
    for part in parts:
        if not part or part.startswith("/") or _SCHEME.match(part):
            raise ValueError(f"join({base!r}, ...): {part!r} is not a relative path")
        path = f"{path}/{part.rstrip('/')}"
    return str(parsed._replace(path=path))


def parent(loc: str) -> str:
    """The folder holding ``loc`` (after ``normalize``); a root has none (ValueError)."""
    parsed = _parse(normalize(loc))
    if parsed.path in ("", "/"):
        raise ValueError(f"{loc} is a root: it has no parent")
    head = parsed.path[: parsed.path.rfind("/")]
    return str(parsed._replace(path=head or "/"))


def name(loc: str) -> str:
    """The last component of ``loc`` (after ``normalize``); "" for a root."""
    return _parse(normalize(loc)).path.rstrip("/").rpartition("/")[2]


def sibling(loc: str, sibling_name: str) -> str:
    """A location named ``sibling_name`` in the same folder as ``loc`` (e.g. a temporary folder
    beside an output folder, so that a rename swaps them on one file system)."""
    if not sibling_name or "/" in sibling_name or sibling_name in (".", ".."):
        raise ValueError(f"sibling name must be one path component, got {sibling_name!r}")
    return join(parent(loc), sibling_name)


def _key(loc: str) -> tuple[str, str, tuple[str, ...]]:
    parsed = _parse(normalize(loc))
    lowered = parsed.scheme.lower() or "file"
    path = posixpath.normpath(parsed.path) if parsed.path else ""
    components = tuple(c for c in path.split("/") if c and c != ".")
    return lowered, parsed.authority or "", components


def contains(outer: str, inner: str) -> bool:
    """True when ``inner`` is ``outer`` or lies inside it, compared component by component on
    normalised locations (``/a/b`` does not contain ``/a/bc``; a bare path and its ``file:``
    URI are the same place)."""
    o_scheme, o_auth, o_parts = _key(outer)
    i_scheme, i_auth, i_parts = _key(inner)
    return (o_scheme, o_auth) == (i_scheme, i_auth) and i_parts[: len(o_parts)] == o_parts


# ---------------------------------------------------------------------------------------------
# File operations through Hadoop


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, Py4JJavaError):
        text = str(exc.java_exception.toString())  # "java.io.FileNotFoundException: File ..."
    elif isinstance(exc, PySparkException):
        # str() appends the JVM stack trace when spark.sql.pyspark.jvmStacktrace.enabled
        text = str(exc).split("\n\nJVM stacktrace:")[0]
    else:
        text = str(exc)
    return " ".join(text.split())


@contextmanager
def _hadoop(action: str, *locs: str) -> Iterator[None]:
    """Turn a py4j or Spark error into one FileSystemError line (no Java stack trace)."""
    try:
        yield
    except (Py4JError, PySparkException) as exc:
        where = " -> ".join(locs)
        raise FileSystemError(f"{action} {where}: {_one_line(exc)}") from None


def _relative(root: str, path: str, single_name: str) -> str:
    """``path`` relative to ``root``, both as Hadoop's ``Path.toString`` writes them."""
    if path == root:
        return single_name
    prefix = root if root.endswith("/") else root + "/"
    if not path.startswith(prefix):
        raise FileSystemError(f"listing {root}: Hadoop returned {path}, which is not below it")
    return path[len(prefix) :]


def _below(outer: str, inner: str) -> bool:
    """Whether absolute posix path ``inner`` is ``outer`` or inside it."""
    return outer == "/" or inner == outer or inner.startswith(outer + "/")


class FileSystem:
    """File operations on location strings through Hadoop's FileSystem of ``spark``.

    Every method takes locations as strings and raises ``FileSystemError`` on failure; every
    boolean Hadoop returns is checked. Needs a classic SparkSession (with a JVM), not Spark
    Connect.
    """

    def __init__(self, spark: SparkSession) -> None:
        jsc = getattr(spark, "_jsc", None)
        jvm = getattr(spark, "_jvm", None)
        if jsc is None or jvm is None:
            raise FileSystemError(
                "zicht.jobs.fs needs a classic SparkSession with a JVM (not Spark Connect)"
            )
        self._jvm: Any = jvm
        self._gateway: Any = spark.sparkContext._gateway
        self._conf: Any = jsc.hadoopConfiguration()
        self._handles: dict[tuple[str, str], Any] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def _path(self, loc: str) -> Any:
        with _hadoop("parse", loc):
            return self._jvm.org.apache.hadoop.fs.Path(normalize(loc))

    def _fs(self, loc: str) -> Any:
        parsed = _parse(normalize(loc))
        key = (parsed.scheme.lower(), parsed.authority or "")
        if key not in self._handles:
            with _hadoop("open file system for", loc):
                handle = self._path(loc).getFileSystem(self._conf)
                # the local file system writes a hidden .<name>.crc beside every file it
                # creates; export/ goes to partners as it is, so no checksum files there
                # (a no-op on file systems without client-side checksums)
                handle.setWriteChecksum(False)
                self._handles[key] = handle
        return self._handles[key]

    def _status(self, loc: str) -> Any | None:
        """Hadoop's FileStatus of ``loc``, or None when nothing is there."""
        with _hadoop("stat", loc):
            try:
                return self._fs(loc).getFileStatus(self._path(loc))
            except Py4JJavaError as exc:
                if is_instance_of(
                    self._gateway, exc.java_exception, "java.io.FileNotFoundException"
                ):
                    return None
                raise

    def _required_status(self, action: str, loc: str) -> Any:
        status = self._status(loc)
        if status is None:
            raise FileSystemError(f"{action} {loc}: no such file or folder")
        return status

    def _effective_scheme(self, loc: str) -> str:
        found = scheme(loc)
        if found:
            return found
        with _hadoop("default file system for", loc):
            default = self._jvm.org.apache.hadoop.fs.FileSystem.getDefaultUri(self._conf)
            return str(default.getScheme() or "file").lower()

    def qualify(self, loc: str) -> str:
        """``loc`` fully qualified by Hadoop (``/tmp/x`` -> ``file:/tmp/x`` in local mode)."""
        with _hadoop("qualify", loc):
            return str(self._fs(loc).makeQualified(self._path(loc)).toString())

    # -- queries ----------------------------------------------------------------------------

    def exists(self, loc: str) -> bool:
        with _hadoop("exists", loc):
            return bool(self._fs(loc).exists(self._path(loc)))

    def is_dir(self, loc: str) -> bool:
        status = self._status(loc)
        return status is not None and bool(status.isDirectory())

    def is_file(self, loc: str) -> bool:
        status = self._status(loc)
        return status is not None and bool(status.isFile())

    def list(self, loc: str) -> builtins.list[str]:
        """The children of folder ``loc``, sorted by name, as ``join(loc, child)``."""
        if not self._required_status("list", loc).isDirectory():
            raise FileSystemError(f"list {loc}: not a folder")
        with _hadoop("list", loc):
            names = [str(s.getPath().getName()) for s in self._fs(loc).listStatus(self._path(loc))]
        base = normalize(loc)
        return [join(base, n) for n in sorted(names)]

    def walk(self, loc: str) -> builtins.list[tuple[str, int]]:
        """(relative posix path, size in bytes) of every file below ``loc``, sorted by path; a
        file gives its own name. Nothing is filtered here (``_SUCCESS`` included), but Hadoop's
        local file system hides its own ``.crc`` checksum files."""
        status = self._required_status("walk", loc)
        if status.isFile():
            return [(name(loc), int(status.getLen()))]
        root = self.qualify(loc)
        found = []
        with _hadoop("walk", loc):
            files = self._fs(loc).listFiles(self._path(loc), True)
            while files.hasNext():
                item = files.next()
                rel = _relative(root, str(item.getPath().toString()), name(loc))
                found.append((rel, int(item.getLen())))
        return sorted(found)

    def modification_time(self, loc: str) -> float:
        """Seconds since the epoch (Hadoop keeps milliseconds; object stores may report 0 for a
        folder)."""
        status = self._required_status("modification time of", loc)
        return int(status.getModificationTime()) / 1000.0

    def is_mount_point(self, loc: str) -> bool:
        """True when ``loc`` is part of a viewfs mount table rather than inside a mounted file
        system: a link (``viewfs://zt/data`` for ``fs.viewfs.mounttable.zt.link./data``), the
        mount-table root, or a folder of the table above a link. Such a place is read-only:
        nothing can be created beside it, renamed onto it or deleted. False for any other file
        system."""
        if self._effective_scheme(loc) != "viewfs":
            return False
        path = self._mount_table_path(loc)
        if path == "/":
            return True
        return any(_below(path, m) for m, _ in self._mount_points(loc))

    def supports_atomic_rename(self, loc: str) -> bool:
        """Whether renaming ``loc`` is one atomic operation on its file system (True for file,
        hdfs, abfss, and viewfs inside a link to one of those; False for s3a, gs, wasb(s), any
        unknown scheme, and the read-only places of a viewfs mount table)."""
        found = self._effective_scheme(loc)
        if found != "viewfs":
            return found in _ATOMIC_RENAME_SCHEMES
        path = self._mount_table_path(loc)
        inside = [(m, t) for m, t in self._mount_points(loc) if _below(m, path) and m != path]
        if not inside:
            return False
        _, targets = max(inside, key=lambda mt: len(mt[0]))  # the innermost link holds loc
        return all(
            (scheme(t) or self._effective_scheme(t)) in _ATOMIC_RENAME_SCHEMES for t in targets
        )

    def _mount_table_path(self, loc: str) -> str:
        with _hadoop("resolve", loc):
            path = str(self._fs(loc).makeQualified(self._path(loc)).toUri().getPath())
        return _strip_trailing(path) or "/"

    def _mount_points(self, loc: str) -> builtins.list[tuple[str, tuple[str, ...]]]:
        """(path in the mount table, target URIs) of each link of ``loc``'s viewfs."""
        with _hadoop("mount points of", loc):
            found = []
            for point in self._fs(loc).getMountPoints():
                mounted = str(point.getMountedOnPath().toUri().getPath())
                targets = tuple(str(t) for t in point.getTargetFileSystemPaths())
                found.append((_strip_trailing(mounted), targets))
            return found

    # -- changes ----------------------------------------------------------------------------

    def mkdirs(self, loc: str) -> None:
        """Create folder ``loc`` and its missing parents (no error if it exists)."""
        with _hadoop("mkdirs", loc):
            made = bool(self._fs(loc).mkdirs(self._path(loc)))
        if not made:
            raise FileSystemError(f"mkdirs {loc}: Hadoop returned false")

    def delete(self, loc: str, recursive: bool = True) -> None:
        """Delete ``loc`` (a folder with everything in it unless ``recursive=False``); nothing
        happens when it is absent. A file-system root is refused."""
        if _parse(normalize(loc)).path in ("", "/"):
            raise FileSystemError(f"delete {loc}: refusing to delete a file-system root")
        if not self.exists(loc):
            return
        with _hadoop("delete", loc):
            deleted = bool(self._fs(loc).delete(self._path(loc), recursive))
        if not deleted and self.exists(loc):  # False for a path someone else just removed is fine
            raise FileSystemError(f"delete {loc}: Hadoop returned false and it is still there")

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` on the same file system. Refused when ``dst`` exists (Hadoop
        would move ``src`` into an existing folder, or onto an empty local one), when the
        folder that is to hold ``dst`` is missing (HDFS refuses, the local file system creates
        it), and when ``dst`` is inside ``src``. Atomic only where ``supports_atomic_rename``;
        the checks and the rename are separate calls, so a concurrent writer needs a lock."""
        both = (src, dst)
        with _hadoop("rename", *both):
            src_fs = self._fs(src).makeQualified(self._path(src)).toUri()
            dst_fs = self._fs(dst).makeQualified(self._path(dst)).toUri()
            same = (src_fs.getScheme(), src_fs.getAuthority()) == (
                dst_fs.getScheme(),
                dst_fs.getAuthority(),
            )
        if not same:
            raise FileSystemError(f"rename {src} -> {dst}: not on the same file system")
        if not self.exists(src):
            raise FileSystemError(f"rename {src} -> {dst}: the source does not exist")
        if self.exists(dst):
            raise FileSystemError(f"rename {src} -> {dst}: the destination already exists")
        if contains(src, dst):
            raise FileSystemError(f"rename {src} -> {dst}: the destination is inside the source")
        if not self.is_dir(parent(dst)):
            raise FileSystemError(
                f"rename {src} -> {dst}: the destination's folder {parent(dst)} does not exist"
            )
        with _hadoop("rename", *both):
            moved = bool(self._fs(src).rename(self._path(src), self._path(dst)))
        if not moved:
            raise FileSystemError(f"rename {src} -> {dst}: Hadoop returned false")

    # -- contents ---------------------------------------------------------------------------

    def read_bytes(self, loc: str) -> bytes:
        """The whole file in driver memory: for small files (markers, manifests, leases)."""
        with _hadoop("read", loc):
            stream = self._fs(loc).open(self._path(loc))
            try:
                # in chunks: py4j carries a byte[] as one base64 string, which overflows a
                # Java array past about 1.5 GiB (a national buurt table is hundreds of MiB)
                parts = []
                while chunk := bytes(stream.readNBytes(CHUNK_BYTES)):
                    parts.append(chunk)
                return b"".join(parts)
            finally:
                stream.close()

    def write_bytes(self, loc: str, data: bytes, *, overwrite: bool = False) -> None:
        """Write ``data`` as file ``loc`` in one ``create()`` call (missing parent folders are
        created). Without ``overwrite`` an existing file is an error; that check is atomic on
        HDFS and the local file system, not on object stores."""
        payload = bytes(data)
        with _hadoop("write", loc):
            handle = self._fs(loc)
            # again here: viewfs makes its target file systems lazily, after the handle
            handle.setWriteChecksum(False)
            stream = handle.create(self._path(loc), overwrite)
            try:
                for start in range(0, len(payload), CHUNK_BYTES):  # see read_bytes
                    stream.write(payload[start : start + CHUNK_BYTES])
            finally:
                stream.close()  # object stores upload on close: its failure is the write's
        # a local file system behind viewfs keeps writing checksums whatever it was told:
        # the hidden .<name>.crc must not travel with export/ to partners
        crc = sibling(loc, f".{name(loc)}.crc")
        if scheme(loc) in ("", "file", "viewfs") and self.exists(crc):
            self.delete(crc, recursive=False)

    def read_text(self, loc: str) -> str:
        return self.read_bytes(loc).decode("utf-8")

    def write_text(self, loc: str, text: str, *, overwrite: bool = False) -> None:
        self.write_bytes(loc, text.encode("utf-8"), overwrite=overwrite)


# ---------------------------------------------------------------------------------------------
# Digests


_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _skipped(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def digest_of_bytes(file_name: str, data: bytes) -> str:
    """The ``DIGEST_SCHEME`` digest of one file named ``file_name`` holding ``data``: what
    :func:`digest` gives for that file, without reading it back."""
    return digest_of_lines([(file_name, hashlib.sha256(data).hexdigest())])


def digest_of_lines(pairs: list[tuple[str, str]]) -> str:
    """The ``DIGEST_SCHEME`` digest of (relative posix path, file sha256 hex) pairs.

    sha256 hex of the UTF-8 text made of one line ``"<path> <sha256>\\n"`` per file, the lines
    sorted as strings. A file's name, place and bytes all count; the order files were listed in
    does not.
    """
    lines = []
    seen = set()
    for rel, sha in pairs:
        if not rel or rel.startswith("/") or "\n" in rel or rel in seen:
            raise ValueError(f"digest: {rel!r} is not a unique relative path on one line")
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise ValueError(f"digest: {sha!r} for {rel} is not a sha256 hex digest")
        seen.add(rel)
        lines.append(f"{rel} {sha}\n")
    return hashlib.sha256("".join(sorted(lines)).encode("utf-8")).hexdigest()


def digest(spark: SparkSession, loc: str) -> str:
    """The ``DIGEST_SCHEME`` digest of the data files under ``loc`` (a file: of itself).

    Files and folders whose names start with ``.`` or ``_`` (``_SUCCESS``, ``.crc``,
    ``_temporary/``) are left out. Each file's sha256 is computed by Spark on the executors; only
    (path, sha256) pairs reach the driver, one short row per file. The file list comes from
    Hadoop on the driver (``FileSystem.walk``), because Spark's scan skips empty files; a file
    Spark and Hadoop do not agree on (written or removed meanwhile, or a ``*._COPYING_`` file,
    which Spark leaves out) is an error. Spark's ``binaryFile`` source reads a whole file into
    one row, so a single file larger than 2 GiB cannot be digested
    (``spark.sql.sources.binaryFile.maxLength``).
    """
    fs = FileSystem(spark)
    if _GLOB_CHARS.search(normalize(loc)):
        raise FileSystemError(f"digest {loc}: a location with glob characters cannot be read")
    single = bool(fs._required_status("digest", loc).isFile())
    listed = [(rel, size) for rel, size in fs.walk(loc) if single or not _skipped(rel)]
    root = fs.qualify(loc)  # binaryFile's `path` is qualified too: file:/..., viewfs://zt/...
    with _hadoop("digest", loc):
        rows = (
            spark.read.format("binaryFile")
            .option("recursiveFileLookup", "true")
            .option("ignoreCorruptFiles", "false")  # a session default must not drop a file
            .option("ignoreMissingFiles", "false")
            .load(root)
            .select("path", F.sha2(F.col("content"), 256).alias("sha256"))
            .collect()
        )
    hashed = {_relative(root, row["path"], name(loc)): row["sha256"] for row in rows}
    pairs, unhashed = [], []
    for rel, size in listed:
        if rel in hashed:
            pairs.append((rel, hashed.pop(rel)))
        elif size == 0:
            pairs.append((rel, _EMPTY_SHA256))
        else:
            unhashed.append(rel)
    stray = [rel for rel in hashed if single or not _skipped(rel)]
    if unhashed or stray:
        raise FileSystemError(
            f"digest {loc}: Hadoop and Spark listed different files (changed while digesting?):"
            f" {', '.join(sorted(unhashed + stray)[:5])}"
        )
    return digest_of_lines(pairs)
