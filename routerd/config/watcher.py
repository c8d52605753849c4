"""Watching the routing file (and its includes) for changes, the ways files really change.

Editors write a temp file and rename it over the original; ``cp``/``mv`` replace it; Kubernetes
ConfigMap volumes swap a ``..data`` symlink so the file's *target* changes while its path does not.
Watching the file's inode misses the first and the last, so this watches the *directories* the files
live in and, on any event there, compares a fingerprint of the files' resolved contents. Only a real
content change triggers a reload; bursts of events are debounced into one.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import anyio
import watchfiles

log = logging.getLogger("routerd.reload")


def fingerprint(paths: Iterable[Path]) -> str:
    """A digest of the contents of ``paths`` (following symlinks); a missing file counts as empty."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path).encode())
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0missing")
    return digest.hexdigest()


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
) -> AsyncIterator[None]:
    """Yield once per real content change of the files ``get_paths()`` names.

    ``get_paths`` is asked again after every change, because a reload may add or drop includes.
    """
    paths = get_paths()
    last = fingerprint(paths)
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
            now = fingerprint(paths)
            if now == last:
                continue
            last = now
            yield
            new_paths = get_paths()
            if new_paths != paths:
                # the set of includes changed: watch the new set of directories
                paths, last, restart = new_paths, fingerprint(new_paths), True
                break
        if not restart:
            return
