"""The daemon's callbacks as part of the compiled routing table (``litellm_settings.callbacks`` ...).

The config compiler loads them (:func:`load_callback_table`), so a reload that adds or removes one
takes effect with the table it belongs to, and a path that does not import is a config error at its
file:line:col: the reload fails and the old table keeps serving. LiteLLM's three lists keep their
meaning:

* ``callbacks``: every hook (pre-call, attempt tracing, success, failure);
* ``success_callback``: success hooks only;
* ``failure_callback``: failure hooks only.

``"otel"`` is tracing wherever it is listed (a span needs its start and its end); ``"prometheus"`` is
routerd's own metrics, not a callback. An entry with a dot is a ``module.instance`` path, imported
with the config file's directory first on ``sys.path`` as LiteLLM's proxy does; it must name a
:class:`~routerd.integrations.custom_logger.CustomLogger` instance or a function.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routerd.integrations.callbacks import resolve_callbacks
from routerd.integrations.custom_logger import CustomLogger

__all__ = ["BUILT_IN", "LISTS", "CallbackTable", "load_callback_table"]

#: names handled elsewhere (routerd's metrics), not callbacks to load
BUILT_IN = frozenset({"prometheus"})
#: the ``litellm_settings`` lists, in the order their entries are called
LISTS = ("callbacks", "success_callback", "failure_callback")

# sys.path is process-wide: two compiles (a reload in a thread, an SDK Router) must not interleave
_PATH_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class CallbackTable:
    """The loaded callbacks of one routing table: who hears of which event."""

    every: tuple[Any, ...] = ()  # litellm_settings.callbacks (and "otel" wherever it is listed)
    success: tuple[Any, ...] = ()  # callbacks, then success_callback
    failure: tuple[Any, ...] = ()  # callbacks, then failure_callback
    # litellm_settings.turn_off_message_logging: every logging hook gets copies without prompt/answer text
    redact: bool = False

    def __bool__(self) -> bool:
        return bool(self.success or self.failure)

    @property
    def loggers(self) -> tuple[CustomLogger, ...]:
        """The :class:`CustomLogger` s of ``callbacks``: their pre-call hooks and attempt tracers run."""
        return tuple(cb for cb in self.every if isinstance(cb, CustomLogger))

    @property
    def rewrites_requests(self) -> bool:
        """Whether a logger has its own ``async_pre_call_hook`` (which may change the request body)."""
        return any(
            type(logger).async_pre_call_hook is not CustomLogger.async_pre_call_hook
            for logger in self.loggers
        )

    @classmethod
    def of(
        cls, callbacks: Sequence[Any] = (), success: Sequence[Any] = (), failure: Sequence[Any] = ()
    ) -> CallbackTable:
        """A table from loaded callbacks, as the three lists give them."""
        every = tuple(callbacks)
        return cls(every, (*every, *success), (*every, *failure))


def load_callback_table(
    lists: Mapping[str, Sequence[tuple[str, tuple[str | int, ...]]]], config_dir: Path | None
) -> tuple[CallbackTable, list[tuple[tuple[str | int, ...], str]]]:
    """The callbacks ``lists`` name (list name -> ``(entry, YAML path)`` pairs), and the problems found
    (YAML path, message): every entry that does not load, so the compiler reports them at their place."""
    loaded: dict[str, list[Any]] = {name: [] for name in LISTS}
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for list_name in LISTS:
        for entry, path in lists.get(list_name, ()):
            if entry in BUILT_IN:
                continue
            try:
                callbacks = resolve_callbacks([entry]) if "." not in entry else [_import(entry, config_dir)]
            except Exception as exc:
                problems.append((path, f"cannot load callback {entry!r}: {type(exc).__name__}: {exc}"))
                continue
            # tracing needs a span's start and end: "otel" hears of everything wherever it is listed
            target = "callbacks" if entry == "otel" else list_name
            loaded[target].extend(callbacks)
    table = CallbackTable.of(
        _unique(loaded["callbacks"]), _unique(loaded["success_callback"]), _unique(loaded["failure_callback"])
    )
    return table, problems


def _unique(callbacks: list[Any]) -> list[Any]:
    out: list[Any] = []
    for callback in callbacks:
        if not any(callback is seen for seen in out):
            out.append(callback)
    return out


def _import(path: str, config_dir: Path | None) -> Any:
    module_name, _, attribute = path.rpartition(".")
    with _PATH_LOCK:
        added = config_dir is not None and str(config_dir) not in sys.path
        if added:
            sys.path.insert(0, str(config_dir))
        try:
            importlib.invalidate_caches()  # a module file added since the last import (a reload) is found
            module = importlib.import_module(module_name)
        finally:
            if added:
                sys.path.remove(str(config_dir))
    target = getattr(module, attribute)
    if not (isinstance(target, CustomLogger) or callable(target)):
        raise TypeError(f"{path} is neither a CustomLogger instance nor a function")
    return target
