"""The hashes of unchanged export files come from the state folder's cache; any change to a
file, even one that keeps its size and modification time, has it hashed again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ews.pseudonym import CPR_LIKE
from pipelines.file_hashes import CACHE_FILE, file_hashes
from pipelines.readers import file_sha256

#: A file's last change long enough ago to be trusted, in nanoseconds before now.
AN_HOUR_NS = 3600 * 10**9


class CountingHasher:
    """``file_sha256`` that records the files it read."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def __call__(self, path: Path) -> str:
        self.read.append(path.name)
        return file_sha256(path)


@pytest.fixture
def exports(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "inbox"
    folder.mkdir()
    paths = []
    for name, text in (("elever_2024-25.csv", "CPR;Navn\n"), ("fravaer_2024-25.csv", "CPR;Sygdom\n1;2\n")):
        path = folder / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def hashes(paths: list[Path], cache: Path, margin: int = 0) -> tuple[dict[Path, str], list[str]]:
    hasher = CountingHasher()
    return file_hashes(paths, cache, hasher=hasher, race_margin_ns=margin), hasher.read


def test_an_unchanged_file_is_not_read_again(exports: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / "state" / CACHE_FILE
    first, read = hashes(exports, cache)
    assert read == [p.name for p in exports]
    assert first == {p: file_sha256(p) for p in exports}
    second, read = hashes(exports, cache)
    assert read == [] and second == first
    stored = json.loads(cache.read_text(encoding="utf-8"))
    assert sorted(entry["name"] for entry in stored["files"].values()) == [p.name for p in exports]
    assert "CPR" not in cache.read_text(encoding="utf-8")  # names and hashes only


def test_a_file_rewritten_with_its_old_size_and_time_is_hashed_again(exports: list[Path],
                                                                    tmp_path: Path) -> None:
    cache = tmp_path / CACHE_FILE
    hashes(exports, cache)
    path = exports[1]
    old = os.stat(path)
    path.write_text("CPR;Sygdom\n1;3\n", encoding="utf-8")  # same size
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))  # the old modification time, as cp -p gives
    assert os.stat(path).st_size == old.st_size and os.stat(path).st_mtime_ns == old.st_mtime_ns
    again, read = hashes(exports, cache)
    assert read == [path.name]
    assert again[path] == file_sha256(path) != file_sha256(exports[0])


def test_a_file_replaced_by_another_is_hashed_again(exports: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / CACHE_FILE
    hashes(exports, cache)
    path = exports[1]
    replacement = path.with_suffix(".new")
    replacement.write_bytes(path.read_bytes().replace(b"2", b"4"))
    os.replace(replacement, path)  # a new inode under the same name
    again, read = hashes(exports, cache)
    assert read == [path.name] and again[path] == file_sha256(path)


def test_a_file_changed_just_before_the_hashing_is_not_kept(exports: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / CACHE_FILE
    # written a moment ago: within the margin, a second write could keep every value the same
    _, read = hashes(exports, cache, margin=AN_HOUR_NS)
    assert read == [p.name for p in exports]
    _, read = hashes(exports, cache, margin=AN_HOUR_NS)
    assert read == [p.name for p in exports]
    assert not cache.exists()  # nothing was worth keeping


def test_a_removed_file_leaves_the_cache(exports: list[Path], tmp_path: Path) -> None:
    cache = tmp_path / CACHE_FILE
    hashes(exports, cache)
    exports[0].unlink()
    _, read = hashes(exports[1:], cache)
    assert read == []
    assert [e["name"] for e in json.loads(cache.read_text(encoding="utf-8"))["files"].values()] == [exports[1].name]


@pytest.mark.parametrize("text", ["not json", json.dumps({"version": 0, "files": {}}),
                                  json.dumps({"version": 1, "files": []})])
def test_a_cache_that_cannot_be_used_is_ignored(exports: list[Path], tmp_path: Path, text: str) -> None:
    cache = tmp_path / CACHE_FILE
    cache.write_text(text, encoding="utf-8")
    result, read = hashes(exports, cache)
    assert read == [p.name for p in exports] and result == {p: file_sha256(p) for p in exports}
    _, read = hashes(exports, cache)
    assert read == []  # and a good one replaced it


def test_a_wrong_hash_in_the_cache_is_only_used_while_the_file_is_unchanged(exports: list[Path],
                                                                          tmp_path: Path) -> None:
    # the cache is trusted for unchanged files (it lives in the state folder, as the warehouse
    # does); a change to the file is what makes it hash again
    cache = tmp_path / CACHE_FILE
    hashes(exports, cache)
    document = json.loads(cache.read_text(encoding="utf-8"))
    (entry,) = [e for e in document["files"].values() if e["name"] == exports[0].name]
    entry["sha256"] = "0" * 64
    cache.write_text(json.dumps(document), encoding="utf-8")
    result, _ = hashes(exports, cache)
    assert result[exports[0]] == "0" * 64
    exports[0].write_text("CPR;Navn\n2;x\n", encoding="utf-8")
    result, read = hashes(exports, cache)
    assert read == [exports[0].name] and result[exports[0]] == file_sha256(exports[0])


def test_a_hard_link_of_a_hashed_file_in_another_folder_is_not_read_again(exports: list[Path],
                                                                        tmp_path: Path) -> None:
    cache = tmp_path / CACHE_FILE
    folder = tmp_path / "next-term"
    folder.mkdir()
    linked = folder / exports[0].name
    os.link(exports[0], linked)  # before the hashing: a new link changes the file's status-change time
    hashes(exports, cache)
    copied = folder / exports[1].name
    copied.write_bytes(exports[1].read_bytes())
    result, read = hashes([linked, copied], cache)
    assert read == [copied.name]
    assert result == {linked: file_sha256(exports[0]), copied: file_sha256(exports[1])}


def test_nothing_in_the_cache_reads_as_a_cpr_number(tmp_path: Path) -> None:
    # a national absence export has ten digits of bytes (1.4 GB); inodes and devices can too
    big = tmp_path / "fravaer_2024-25.csv"
    with open(big, "wb") as handle:
        handle.truncate(1_400_000_000)  # sparse: no disk, and the hasher below reads nothing
    old = os.stat(big)
    os.utime(big, ns=(old.st_atime_ns, old.st_mtime_ns - AN_HOUR_NS))
    cache = tmp_path / CACHE_FILE
    result = file_hashes([big], cache, hasher=lambda _path: "ab" * 32, race_margin_ns=0)
    assert result == {big: "ab" * 32}
    text = cache.read_text(encoding="utf-8")
    assert "fravaer_2024-25.csv" in text and not CPR_LIKE.findall(text), text
    assert str(os.stat(big).st_size) not in text and str(os.stat(big).st_ino) not in text
