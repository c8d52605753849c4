"""A cache of the code ``routerd serve`` generates and compiles at every start, kept between starts.

Python 3.11's dataclasses write each class's ``__init__``, ``__repr__``, ``__eq__``, ``__hash__`` and (for
frozen classes) ``__setattr__``/``__delattr__`` as source text and ``exec`` it, and ``typing.ForwardRef``
compiles every annotation written as a string (pydantic-core's hundreds of ``TypedDict`` fields,
pydantic's models under ``from __future__ import annotations``). ``routerd serve`` makes ~140
dataclasses and ~1,000 forward references before it is ready: parsing and compiling them was about a
third of the instructions it spent to get ready (docs/performance.md). Python caches the bytecode of
modules, not of this generated code.

While a :class:`CodeCache` is installed (:func:`startup_code_cache`: ``routerd serve`` until just
before it serves, ``routerd check``), the ``exec`` dataclasses calls and the ``compile`` typing calls
look the text up first: a text compiled on an earlier start runs as the code object compiled then,
read from one file beside routerd's bytecode; any other text is compiled as they would compile it
(file name ``<string>``, no flags inherited from the caller) and the file is rewritten when the cache
is closed.

Nothing else changes: the file is keyed by the texts themselves (and their mode) and by Python's
bytecode magic number and optimisation level, so a code object is only ever the one its text
compiles to; a missing, unreadable, foreign or oversized file is ignored; a directory that cannot be
written is left alone, and ``PYTHONDONTWRITEBYTECODE`` turns writing off, as it does for bytecode.
The file is as trusted as the ``.pyc`` files beside it. Only the daemon's command line installs the
cache: a program that imports routerd as a library never has its dataclasses or typing touched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import marshal
import os
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from types import CodeType
from typing import Any

__all__ = ["MAX_CACHE_BYTES", "CodeCache", "active", "default_path", "finish_startup", "startup_code_cache"]

log = logging.getLogger("routerd.codecache")

#: Largest cache file read or written, in bytes (one start of ``routerd serve`` writes ~0.8 MB). A
#: larger file is ignored; when keeping earlier entries would pass it, only this start's are written.
MAX_CACHE_BYTES = 8 * 1024 * 1024

# the builtins, whatever the dataclasses and typing modules are given meanwhile
_EXEC = exec
_COMPILE = compile

Key = tuple[str, str]  # (compile mode, source text)


def default_path() -> Path | None:
    """Where the cache lives: beside the bytecode of routerd's own modules (which honours
    ``PYTHONPYCACHEPREFIX``), named for this Python; None when this Python caches no bytecode."""
    tag = sys.implementation.cache_tag
    if not tag:  # None where bytecode is not cached at all
        return None
    return Path(importlib.util.cache_from_source(__file__)).with_name(f"startup-code.{tag}.bin")


def _header() -> tuple[bytes, int]:
    return importlib.util.MAGIC_NUMBER, sys.flags.optimize


class CodeCache:
    """Code objects of the texts dataclasses execute, read from and written to ``path``."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.known: dict[Key, CodeType] = self._read(path) if path is not None else {}
        self.used: dict[Key, CodeType] = {}
        self.compiled = 0  # texts compiled here (not in the file)
        self.reused = 0  # texts whose code came from the file

    @staticmethod
    def _read(path: Path) -> dict[Key, CodeType]:
        try:
            if path.stat().st_size > MAX_CACHE_BYTES:
                return {}
            data = marshal.loads(path.read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            return {}
        if not (isinstance(data, tuple) and len(data) == 2 and data[0] == _header()):
            return {}  # another Python, another optimisation level, or not this file's shape
        entries = data[1]
        if not isinstance(entries, dict):
            return {}
        return {
            k: v
            for k, v in entries.items()
            if isinstance(k, tuple)
            and len(k) == 2
            and all(isinstance(p, str) for p in k)
            and isinstance(v, CodeType)
        }

    def code(self, source: str, mode: str) -> CodeType:
        """The code object of ``source`` compiled in ``mode`` (from the file when it is there)."""
        key = (mode, source)
        code = self.known.get(key)
        if code is None:
            # what exec(source) and typing's compile(source, "<string>", mode) make: their modules
            # have no __future__ imports, so none of this module's flags (dont_inherit)
            code = _COMPILE(source, "<string>", mode, dont_inherit=True)
            self.compiled += 1
        else:
            self.reused += 1
        self.used[key] = code
        return code

    def exec(self, source: Any, /, *args: Any, **kwargs: Any) -> None:
        """``exec`` as dataclasses calls it, with the compiled code of a known text."""
        _EXEC(self.code(source, "exec") if type(source) is str else source, *args, **kwargs)

    def compile(
        self,
        source: Any,
        filename: Any,
        mode: str,
        flags: int = 0,
        dont_inherit: bool = False,
        optimize: int = -1,
    ) -> Any:
        """``compile`` as typing calls it (a forward reference), with the code of a known text."""
        if type(source) is str and filename == "<string>" and mode == "eval" and not flags and optimize == -1:
            return self.code(source, mode)  # a SyntaxError is raised, and nothing kept, as before
        return _COMPILE(source, filename, mode, flags, True, optimize)

    def save(self) -> bool:
        """Write the file when this start compiled something; True when it was written."""
        if self.path is None or not self.compiled or sys.dont_write_bytecode:
            return False
        blob = marshal.dumps((_header(), {**self.known, **self.used}))
        if len(blob) > MAX_CACHE_BYTES:  # earlier starts' entries make it too big: keep only this one's
            blob = marshal.dumps((_header(), self.used))
            if len(blob) > MAX_CACHE_BYTES:
                return False
        try:
            import tempfile

            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a whole file or none: another process may be reading it, or writing its own
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
            try:
                # readable as the bytecode beside it is (importlib gives a .pyc its source's mode)
                os.fchmod(handle, (os.stat(__file__).st_mode & 0o777) | 0o200)
                with os.fdopen(handle, "wb") as out:
                    out.write(blob)
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as exc:  # a read-only installation: start-up compiles, as without the cache
            log.debug("dataclass code cache not written to %s: %s", self.path, exc)
            return False
        return True


_active: CodeCache | None = None
_HOOKED = ((dataclasses, "exec"), (typing, "compile"))
_MISSING = object()
_previous: list[Any] = []  # what each hooked name was before the hooks (normally nothing)


def _install(cache: CodeCache) -> None:
    global _active
    # both modules look ``exec`` / ``compile`` up as globals of their own before the builtins: the one
    # hook there is
    _previous[:] = [vars(module).get(name, _MISSING) for module, name in _HOOKED]
    vars(dataclasses)["exec"] = cache.exec
    vars(typing)["compile"] = cache.compile
    _active = cache


def _uninstall(cache: CodeCache) -> None:
    hooks = (cache.exec, cache.compile)
    for (module, name), hook, previous in zip(_HOOKED, hooks, _previous, strict=True):
        if vars(module).get(name) != hook:
            continue  # replaced by someone else meanwhile: theirs stays
        if previous is _MISSING:
            del vars(module)[name]
        else:
            vars(module)[name] = previous


def active() -> CodeCache | None:
    """The installed cache, or None."""
    return _active


def finish_startup() -> CodeCache | None:
    """Remove the installed cache (if any) from dataclasses and typing and save it; returns it.

    ``routerd serve`` calls this once start-up is over (routerd.server.run.collect_from_here): code
    generated while serving (a lazily imported route module) is compiled as usual."""
    global _active
    cache, _active = _active, None
    if cache is None:
        return None
    _uninstall(cache)
    cache.save()
    return cache


@contextlib.contextmanager
def startup_code_cache(path: Path | None = None) -> Iterator[CodeCache]:
    """Install a :class:`CodeCache` on ``path`` (default: :func:`default_path`) for the block; it is
    finished (removed and saved) when the block ends, if :func:`finish_startup` did not do it first."""
    cache = CodeCache(path if path is not None else default_path())
    if _active is not None:  # nested (a test calling the CLI in-process): the outer one stays
        yield cache
        return
    _install(cache)
    try:
        yield cache
    finally:
        if active() is cache:
            finish_startup()
