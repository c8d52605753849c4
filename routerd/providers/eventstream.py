"""AWS event-stream framing (``application/vnd.amazon.eventstream``): an incremental decoder and an encoder.

Bedrock's ConverseStream and SageMaker's InvokeEndpointWithResponseStream answer a sequence of binary
messages, each::

    total length (uint32 BE) | headers length (uint32 BE) | prelude CRC32 (of the 8 bytes before)
    headers (name length uint8, name, value type uint8, value) ... | payload | message CRC32

The message CRC covers everything before it, prelude included. The decoder checks both CRCs and
bounds every length before buffering (:data:`MAX_MESSAGE_BYTES`, :data:`MAX_HEADERS_BYTES`: the
service limits), so a corrupt or hostile stream fails fast instead of growing memory. The encoder
exists for the loopback fakes and for round-trip tests.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_HEADERS_BYTES",
    "MAX_MESSAGE_BYTES",
    "EventStreamDecoder",
    "EventStreamError",
    "Message",
    "encode_message",
]

#: largest message accepted (the service limit: 16 MiB)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: largest header block accepted (the service limit: 128 KiB)
MAX_HEADERS_BYTES = 128 * 1024
_PRELUDE = 12  # total length, headers length, prelude CRC
_MIN_MESSAGE = _PRELUDE + 4  # prelude and message CRC, no headers, no payload

# header value types of the format
_TRUE, _FALSE, _BYTE, _SHORT, _INT, _LONG, _BYTES, _STRING, _TIMESTAMP, _UUID = range(10)
_FIXED = {_BYTE: ">b", _SHORT: ">h", _INT: ">i", _LONG: ">q", _TIMESTAMP: ">q"}


class EventStreamError(ValueError):
    """A stream that is not valid event-stream framing (bad CRC, impossible length, bad header)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One decoded message: its headers (``:event-type``, ``:message-type``, ...) and raw payload."""

    headers: Mapping[str, Any]
    payload: bytes

    @property
    def message_type(self) -> str:
        """``event``, ``exception`` or ``error`` (``event`` when the header is missing)."""
        value = self.headers.get(":message-type", "event")
        return value if isinstance(value, str) else "event"

    @property
    def event_type(self) -> str:
        """``:event-type`` of an event, ``:exception-type`` of an exception, ``:error-code`` of an error."""
        for name in (":event-type", ":exception-type", ":error-code"):
            value = self.headers.get(name)
            if isinstance(value, str):
                return value
        return ""


class EventStreamDecoder:
    """Feed it bytes as they arrive; it yields every message completed so far."""

    def __init__(
        self, *, max_message_bytes: int = MAX_MESSAGE_BYTES, max_headers_bytes: int = MAX_HEADERS_BYTES
    ) -> None:
        self._buffer = bytearray()
        self._max_message = max_message_bytes
        self._max_headers = max_headers_bytes

    @property
    def pending(self) -> int:
        """Bytes received that do not form a complete message yet (non-zero at the end: a cut stream)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[Message]:
        """The messages ``data`` completes; raises :class:`EventStreamError` on invalid framing."""
        self._buffer += data
        while len(self._buffer) >= _PRELUDE:
            total, headers_length = self._check_prelude()
            if len(self._buffer) < total:
                return
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            yield _decode_frame(frame, headers_length)

    def _check_prelude(self) -> tuple[int, int]:
        total, headers_length, prelude_crc = struct.unpack_from(">III", self._buffer)
        if zlib.crc32(self._buffer[:8]) != prelude_crc:
            raise EventStreamError("event-stream prelude CRC mismatch")
        if total < _MIN_MESSAGE or total > self._max_message:
            raise EventStreamError(f"event-stream message length {total} out of bounds")
        if headers_length > self._max_headers or headers_length > total - _MIN_MESSAGE:
            raise EventStreamError(f"event-stream headers length {headers_length} out of bounds")
        return total, headers_length


def _decode_frame(frame: bytes, headers_length: int) -> Message:
    (message_crc,) = struct.unpack_from(">I", frame, len(frame) - 4)
    if zlib.crc32(frame[:-4]) != message_crc:
        raise EventStreamError("event-stream message CRC mismatch")
    headers = _decode_headers(frame[_PRELUDE : _PRELUDE + headers_length])
    return Message(headers, frame[_PRELUDE + headers_length : -4])


def _decode_headers(block: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    offset = 0
    try:
        while offset < len(block):
            name_length = block[offset]
            name = block[offset + 1 : offset + 1 + name_length].decode("utf-8")
            offset += 1 + name_length
            kind = block[offset]
            offset += 1
            value, offset = _decode_value(block, offset, kind)
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise EventStreamError("event-stream header block is malformed") from exc
    if offset != len(block):
        raise EventStreamError("event-stream header block is malformed")
    return headers


def _decode_value(block: bytes, offset: int, kind: int) -> tuple[Any, int]:
    if kind == _TRUE:
        return True, offset
    if kind == _FALSE:
        return False, offset
    if kind in _FIXED:
        fmt = _FIXED[kind]
        (number,) = struct.unpack_from(fmt, block, offset)
        return number, offset + struct.calcsize(fmt)
    if kind in (_BYTES, _STRING):
        (length,) = struct.unpack_from(">H", block, offset)
        raw = block[offset + 2 : offset + 2 + length]
        if len(raw) != length:
            raise EventStreamError("event-stream header value is truncated")
        return (raw.decode("utf-8") if kind == _STRING else bytes(raw)), offset + 2 + length
    if kind == _UUID:
        raw = block[offset : offset + 16]
        if len(raw) != 16:
            raise EventStreamError("event-stream header value is truncated")
        return uuid.UUID(bytes=bytes(raw)), offset + 16
    raise EventStreamError(f"event-stream header value type {kind} is unknown")


def encode_message(headers: Mapping[str, str | bytes | bool | int], payload: bytes) -> bytes:
    """One framed message; string, bytes, bool and int (int32) header values."""
    block = b"".join(_encode_header(name, value) for name, value in headers.items())
    total = _PRELUDE + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + block + payload
    return body + struct.pack(">I", zlib.crc32(body))


def _encode_header(name: str, value: str | bytes | bool | int) -> bytes:
    raw_name = name.encode("utf-8")
    head = struct.pack(">B", len(raw_name)) + raw_name
    if isinstance(value, bool):
        return head + struct.pack(">B", _TRUE if value else _FALSE)
    if isinstance(value, int):
        return head + struct.pack(">Bi", _INT, value)
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return head + struct.pack(">BH", _STRING, len(raw)) + raw
    return head + struct.pack(">BH", _BYTES, len(value)) + value
