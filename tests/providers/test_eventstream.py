"""AWS event-stream framing: round trips, byte-at-a-time feeding, CRC and bound checks."""

from __future__ import annotations

import struct
import zlib

import pytest

from routerd.providers.eventstream import EventStreamDecoder, EventStreamError, encode_message

# A frame built by hand from the format's definition (not by encode_message), so the decoder is
# checked against the layout itself: one string header ":event-type"="x", payload b"{}".
_NAME = b":event-type"
_HEADERS = bytes([len(_NAME)]) + _NAME + bytes([7]) + struct.pack(">H", 1) + b"x"
_TOTAL = 12 + len(_HEADERS) + 2 + 4
_PRELUDE = struct.pack(">II", _TOTAL, len(_HEADERS))
_PRELUDE += struct.pack(">I", zlib.crc32(_PRELUDE))
_BODY = _PRELUDE + _HEADERS + b"{}"
HAND_FRAME = _BODY + struct.pack(">I", zlib.crc32(_BODY))


def test_decodes_a_frame_built_from_the_format_definition() -> None:
    [message] = list(EventStreamDecoder().feed(HAND_FRAME))
    assert message.headers == {":event-type": "x"}
    assert message.payload == b"{}"
    assert message.event_type == "x"
    assert message.message_type == "event"


def test_encoder_matches_the_hand_built_frame() -> None:
    assert encode_message({":event-type": "x"}, b"{}") == HAND_FRAME


def test_round_trip_fed_one_byte_at_a_time() -> None:
    frames = [
        encode_message({":message-type": "event", ":event-type": "a", "flag": True, "n": -5}, b"payload-1"),
        encode_message(
            {":message-type": "exception", ":exception-type": "throttlingException", "raw": b"\x00\r\n"}, b""
        ),
    ]
    decoder = EventStreamDecoder()
    out = []
    for byte in b"".join(frames):
        out.extend(decoder.feed(bytes([byte])))
    assert [m.payload for m in out] == [b"payload-1", b""]
    assert out[0].headers["flag"] is True and out[0].headers["n"] == -5
    assert out[1].message_type == "exception" and out[1].event_type == "throttlingException"
    assert out[1].headers["raw"] == b"\x00\r\n"
    assert decoder.pending == 0


def test_a_partial_frame_stays_pending() -> None:
    decoder = EventStreamDecoder()
    assert list(decoder.feed(HAND_FRAME[:-3])) == []
    assert decoder.pending == len(HAND_FRAME) - 3


def test_message_crc_mismatch_is_an_error() -> None:
    corrupt = HAND_FRAME[:-6] + b"X" + HAND_FRAME[-5:]
    with pytest.raises(EventStreamError, match="message CRC"):
        list(EventStreamDecoder().feed(corrupt))


def test_prelude_crc_mismatch_is_an_error() -> None:
    corrupt = HAND_FRAME[:9] + bytes([HAND_FRAME[9] ^ 1]) + HAND_FRAME[10:]
    with pytest.raises(EventStreamError, match="prelude CRC"):
        list(EventStreamDecoder().feed(corrupt))


def test_lengths_beyond_the_bounds_fail_before_buffering() -> None:
    big = encode_message({}, b"x" * 100)
    with pytest.raises(EventStreamError, match="out of bounds"):
        list(EventStreamDecoder(max_message_bytes=64).feed(big[:12]))
    headers = encode_message({"h": "y" * 50}, b"")
    with pytest.raises(EventStreamError, match="headers length"):
        list(EventStreamDecoder(max_headers_bytes=16).feed(headers))


def test_unknown_header_type_is_an_error() -> None:
    block = bytes([1]) + b"h" + bytes([42])
    prelude = struct.pack(">II", 12 + len(block) + 4, len(block))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + block
    with pytest.raises(EventStreamError, match="type 42"):
        list(EventStreamDecoder().feed(body + struct.pack(">I", zlib.crc32(body))))
