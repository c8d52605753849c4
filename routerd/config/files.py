"""Reading routing files without trusting what sits at their paths.

A path can hold a FIFO (opening it for reading blocks until a writer appears, forever if none does), a
device, or a file far larger than any routing file. Every read of a routing file or an include goes
through :func:`read_config_bytes`: it opens without blocking, refuses anything but a regular file, and
refuses files over a size bound before reading them (and stops reading at the bound if the file grows
while it is read). The bounds live in :class:`LoadLimits`; the daemon's come from its settings.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

#: Default largest routing file (and each include), in bytes: 32 MiB. A file with 35,000 deployments
#: is about 10 MiB. Setting: ``config_max_bytes`` (``ROUTERD_CONFIG_MAX_BYTES``).
DEFAULT_MAX_BYTES = 32 * 1024 * 1024

#: Default most YAML nodes one file may produce by expanding aliases (``*name``) beyond the first use
#: of each anchor. A 544-byte file of nine nested aliases expands to billions of nodes; legitimate
#: anchors for shared ``litellm_params`` stay in the thousands. Setting: ``config_max_alias_nodes``
#: (``ROUTERD_CONFIG_MAX_ALIAS_NODES``).
DEFAULT_MAX_ALIAS_NODES = 100_000

#: Deepest nesting of mappings and sequences accepted (a documented constant, not a setting): a
#: routing file nests about six levels; YAML nested thousands deep exhausts the parser's stack.
MAX_DEPTH = 64


class UnreadableConfig(OSError):
    """A routing file that cannot be read; ``reason`` says why in words fit for a config error."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LoadLimits:
    """The bounds the loader enforces on one routing file and its includes."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_alias_nodes: int = DEFAULT_MAX_ALIAS_NODES


def read_config_bytes(path: Path, max_bytes: int) -> bytes:
    """The contents of the regular file at ``path`` (symlinks followed), at most ``max_bytes`` long.

    Raises :class:`UnreadableConfig` for a missing or unreadable path, anything that is not a regular
    file (without blocking on a FIFO), and a file larger than ``max_bytes``.
    """
    try:
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; on a regular file
        # it changes nothing
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UnreadableConfig(exc.strerror or str(exc)) from exc
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableConfig("not a regular file")
        if info.st_size > max_bytes:
            raise UnreadableConfig(_too_large(info.st_size, max_bytes))
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnreadableConfig(_too_large(len(data), max_bytes))
    return data


def _too_large(size: int, max_bytes: int) -> str:
    return (
        f"the file is larger than {max_bytes} bytes ({size} bytes or more); "
        "raise config_max_bytes (ROUTERD_CONFIG_MAX_BYTES) if it is meant to be this large"
    )
