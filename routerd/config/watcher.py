"""Watching the routing file (and its includes) for changes, the ways files really change.

Editors write a temp file and rename it over the original; ``cp``/``mv`` replace it; Kubernetes
ConfigMap volumes swap a ``..data`` symlink so the file's *target* changes while its path does not.
Watching the file's inode misses the first and the last, so this watches the *directories* the files
live in and, on any event there, compares a fingerprint of the files' resolved contents. Only a real
content change triggers a reload; bursts of events are debounced into one.

The files are read in a worker thread, never on the event loop, and through
:func:`~routerd.config.files.read_config_bytes`, which refuses a FIFO or device without blocking on it
and does not read past the size bound.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import anyio
import watchfiles

from routerd.config.files import DEFAULT_MAX_BYTES, LoadLimits
from routerd.config.loader import current_fingerprint

log = logging.getLogger("routerd.reload")


def fingerprint(paths: Iterable[Path], max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """A digest of the contents of ``paths`` (following symlinks) and of the environment.

    It is the loader's :func:`~routerd.config.loader.source_fingerprint`, so it equals the serving
    table's ``source_fingerprint`` while the files are those the table was loaded from. When a file
    cannot be read (missing, not a regular file, too large) it is a digest of the paths and their
    stat instead, so turning into one of those is a change the reload reports.
    """
    paths = list(paths)
    found = current_fingerprint([str(p) for p in paths], os.environ, LoadLimits(max_bytes=max_bytes))
    if found is not None:
        return found
    digest = hashlib.sha256()
    for path in paths:
        digest.update(f"{path}\0{_stat_key(path)}\0".encode())
    return "unreadable:" + digest.hexdigest()


def _stat_key(path: Path) -> str:
    try:
        info = path.stat()
    except OSError:
        return "missing"
    return f"{info.st_mode:o}/{info.st_size}/{info.st_mtime_ns}"


async def fingerprint_in_thread(paths: list[Path], max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """:func:`fingerprint` computed in a worker thread, so the event loop keeps serving meanwhile."""
    return await anyio.to_thread.run_sync(fingerprint, paths, max_bytes)


def watch_dirs(paths: Iterable[Path]) -> list[Path]:
    """The directories to watch for ``paths``, symlink targets' directories included."""
    dirs: set[Path] = set()
    for path in paths:
        dirs.add(path.absolute().parent)
        try:
            dirs.add(path.resolve().parent)
        except OSError:
            pass
    return sorted(d for d in dirs if d.exists())


#: How long the watcher waits, once watching, before comparing the files with what is served
#: (milliseconds): a change written after the table was loaded but before the watcher was set up
#: raises no event, and is caught by that comparison.
CATCH_UP_MS = 500


async def changes(
    get_paths: Callable[[], list[Path]],
    *,
    debounce_ms: int = 50,
    stop_event: asyncio.Event | anyio.Event | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    served: str | None = None,
) -> AsyncIterator[None]:
    """Yield once per real content change of the files ``get_paths()`` names.

    ``served`` is the fingerprint of what is being served (the table's ``source_fingerprint``); the
    files are compared with it once the watcher is up, so a change made before that is not missed.
    ``get_paths`` is asked again after every change, because a reload may add or drop includes.
    """
    paths = get_paths()
    last = served or await fingerprint_in_thread(paths, max_bytes)
    caught_up = False
    while stop_event is None or not stop_event.is_set():
        dirs = watch_dirs(paths)
        if not dirs:
            log.warning("none of the directories of %s exist; not watching", [str(p) for p in paths])
            return
        restart = False
        async for events in watchfiles.awatch(
            *dirs,
            debounce=max(debounce_ms, 1),
            step=10,
            stop_event=stop_event,
            recursive=False,
            ignore_permission_denied=True,
            rust_timeout=CATCH_UP_MS,
            yield_on_timeout=True,
        ):
            if not events:
                if caught_up:
                    continue  # a quiet period: nothing to compare
                caught_up = True
            now = await fingerprint_in_thread(paths, max_bytes)
            if now == last:
                continue
            last = now
            yield
            new_paths = get_paths()
            if new_paths != paths:
                # the set of includes changed: watch the new set of directories
                paths, last, restart = new_paths, await fingerprint_in_thread(new_paths, max_bytes), True
                caught_up = False  # the new watcher compares once it is up, as the first did
                break
        if not restart:
            return
