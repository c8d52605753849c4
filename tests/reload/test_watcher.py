"""The watcher's fingerprint sees real content changes however the file was replaced."""

from __future__ import annotations

import os
from pathlib import Path

import anyio

from routerd.config.watcher import changes, fingerprint, watch_dirs


def test_fingerprint_changes_with_content_not_with_touch(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("a: 1\n")
    before = fingerprint([f])
    os.utime(f, (1, 1))
    assert fingerprint([f]) == before
    f.write_text("a: 2\n")
    assert fingerprint([f]) != before


def test_rename_over_the_file_is_seen(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("a: 1\n")
    before = fingerprint([f])
    tmp = tmp_path / ".c.yaml.swp"
    tmp.write_text("a: 3\n")
    tmp.replace(f)  # what editors do
    assert fingerprint([f]) != before


def test_configmap_symlink_swap_is_seen_and_both_dirs_watched(tmp_path: Path) -> None:
    # Kubernetes: config.yaml -> ..data/config.yaml, ..data -> ..2024_01_01 (swapped atomically)
    v1, v2 = tmp_path / "..v1", tmp_path / "..v2"
    v1.mkdir()
    v2.mkdir()
    (v1 / "config.yaml").write_text("a: 1\n")
    (v2 / "config.yaml").write_text("a: 2\n")
    (tmp_path / "..data").symlink_to(v1.name)
    link = tmp_path / "config.yaml"
    link.symlink_to("..data/config.yaml")
    before = fingerprint([link])
    tmp_link = tmp_path / "..data_tmp"
    tmp_link.symlink_to(v2.name)
    tmp_link.replace(tmp_path / "..data")
    assert fingerprint([link]) != before
    assert tmp_path in watch_dirs([link])


def test_missing_file_has_a_fingerprint(tmp_path: Path) -> None:
    missing = tmp_path / "gone.yaml"
    assert fingerprint([missing]) == fingerprint([missing])
    missing.write_text("x: 1\n")
    assert fingerprint([missing]) != fingerprint([tmp_path / "other.yaml"])


async def test_a_change_made_before_the_watcher_was_up_is_caught(tmp_path: Path) -> None:
    # the daemon loads the file, then starts watching: a write in between raises no file event, so the
    # watcher compares the files with what is served (the table's fingerprint) once it is up
    f = tmp_path / "c.yaml"
    f.write_text("a: 1\n")
    served = fingerprint([f])
    f.write_text("a: 2\n")  # "before the watcher was up"
    stop = anyio.Event()
    with anyio.fail_after(30):  # a guard against hanging, not a timing assertion
        async for _ in changes(lambda: [f], served=served, stop_event=stop):
            break
    stop.set()
    assert fingerprint([f]) != served
