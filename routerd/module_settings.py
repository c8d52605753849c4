"""Module-level settings (``routerd.api_key = ...``), read at call time as LiteLLM reads its own.

Porting code sets attributes on the package: ``routerd.api_key``, ``routerd.api_base``,
``routerd.num_retries``, ``routerd.drop_params``, ``routerd.success_callback = [fn]`` ... Their
defaults live in :data:`DEFAULTS` and are installed on the ``routerd`` package at import; every call
reads the current value through :func:`setting`, so a value assigned after the first call applies to
the next one. An explicit argument of the call always wins over the module setting.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULTS",
    "LIST_SETTINGS",
    "RAW_LOGGING_REFUSED",
    "apply_verbose",
    "install_defaults",
    "refuse_raw_logging",
    "setting",
]

#: settings whose default is a fresh list (users ``append`` to them, as LiteLLM's docs do)
LIST_SETTINGS = ("success_callback", "failure_callback", "callbacks", "input_callback")

#: every module setting and its default; lists are created per install (never shared)
DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "api_key": None,
        "api_base": None,
        "api_version": None,
        "organization": None,
        "num_retries": None,
        "request_timeout": None,
        "drop_params": False,
        "modify_params": False,
        "set_verbose": False,
        "model_alias_map": {},
        "cache": None,
        "turn_off_message_logging": False,
        "log_raw_request_response": False,
    }
)


def install_defaults(module: Any) -> None:
    """Give ``module`` (the ``routerd`` package) every setting it does not have yet."""
    for name, value in DEFAULTS.items():
        if not hasattr(module, name):
            setattr(module, name, dict(value) if isinstance(value, dict) else value)
    for name in LIST_SETTINGS:
        if not hasattr(module, name):
            setattr(module, name, [])


def setting(name: str) -> Any:
    """The current value of ``routerd.<name>`` (its default when the package is not imported)."""
    module = sys.modules.get("routerd")
    default = [] if name in LIST_SETTINGS else DEFAULTS.get(name)
    return getattr(module, name, default) if module is not None else default


_verbose_applied = False


def apply_verbose() -> None:
    """``routerd.set_verbose = True`` turns on debug logs of the ``routerd`` logger (once)."""
    global _verbose_applied
    if setting("set_verbose") and not _verbose_applied:
        import logging  # here: ``import routerd`` stays cheap (the package installs these defaults)

        logger = logging.getLogger("routerd")
        logger.setLevel(logging.DEBUG)
        if not logger.handlers:
            logger.addHandler(logging.StreamHandler(sys.stderr))
        _verbose_applied = True


#: why ``log_raw_request_response`` is refused instead of accepted and left without effect
RAW_LOGGING_REFUSED = (
    "routerd.log_raw_request_response is not supported: routerd's callbacks do not receive the raw "
    "upstream request (kwargs['additional_args']['complete_input_dict']); the setting has no effect"
)
_raw_warned = False


def refuse_raw_logging() -> None:
    """Warn (once per process, ``UserWarning``) when ``routerd.log_raw_request_response`` is on: the
    per-attempt upstream body is built inside the router, after the pre-call hooks ran, so routerd
    cannot hand it to them; a setting that silently did nothing would mislead a port."""
    global _raw_warned
    if setting("log_raw_request_response") and not _raw_warned:
        import warnings  # here: ``import routerd`` stays cheap

        _raw_warned = True
        warnings.warn(RAW_LOGGING_REFUSED, UserWarning, stacklevel=2)
