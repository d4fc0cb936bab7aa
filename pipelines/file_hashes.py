"""The SHA-256 of every export file, without reading again the files that did not change.

A run names its data by the hashes of its input files (the run id, the data snapshot, which
files the ingest reads again). Hashing means reading every byte: 18 GiB of exports at national
size, 37 s in the national bench (docs/benchmarks.md), every term, although only the current
school year's files change. The hashes are therefore kept in a small cache in the
state folder (``file_hashes.json``), each with what the file system says about the file when
it was hashed: device, inode, size, and the modification and status-change times in
nanoseconds. A file whose five values are all the same is taken to have the same bytes, under
whatever name or folder it is found (making a new hard link changes the status-change time, so
the file is hashed once more, and then found under either name). Any write changes a file's
status-change time (``st_ctime``), which no ordinary tool can set back, so a file rewritten in
place and given its old modification time is still hashed again.

One case is not covered by the times: a file written again within its file system's timestamp
granularity (2 s on FAT, about 1 s on some network shares) after it was hashed could keep all
five values. As git does for its index, a hash is therefore only kept when the file's last
change was at least :data:`RACE_MARGIN_NS` before the hashing began; a file changed just before
a run is hashed again by the next one. A cache that cannot be read is ignored.

The cache holds file names and hashes only: the five values are kept as one digest
written in letters, never as numbers, because a size, inode or device number of ten digits (a
1.4 GB export) would read as a CPR number to every check that looks for one.

The status-change time is only as good as the file system's. FAT and exFAT, sshfs and some SMB
servers report or let a client set another time in its place, and an NFS client may answer
from attributes cached up to about a minute before; on such an inbox, and on one whose
server's clock may run more than two seconds behind the runner's, turn the cache off
(``EWS_FILE_HASH_CACHE=false``) and every file is hashed on every run, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from ews.pseudonym import hex_as_letters
from pipelines.readers import file_sha256

log = logging.getLogger(__name__)

#: The cache's file in the state folder.
CACHE_FILE = "file_hashes.json"
#: The cache's format; a cache of another format is ignored.
CACHE_VERSION = 2
#: How long before the hashing a file must have last changed for its hash to be kept.
RACE_MARGIN_NS = 2_000_000_000


def _digest(*values: int) -> str:
    """Numbers as one digest in letters: nothing in the cache reads as a CPR number."""
    return hex_as_letters(hashlib.sha256(":".join(map(str, values)).encode()).hexdigest()[:24])


def _file_key(stat: os.stat_result) -> str:
    """The file, under any of its names: its device and inode."""
    return _digest(stat.st_dev, stat.st_ino)


def _state(stat: os.stat_result) -> str:
    """What must be unchanged for the file's hash to stand: device, inode, size and both times."""
    return _digest(stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)


def _read_cache(path: Path) -> dict[str, dict]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s: not read (%s); every file is hashed again", path, exc)
        return {}
    if not isinstance(document, dict) or document.get("version") != CACHE_VERSION or not isinstance(
            document.get("files"), dict):
        log.warning("%s: not a file hash cache of version %s; every file is hashed again", path, CACHE_VERSION)
        return {}
    return document["files"]


def _write_cache(path: Path, files: dict[str, dict]) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"version": CACHE_VERSION, "files": files}, indent=1, sort_keys=True),
                           encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:  # a cache that cannot be written only costs the next run the hashing
        log.warning("%s: not written (%s)", path, exc)
        partial.unlink(missing_ok=True)


def file_hashes(paths: Iterable[Path], cache: Path | None,
                hasher: Callable[[Path], str] = file_sha256,
                race_margin_ns: int = RACE_MARGIN_NS) -> dict[Path, str]:
    """The SHA-256 of each file, from the cache when the file is unchanged since it was hashed.

    Args:
        paths: The files.
        cache: The cache file; None: hash every file, keep nothing.
        hasher: Hashes one file (``pipelines.readers.file_sha256``).
        race_margin_ns: See :data:`RACE_MARGIN_NS`.

    Returns:
        Path -> SHA-256 in hex, for every path, in the order given.
    """
    paths = list(paths)
    known = _read_cache(cache) if cache is not None else {}
    kept: dict[str, dict] = {}
    hashes: dict[Path, str] = {}
    for path in paths:
        stat = os.stat(path)
        name, before = _file_key(stat), _state(stat)
        entry = known.get(name)
        if isinstance(entry, dict) and entry.get("state") == before and isinstance(entry.get("sha256"), str):
            hashes[path] = entry["sha256"]
            kept[name] = entry
            continue
        started = time.time_ns()
        digest = hasher(path)
        hashes[path] = digest
        after = os.stat(path)
        settled = max(after.st_mtime_ns, after.st_ctime_ns) <= started - race_margin_ns
        if _state(after) == before and settled:
            kept[name] = {"state": before, "sha256": digest, "name": Path(path).name}
    if cache is not None and kept != known:
        _write_cache(cache, kept)
    return hashes
