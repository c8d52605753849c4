"""Client values placed into upstream URL paths: escaped, and never a dot segment.

A wildcard deployment (``gemini/*``) puts the client's model name into the upstream URL, and the files
and fine-tuning APIs put client ids there. Unescaped, ``?`` and ``#`` would cut the path short and
``..`` would step up a segment, reaching other paths on the configured host with the gateway's key
(issue 21, L5). Every such value goes through :func:`path_segment` (one segment) or
:func:`resource_path` (a ``/``-separated resource name such as ``tunedModels/x``).
"""

from __future__ import annotations

from urllib.parse import quote

from routerd.errors import BadRequestError

__all__ = ["path_segment", "resource_path"]

# URL resolution (RFC 3986 5.2.4) and many servers remove these segments: they cannot be escaped away
_DOT_SEGMENTS = frozenset({"", ".", ".."})


def path_segment(value: str, *, param: str | None = None, what: str = "id") -> str:
    """``value`` as one escaped path segment; a 400 for an empty value, ``.`` or ``..``."""
    if value in _DOT_SEGMENTS:
        raise BadRequestError(
            f"{what} {value!r} cannot be part of a URL path", param=param, code="invalid_value"
        )
    return quote(value, safe="@")  # "@" is a pchar (RFC 3986) and appears in versioned model names


def resource_path(value: str, *, param: str | None = None, what: str = "model name") -> str:
    """A ``/``-separated resource name with every segment escaped by :func:`path_segment`."""
    return "/".join(path_segment(segment, param=param, what=what) for segment in value.split("/"))
