"""Encode and decode client messages; turn every decoding failure into a Reason.

    >>> from zex.protocol.codec import encode, decode_request
    >>> from zex.protocol.messages import NewOrder
    >>> decode_request(encode(NewOrder(cl_ord_id="a1", symbol="XYZ", side="buy", qty="1", price="10")))
    NewOrder(v=1, cl_ord_id='a1', symbol='XYZ', side='buy', qty='1', ord_type='limit', price='10', tif=None, post_only=False, stp='cancel_newest')

The happy path is one msgspec decode. Only when it fails does the codec look
closer (a second, lenient decode of the envelope) to say precisely why:
malformed bytes, unknown type, unsupported version, missing field, wrong
type, or a value out of range — each its own reason code, naming the field.
"""

from __future__ import annotations

import re

import msgspec

from .errors import DecodeFailed
from .messages import VERSION, Report, Request
from .reasons import Reason

MAX_FRAME = 4096  # bytes; the largest valid request is well under 1 KiB

_encoder = msgspec.msgpack.Encoder()
encode = _encoder.encode

_requests = msgspec.msgpack.Decoder(Request)
_reports = msgspec.msgpack.Decoder(Report)


class _Envelope(msgspec.Struct):
    """The two keys every message has, read leniently to classify a failure."""

    type: object = None
    v: object = None


_envelope = msgspec.msgpack.Decoder(_Envelope)
# msgspec raises these two for invalid UTF-8 in a str and for absurd nesting;
# both are bad input like any other and must become a reject, never a crash.
_DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_AT = re.compile(r"at `\$\.([A-Za-z0-9_]+)")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def decode_request(frame: bytes) -> Request:
    """Decode one client request, or raise DecodeFailed with the reason and field."""
    if len(frame) > MAX_FRAME:
        raise DecodeFailed(
            Reason.FRAME_TOO_LARGE,
            f"frame is {len(frame)} bytes; the limit is {MAX_FRAME}",
        )
    try:
        msg = _requests.decode(frame)
    except _DECODE_ERRORS as exc:
        raise classify(frame, exc) from None
    if msg.v != VERSION:
        raise DecodeFailed(
            Reason.UNSUPPORTED_VERSION,
            f"v must be {VERSION}, was {msg.v}",
            "v",
        )
    return msg


def decode_report(frame: bytes) -> Report:
    """Decode one gateway report (the client side), raising DecodeFailed on bad input."""
    try:
        msg = _reports.decode(frame)
    except _DECODE_ERRORS as exc:
        raise classify(frame, exc) from None
    if msg.v != VERSION:
        raise DecodeFailed(Reason.UNSUPPORTED_VERSION, f"v must be {VERSION}, was {msg.v}", "v")
    return msg


def classify(frame: bytes, exc: Exception) -> DecodeFailed:
    """Map a msgspec failure on ``frame`` to the most precise reason code."""
    if isinstance(exc, (UnicodeDecodeError, RecursionError)):
        return DecodeFailed(
            Reason.MALFORMED, f"frame is not valid MessagePack for zex: {type(exc).__name__}"
        )
    try:
        env = _envelope.decode(frame)
    except _DECODE_ERRORS:
        return DecodeFailed(Reason.MALFORMED, f"frame is not a MessagePack map: {exc}")
    if env.v is not None and env.v != VERSION:
        if not isinstance(env.v, int) or isinstance(env.v, bool):
            return DecodeFailed(Reason.WRONG_TYPE, f"v must be an int, was {env.v!r}", "v")
        return DecodeFailed(Reason.UNSUPPORTED_VERSION, f"v must be {VERSION}, was {env.v}", "v")
    text = str(exc)
    if env.type is None:
        return DecodeFailed(Reason.MISSING_FIELD, "type is required", "type")
    if not isinstance(env.type, str):
        return DecodeFailed(Reason.WRONG_TYPE, f"type must be a str, was {env.type!r}", "type")
    m = _MISSING.search(text)
    if m:
        field = m.group(1)
        return DecodeFailed(Reason.MISSING_FIELD, f"{field} is required in {env.type}", field)
    m = _AT.search(text)
    field = m.group(1) if m else None
    if field == "type":
        return DecodeFailed(Reason.UNKNOWN_TYPE, f"type {env.type!r} is not known", "type")
    if text.startswith("Expected `") and "`, got `" in text:
        return DecodeFailed(Reason.WRONG_TYPE, f"{field}: {text}", field)
    if field is not None:
        return DecodeFailed(Reason.INVALID_VALUE, f"{field}: {text}", field)
    return DecodeFailed(Reason.MALFORMED, text)


class _Peek(msgspec.Struct):
    type: object = None
    cl_ord_id: object = None
    req_id: object = None


_peek = msgspec.msgpack.Decoder(_Peek)


def peek(frame: bytes) -> tuple[str, str]:
    """Best effort (type, cl_ord_id or req_id) of a frame that failed to decode, for its reject.

    Each comes back whole, as sent, even when it breaks its own limits (SPEC 4.8): a cut
    copy of an over-long cl_ord_id could be another request's id. The frame is at most
    MAX_FRAME bytes, so the echo is bounded too.
    """
    try:
        p = _peek.decode(frame)
    except Exception:  # anything at all: this only labels a reject
        return "", ""
    kind = p.type if isinstance(p.type, str) else ""
    ident = (
        p.cl_ord_id
        if isinstance(p.cl_ord_id, str)
        else p.req_id
        if isinstance(p.req_id, str)
        else ""
    )
    return kind, ident
