"""The on-disk spool: requests for one run, kept in order until the server acknowledges them.

Layout of a spool directory (``<dir>/run-<id>/`` for an online run that lost the server,
``<dir>/offline-run-<id>/`` for an offline run)::

    run.json                          project, server URL, the run-create payload, progress flags
    batches/0000000001.ingest.pb.gz     exact body of one POST /api/v1/ingest, protobuf (gzip)
    batches/0000000002.ingest.json.gz   the same in JSON (older SDKs, or a server without protobuf)
    batches/0000000003.artifact.json.gz exact body of one POST /api/v1/runs/{id}/artifacts (gzip)
    batches/0000000004.patch.json.gz    exact body of one PATCH /api/v1/runs/{id} (gzip)
    artifacts/blobs/<sha256>          artifact file contents, content-addressed
    rejected/                         entries the server refused permanently (kept, never resent)
    synced                            marker: everything above was acknowledged and the run finished
    lock                              held (flock) by the process writing the spool

One sequence number orders every kind, so a replay repeats the requests exactly in the order the
run made them. The second extension is the body's encoding, so each entry replays with the content
type it was written with. Every file is written to a temporary name, fsynced and renamed, so a
crash never leaves a half-written entry behind, and an entry is deleted only after the server
acknowledged it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ._http import JSON
from ._proto import CONTENT_TYPE as PROTOBUF

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, sync just trusts the user
    fcntl = None  # type: ignore[assignment]

INGEST = "ingest"
ARTIFACT = "artifact"
PATCH = "patch"
KINDS = (INGEST, ARTIFACT, PATCH)

#: File name extension of each body encoding, and back.
_EXTENSIONS = {JSON: "json", PROTOBUF: "pb"}
_CONTENT_TYPES = {ext: ctype for ctype, ext in _EXTENSIONS.items()}

RUN_JSON = "run.json"
SYNCED = "synced"
CHUNK = 1 << 20


def spool_dir_name(run_id: str, offline: bool) -> str:
    return f"{'offline-run' if offline else 'run'}-{run_id}"


def is_spool_dir(path: Path) -> bool:
    return (path / RUN_JSON).is_file()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    _fsync_dir(path.parent)


def hash_file(path: Path) -> tuple[str, int]:
    """Streams ``path`` through sha256; returns (hex digest, size)."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def copy_hashed(src: Path, dst_dir: Path) -> tuple[str, int]:
    """Copies ``src`` into ``dst_dir/<sha256>`` while hashing it; returns (digest, size)."""
    h = hashlib.sha256()
    size = 0
    tmp = dst_dir / f".tmp-{os.getpid()}-{time.monotonic_ns()}"
    try:
        with src.open("rb") as fin, tmp.open("wb") as fout:
            while chunk := fin.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        digest = h.hexdigest()
        dst = dst_dir / digest
        if dst.exists():
            tmp.unlink()
        else:
            tmp.replace(dst)
        return digest, size
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


class SpoolBusy(OSError):
    """Another process holds the spool's lock."""


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str
    path: Path
    content_type: str = JSON

    def body(self) -> bytes:
        """The exact request body (decompressed), encoded as ``content_type`` says."""
        return gzip.decompress(self.path.read_bytes())

    def json(self) -> Any:
        return json.loads(self.body())


class Spool:
    """One run's spool directory. Not thread-safe: one writer thread owns it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.batches = self.path / "batches"
        self.blobs = self.path / "artifacts" / "blobs"
        self._lock_file: IO[bytes] | None = None
        self._next_seq: int | None = None

    # -- creation and metadata ------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, meta: dict[str, Any]) -> Spool:
        """Opens (or creates) the spool at ``path`` for writing and locks it; an existing
        ``run.json`` is kept (a resumed run appends to its earlier spool).

        Raises :class:`SpoolBusy` when another live process holds the spool.
        """
        spool = cls(path)
        spool.batches.mkdir(parents=True, exist_ok=True)
        spool.blobs.mkdir(parents=True, exist_ok=True)
        if not spool.lock(blocking=False):
            raise SpoolBusy(f"{path} is in use by another process")
        if not (spool.path / RUN_JSON).exists():
            spool.write_meta(meta)
        with contextlib.suppress(FileNotFoundError):
            (spool.path / SYNCED).unlink()
        return spool

    def read_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = json.loads((self.path / RUN_JSON).read_text("utf-8"))
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        _write_atomic(self.path / RUN_JSON, json.dumps(meta, indent=2, sort_keys=True).encode())

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = self.read_meta()
        meta.update(changes)
        self.write_meta(meta)
        return meta

    # -- locking --------------------------------------------------------------------------------

    def lock(self, blocking: bool = True) -> bool:
        """Takes the advisory lock that tells ``track sync`` a live process owns this spool."""
        if self._lock_file is not None:
            return True
        f = (self.path / "lock").open("ab")
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except OSError:
                f.close()
                return False
        self._lock_file = f
        return True

    def unlock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                if fcntl is not None:
                    fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # -- entries --------------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        """Pending entries, oldest first."""
        out: list[Entry] = []
        if not self.batches.is_dir():
            return out
        for p in self.batches.iterdir():
            parts = p.name.split(".")
            if (
                len(parts) == 4
                and parts[0].isdigit()
                and parts[1] in KINDS
                and parts[2] in _CONTENT_TYPES
                and parts[3] == "gz"
            ):
                out.append(Entry(int(parts[0]), parts[1], p, _CONTENT_TYPES[parts[2]]))
        out.sort(key=lambda e: e.seq)
        return out

    def pending_count(self) -> int:
        return len(self.entries())

    def _seq(self) -> int:
        if self._next_seq is None:
            highest = 0
            for d in (self.batches, self.path / "rejected"):
                if d.is_dir():
                    for p in d.iterdir():
                        head = p.name.split(".", 1)[0]
                        if head.isdigit():
                            highest = max(highest, int(head))
            self._next_seq = highest + 1
        seq = self._next_seq
        self._next_seq += 1
        return seq

    def append(self, kind: str, body: bytes, content_type: str = JSON) -> Entry:
        """Appends one request body (uncompressed) of the given kind and encoding."""
        assert kind in KINDS
        assert content_type in _EXTENSIONS
        self.batches.mkdir(parents=True, exist_ok=True)
        seq = self._seq()
        path = self.batches / f"{seq:010d}.{kind}.{_EXTENSIONS[content_type]}.gz"
        _write_atomic(path, gzip.compress(body, 1))
        with contextlib.suppress(FileNotFoundError):
            (self.path / SYNCED).unlink()
        return Entry(seq, kind, path, content_type)

    def add_blob(self, src: Path) -> tuple[str, int]:
        """Copies a file into the spool's blob store; returns its (digest, size) as copied."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        return copy_hashed(src, self.blobs)

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest

    def done(self, entry: Entry) -> None:
        """Deletes an acknowledged entry."""
        entry.path.unlink(missing_ok=True)

    def reject(self, entry: Entry) -> Path:
        """Moves a permanently refused entry aside so it is neither resent nor lost."""
        dest_dir = self.path / "rejected"
        dest_dir.mkdir(exist_ok=True)
        dest = dest_dir / entry.path.name
        entry.path.replace(dest)
        return dest

    # -- completion -----------------------------------------------------------------------------

    def is_synced(self) -> bool:
        return (self.path / SYNCED).exists()

    def mark_synced_if_complete(self) -> bool:
        """Writes the ``synced`` marker when nothing is pending and the run has finished.

        Blobs are deleted then: every manifest that referenced them has been acknowledged.
        """
        if self.entries():
            return False
        meta = self.read_meta()
        if not (meta.get("created") and meta.get("finished")):
            return False
        if self.blobs.is_dir():
            shutil.rmtree(self.blobs, ignore_errors=True)
        _write_atomic(
            self.path / SYNCED,
            json.dumps({"synced_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode(),
        )
        return True
