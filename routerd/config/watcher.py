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

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import anyio
import watchfiles

from routerd.config.files import DEFAULT_MAX_BYTES, UnreadableConfig, read_config_bytes

log = logging.getLogger("routerd.reload")


def fingerprint(paths: Iterable[Path], max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """A digest of the contents of ``paths`` (following symlinks).

    A file that cannot be read counts by the reason (missing, not a regular file, too large: then by
    its size and modification time too), so turning into one of those is a change the reload reports.
    """
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(read_config_bytes(path, max_bytes))
        except UnreadableConfig as exc:
            digest.update(f"\0unreadable: {exc.reason} {_stat_key(path)}".encode())
    return digest.hexdigest()


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


async def changes(
    get_paths: Callable[[], list[Path]],
    *,
    debounce_ms: int = 50,
    stop_event: anyio.Event | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> AsyncIterator[None]:
    """Yield once per real content change of the files ``get_paths()`` names.

    ``get_paths`` is asked again after every change, because a reload may add or drop includes.
    """
    paths = get_paths()
    last = await fingerprint_in_thread(paths, max_bytes)
    while stop_event is None or not stop_event.is_set():
        dirs = watch_dirs(paths)
        if not dirs:
            log.warning("none of the directories of %s exist; not watching", [str(p) for p in paths])
            return
        restart = False
        async for _ in watchfiles.awatch(
            *dirs,
            debounce=max(debounce_ms, 1),
            step=10,
            stop_event=stop_event,
            recursive=False,
            ignore_permission_denied=True,
        ):
            now = await fingerprint_in_thread(paths, max_bytes)
            if now == last:
                continue
            last = now
            yield
            new_paths = get_paths()
            if new_paths != paths:
                # the set of includes changed: watch the new set of directories
                paths, last, restart = new_paths, await fingerprint_in_thread(new_paths, max_bytes), True
                break
        if not restart:
            return
