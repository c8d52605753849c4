"""The SDK's exceptions: routerd's error classes that are also ``openai``'s.

The core (:mod:`routerd.errors`) does not import ``openai``, which costs about half a second; the
daemon never needs it. Code using the SDK expects ``except openai.RateLimitError`` to catch what
``routerd.completion`` raises, so the SDK's entry points pass every routerd error through
:func:`as_sdk_error` on its way out: the error keeps its identity, message, attributes and traceback,
and its class becomes :func:`sdk_class` of its class, a subclass of both the routerd class and the
matching ``openai`` one. Those classes are built on first use and exported as ``routerd.<Name>``;
``openai`` itself is imported only then, so an SDK call that succeeds never imports it.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from routerd import errors

F = TypeVar("F", bound=Callable[..., Any])

# routerd class -> the name of the openai class it stands for; classes not listed inherit their parent's
_OPENAI_PARENTS: dict[type[errors.OpenAIError], str] = {
    errors.OpenAIError: "APIError",
    # routerd.APIError (the generic error) inherits openai.APIError through routerd.OpenAIError
    errors.BadRequestError: "BadRequestError",
    errors.UnprocessableEntityError: "UnprocessableEntityError",
    errors.AuthenticationError: "AuthenticationError",
    errors.PermissionDeniedError: "PermissionDeniedError",
    errors.NotFoundError: "NotFoundError",
    errors.RateLimitError: "RateLimitError",
    errors.InternalServerError: "InternalServerError",
    errors.APIConnectionError: "APIConnectionError",
    errors.Timeout: "APITimeoutError",
}


_SDK_CLASSES: dict[type[errors.OpenAIError], type[errors.OpenAIError]] = {}
# one class per routerd class, even when two threads ask first at once: a second copy would not be
# caught by ``except routerd.<Name>``
_BUILDING = threading.RLock()


def sdk_class(cls: type[errors.OpenAIError]) -> type[errors.OpenAIError]:
    """``cls`` as the SDK raises it: a subclass of ``cls``, of the SDK class of ``cls``'s parent, and
    of the ``openai`` exception ``cls`` stands for (if it has one of its own). Built once per class."""
    if getattr(cls, "_is_sdk_class", False):
        return cls
    built = _SDK_CLASSES.get(cls)
    if built is None:
        with _BUILDING:
            built = _SDK_CLASSES.get(cls) or _build(cls)
            _SDK_CLASSES[cls] = built
    return built


def _build(cls: type[errors.OpenAIError]) -> type[errors.OpenAIError]:
    import openai  # here, not at the top: importing it costs ~0.5 s, paid only when an error escapes

    own = _OPENAI_PARENTS.get(cls)
    if cls is errors.OpenAIError:
        bases: tuple[type, ...] = (cls, openai.APIError)
    else:
        parent = next(base for base in cls.__bases__ if issubclass(base, errors.OpenAIError))
        bases = (cls, sdk_class(parent), *((getattr(openai, own),) if own is not None else ()))
    namespace = {
        "__module__": "routerd",
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "_is_sdk_class": True,
    }
    return cast(type[errors.OpenAIError], type(cls.__name__, bases, namespace))


def as_sdk_error(exc: BaseException) -> BaseException:
    """``exc`` with its class swapped for its SDK class when it is a routerd :class:`~routerd.errors.OpenAIError`.

    The object itself is kept (not copied), so its traceback, cause and identity stay as they were.
    """
    if isinstance(exc, errors.OpenAIError):
        exc.__class__ = sdk_class(type(exc))
    return exc


def raises_sdk_errors(func: F) -> F:
    """Decorate an SDK entry point (sync or async) so the routerd errors it raises are SDK errors."""
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except errors.OpenAIError as exc:
                as_sdk_error(exc)
                raise

        return cast(F, run_async)

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except errors.OpenAIError as exc:
            as_sdk_error(exc)
            raise

    return cast(F, run)


def exported(name: str) -> type[errors.RouterdError]:
    """What ``routerd.<name>`` is for an exception name: the SDK class of API errors, else the core class."""
    cls = getattr(errors, name)
    if isinstance(cls, type) and issubclass(cls, errors.OpenAIError):
        return sdk_class(cls)
    return cast(type[errors.RouterdError], cls)
