"""Conformance: the zex codec against an independent MessagePack implementation and SPEC.md.

Every message goes both ways: encoded by zex and read with the plain
``msgpack`` package, and written by hand with ``msgpack.packb`` (as a client
in another language would write it from SPEC.md) and decoded by zex. The
field tables, the reason table and the examples of SPEC.md are read from the
file itself, so the text and the code cannot drift apart unnoticed.
"""

from __future__ import annotations

import re
import types
import typing

import msgpack
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zex.protocol import internal, messages
from zex.protocol.codec import decode_report, decode_request, encode
from zex.protocol.errors import DecodeFailed, ProtocolError
from zex.protocol.messages import (
    Ack,
    Cancel,
    Cancelled,
    Expired,
    Fill,
    Heartbeat,
    Logon,
    LogonAck,
    NewOrder,
    Reject,
    Replace,
    Replaced,
)
from zex.protocol.numbers import Instrument
from zex.protocol.reasons import Reason

from . import spec_text

NS = 1_764_000_000_123_456_789

SAMPLES: dict[type, messages.Message] = {
    Logon: Logon(account="alice", credential="s3cret", heartbeat_ms=2_500),
    Heartbeat: Heartbeat(next_seq=42),
    NewOrder: NewOrder(cl_ord_id="a-1", symbol="XYZ", side="sell", qty="12", ord_type="limit",
                       price="101.25", tif="ioc", post_only=False, stp="cancel_both"),
    Cancel: Cancel(cl_ord_id="c-1", symbol="XYZ", order_id=0, orig_cl_ord_id="a-1"),
    Replace: Replace(cl_ord_id="r-1", symbol="BTC-USD", qty="0.75", price="65000.5", order_id=9),
    LogonAck: LogonAck(account="alice", session_id="7f3a", heartbeat_ms=2_500),
    Ack: Ack(cl_ord_id="a-2", order_id=17, symbol="XYZ", side="buy", ord_type="market", tif="fok",
             price=None, qty="3", seq=41, ts=NS, resent=True),
    Reject: Reject(cl_ord_id="a-3", ref_type="new_order", reason=int(Reason.PRICE_OFF_TICK),
                   reason_name="PRICE_OFF_TICK", text="price must be a multiple of tick 0.01",
                   seq=0, resent=False),
    Fill: Fill(order_id=17, cl_ord_id="a-1", symbol="XYZ", side="buy", price="101.5", qty="4",
               leaves="6", trade_id=7, liquidity="maker", seq=42, ts=NS + 1),
    Cancelled: Cancelled(order_id=17, cl_ord_id="a-1", symbol="XYZ", side="buy", qty="6",
                         reason="stp", seq=43, ts=NS + 2),
    Expired: Expired(order_id=18, cl_ord_id="b-9", symbol="XYZ", side="sell", qty="1",
                     reason="market", seq=44, ts=NS + 3),
    Replaced: Replaced(order_id=17, cl_ord_id="a-1", symbol="XYZ", side="buy", price="101.4",
                       qty="8", leaves="4", kept_priority=False, seq=45, ts=NS + 4),
}


def tag_of(cls: type) -> str:
    return cls.__struct_config__.tag


def field_names(cls: type) -> list[str]:
    return [f.name for f in msgspec.structs.fields(cls)]


def decoder_for(cls: type):
    return decode_request if cls in messages.REQUESTS else decode_report


def test_every_message_has_a_sample():
    assert set(SAMPLES) == set(messages.ALL)
    assert set(messages.ALL) == set(messages.REQUESTS) | set(messages.REPORTS)


# ------------------------------------------------------ zex -> plain msgpack


@pytest.mark.parametrize("cls", messages.ALL, ids=tag_of)
def test_zex_encoding_reads_as_a_plain_msgpack_map(cls):
    msg = SAMPLES[cls]
    wire = msgpack.unpackb(encode(msg), raw=False, strict_map_key=True)
    assert isinstance(wire, dict)
    assert wire["type"] == tag_of(cls)
    assert wire["v"] == 1 and type(wire["v"]) is int
    assert set(wire) == {"type", *field_names(cls)}
    for name in field_names(cls):
        assert wire[name] == getattr(msg, name), name
        assert type(wire[name]) is type(getattr(msg, name)), name


@pytest.mark.parametrize("cls", messages.ALL, ids=tag_of)
def test_zex_encoding_decodes_back_with_zex(cls):
    msg = SAMPLES[cls]
    assert decoder_for(cls)(encode(msg)) == msg


def test_heartbeat_is_both_a_request_and_a_report():
    frame = encode(Heartbeat(next_seq=5))
    assert decode_request(frame) == decode_report(frame) == Heartbeat(next_seq=5)


# ------------------------------------------------- hand-written maps -> zex
# Written from SPEC.md section 4, the way a client in another language would.

HAND: list[tuple[dict, type, dict]] = [
    # (map as sent, expected class, expected field values after decoding)
    ({"type": "logon", "v": 1, "account": "bob"},
     Logon, {"account": "bob", "credential": "", "heartbeat_ms": 1000}),
    ({"type": "heartbeat", "v": 1},
     Heartbeat, {"next_seq": 0}),
    ({"type": "new_order", "v": 1, "cl_ord_id": "x1", "symbol": "XYZ", "side": "buy", "qty": "5",
      "price": "10.5"},
     NewOrder, {"cl_ord_id": "x1", "symbol": "XYZ", "side": "buy", "qty": "5", "price": "10.5",
                "ord_type": "limit", "tif": "gtc", "post_only": False, "stp": "cancel_newest"}),
    ({"v": 1, "stp": "none", "tif": "fok", "ord_type": "market", "price": None, "qty": "0.001",
      "side": "sell", "symbol": "BTC-USD", "cl_ord_id": "x" * 36, "post_only": False,
      "type": "new_order"},  # key order is not significant
     NewOrder, {"cl_ord_id": "x" * 36, "symbol": "BTC-USD", "side": "sell", "qty": "0.001",
                "price": None, "ord_type": "market", "tif": "fok", "stp": "none"}),
    ({"type": "cancel", "v": 1, "cl_ord_id": "c9", "symbol": "XYZ", "order_id": 2**63 - 1},
     Cancel, {"cl_ord_id": "c9", "symbol": "XYZ", "order_id": 2**63 - 1, "orig_cl_ord_id": ""}),
    ({"type": "cancel", "v": 1, "cl_ord_id": "c10", "symbol": "XYZ", "orig_cl_ord_id": "x1"},
     Cancel, {"order_id": 0, "orig_cl_ord_id": "x1"}),
    ({"type": "replace", "v": 1, "cl_ord_id": "r1", "symbol": "XYZ", "order_id": 3, "qty": "7",
      "price": "10.25"},
     Replace, {"order_id": 3, "qty": "7", "price": "10.25", "orig_cl_ord_id": ""}),
    ({"type": "logon_ack", "v": 1, "account": "bob", "session_id": "s-1", "heartbeat_ms": 500},
     LogonAck, {"account": "bob", "session_id": "s-1", "heartbeat_ms": 500}),
    ({"type": "heartbeat", "v": 1, "next_seq": 99},
     Heartbeat, {"next_seq": 99}),
    ({"type": "ack", "v": 1, "cl_ord_id": "x1", "order_id": 1, "symbol": "XYZ", "side": "buy",
      "ord_type": "limit", "tif": "gtc", "price": "10.5", "qty": "5", "seq": 1, "ts": NS},
     Ack, {"order_id": 1, "price": "10.5", "seq": 1, "ts": NS, "resent": False}),
    ({"type": "ack", "v": 1, "cl_ord_id": "x2", "order_id": 2, "symbol": "XYZ", "side": "sell",
      "ord_type": "market", "tif": "ioc", "price": None, "qty": "5", "seq": 2, "ts": NS,
      "resent": True},
     Ack, {"price": None, "resent": True, "ord_type": "market"}),
    ({"type": "reject", "v": 1, "cl_ord_id": "", "ref_type": "", "reason": 100,
      "reason_name": "MALFORMED", "text": "frame is not a MessagePack map"},
     Reject, {"reason": 100, "seq": 0, "resent": False}),
    ({"type": "fill", "v": 1, "order_id": 1, "cl_ord_id": "x1", "symbol": "XYZ", "side": "buy",
      "price": "10.5", "qty": "2", "leaves": "3", "trade_id": 1, "liquidity": "taker", "seq": 3,
      "ts": NS},
     Fill, {"leaves": "3", "liquidity": "taker", "trade_id": 1}),
    ({"type": "cancelled", "v": 1, "order_id": 1, "cl_ord_id": "x1", "symbol": "XYZ",
      "side": "buy", "qty": "3", "reason": "user", "seq": 4, "ts": NS},
     Cancelled, {"qty": "3", "reason": "user"}),
    ({"type": "expired", "v": 1, "order_id": 5, "cl_ord_id": "x5", "symbol": "XYZ",
      "side": "sell", "qty": "1", "reason": "fok", "seq": 5, "ts": NS},
     Expired, {"reason": "fok"}),
    ({"type": "replaced", "v": 1, "order_id": 1, "cl_ord_id": "x1", "symbol": "XYZ",
      "side": "buy", "price": "10.5", "qty": "4", "leaves": "2", "kept_priority": True, "seq": 6,
      "ts": NS},
     Replaced, {"kept_priority": True, "leaves": "2"}),
]


@pytest.mark.parametrize("wire,cls,expected", HAND,
                         ids=[f"{c.__name__}-{i}" for i, (_, c, _) in enumerate(HAND)])
def test_hand_written_map_decodes_with_zex(wire, cls, expected):
    msg = decoder_for(cls)(msgpack.packb(wire, use_bin_type=True))
    assert type(msg) is cls
    assert msg.v == 1
    sent = {k: v for k, v in wire.items() if k not in ("type", "v")}
    for name, value in {**sent, **expected}.items():
        assert getattr(msg, name) == value, name


def test_every_message_type_has_a_hand_written_map():
    assert {cls for _, cls, _ in HAND} == set(messages.ALL)


def test_unknown_fields_are_ignored_both_ways():
    extra = {"type": "new_order", "v": 1, "cl_ord_id": "x1", "symbol": "XYZ", "side": "buy",
             "qty": "5", "price": "1", "future_flag": [1, {"a": None}], "zz": b"\x00"}
    assert decode_request(msgpack.packb(extra)).cl_ord_id == "x1"
    rep = msgpack.unpackb(encode(SAMPLES[Fill]))
    rep["venue_extra"] = "later"
    assert decode_report(msgpack.packb(rep)) == SAMPLES[Fill]


def test_missing_v_is_read_as_version_1():
    msg = decode_request(msgpack.packb({"type": "heartbeat"}))
    assert msg == Heartbeat() and msg.v == 1


def test_requests_are_not_reports_and_reports_are_not_requests():
    for cls in messages.ALL:
        frame = encode(SAMPLES[cls])
        other = decode_report if cls in messages.REQUESTS else decode_request
        if cls is Heartbeat:
            continue
        with pytest.raises(DecodeFailed) as err:
            other(frame)
        assert err.value.reason is Reason.UNKNOWN_TYPE and err.value.field == "type"


# -------------------------------------------------- random round trips

text_ = st.text(st.characters(codec="utf-8"), min_size=1, max_size=16)
decimal = st.from_regex(r"[0-9]{1,9}(\.[0-9]{1,9})?", fullmatch=True)
uint = st.integers(0, 2**63 - 1)

new_orders = st.builds(
    NewOrder,
    cl_ord_id=st.text(st.characters(codec="utf-8"), min_size=1, max_size=36),
    symbol=text_,
    side=st.sampled_from(["buy", "sell"]),
    qty=decimal,
    ord_type=st.sampled_from(["limit", "market"]),
    price=st.none() | decimal,
    tif=st.sampled_from(["gtc", "ioc", "fok"]),
    post_only=st.booleans(),
    stp=st.sampled_from(["cancel_newest", "cancel_oldest", "cancel_both", "none"]),
)
fills = st.builds(
    Fill, order_id=uint, cl_ord_id=text_, symbol=text_, side=st.sampled_from(["buy", "sell"]),
    price=decimal, qty=decimal, leaves=decimal, trade_id=uint,
    liquidity=st.sampled_from(["maker", "taker"]), seq=uint, ts=uint,
)


@settings(max_examples=150, deadline=None)
@given(msg=new_orders)
def test_random_new_orders_agree_with_plain_msgpack(msg):
    wire = msgpack.unpackb(encode(msg))
    fields = {n: getattr(msg, n) for n in field_names(NewOrder)}
    assert wire == {"type": "new_order", "v": 1, **fields}
    assert decode_request(msgpack.packb(wire)) == msg


@settings(max_examples=100, deadline=None)
@given(msg=fills)
def test_random_fills_agree_with_plain_msgpack(msg):
    wire = msgpack.unpackb(encode(msg))
    assert wire["type"] == "fill" and wire["v"] == 1
    assert decode_report(msgpack.packb(wire)) == msg


# ---------------------------------------------------------- SPEC.md itself


def _annotation_kind(tp) -> str:
    """The SPEC.md type word for a field annotation."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _annotation_kind(typing.get_args(tp)[0])
    if origin is typing.Literal:
        return "enum"
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _annotation_kind(args[0]) + " or nil"
    return {str: "str", int: "int", bool: "bool"}[tp]


@pytest.mark.parametrize("cls", messages.ALL, ids=tag_of)
def test_spec_field_table_matches_the_message_class(cls):
    tables = spec_text.message_tables()
    assert tag_of(cls) in tables, f"SPEC.md section 4 has no table for {tag_of(cls)}"
    rows = {r.name: r for r in tables[tag_of(cls)]}
    fields = {f.name: f for f in msgspec.structs.fields(cls) if f.name != "v"}
    assert list(rows) == list(fields), "SPEC.md lists the fields in the class's order"
    for name, f in fields.items():
        row = rows[name]
        if row.required == "yes":
            assert f.required, f"{name} is required in SPEC.md but has a default in code"
        else:
            assert not f.required, f"{name} is optional in SPEC.md but required in code"
        kind = _annotation_kind(f.type)
        spec_kind = {"decimal": "str", "decimal or nil": "str or nil"}.get(row.type, row.type)
        assert spec_kind == kind, f"{name}: SPEC.md says {row.type}, code has {f.type}"
        if row.default not in (None, ""):
            assert spec_text.spec_default(row.default) == f.default, name
        spec_range = _DECIMAL_RANGE if row.type.startswith("decimal") else _spec_range(row.range)
        assert spec_range == _code_range(f.type), f"{name}: range {row.range!r}"


# SPEC.md section 4: '"decimal" means a str following §3 (1..32 characters)'
_DECIMAL_RANGE = tuple(int(x) for x in re.search(
    r'"decimal"\s+means a str following §3 \((\d+)\.\.(\d+) characters\)',
    spec_text.text()).groups())


def _spec_range(cell: str | None) -> tuple[int, int] | None:
    """'1..36; ...' or '0..2^63-1' at the start of a range cell, as numbers."""
    m = re.match(r"(\d+)\.\.(2\^63-1|[\d]+)", cell or "")
    if m is None:
        return None
    hi = 2**63 - 1 if m.group(2) == "2^63-1" else int(m.group(2))
    return int(m.group(1)), hi


def _code_range(tp) -> tuple[int, int] | None:
    """The (min, max) a msgspec Meta puts on a str's length or an int's value, if both are set."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is not typing.Annotated:
        return None
    base, *metas = typing.get_args(tp)
    meta = metas[0]
    if base is str:
        lo, hi = meta.min_length, meta.max_length
    else:
        lo, hi = meta.ge, meta.le
    if hi is None:
        return None
    return (lo or 0), hi


def test_spec_reason_table_matches_the_enum():
    rows = spec_text.reason_rows()
    assert [code for code, _, _ in rows] == sorted(int(r) for r in Reason)
    for code, name, sentence in rows:
        r = Reason(code)
        assert r.name == name
        assert r.sentence == sentence


def test_spec_enum_values_match_the_literals():
    body = spec_text.text()
    for cls in (NewOrder, Fill, Cancelled, Expired):
        for f in msgspec.structs.fields(cls):
            if typing.get_origin(f.type) is typing.Literal:
                for value in typing.get_args(f.type):
                    where = f"{cls.__name__}.{f.name} = {value!r}"
                    assert f'`"{value}"`' in body, f"{where} is not in SPEC.md"


def test_spec_example_bytes_decode_to_the_example_logon():
    frame = spec_text.example_bytes()
    assert decode_request(frame) == Logon(account="alice", credential="s3cret", heartbeat_ms=1000)
    first = spec_text.example_messages()[0][1]
    assert msgpack.packb(first) == frame


def test_spec_example_session_decodes():
    """Every complete map in the example decodes; a refused request gets the reject after it."""
    xyz = Instrument("XYZ", tick="0.01", lot="1", min_price="0.01", max_price="10000",
                     max_qty="100000")
    seen = spec_text.example_messages()
    assert len(seen) >= 12
    for i, (kind, wire) in enumerate(seen):
        frame = msgpack.packb(wire)
        if kind == "report":
            assert decode_report(frame).v == 1
            continue
        nxt = seen[i + 1][1] if i + 1 < len(seen) and seen[i + 1][0] == "report" else None
        try:
            msg = decode_request(frame)
        except DecodeFailed as exc:
            assert nxt is not None and nxt["type"] == "reject"
            assert nxt["reason"] == exc.reason and nxt["reason_name"] == exc.reason.name
            assert nxt["seq"] == 0 and nxt["text"] == exc.text
            continue
        if nxt is not None and nxt["type"] == "reject" and nxt["reason"] // 100 == 2:
            with pytest.raises(ProtocolError) as err:
                xyz.price_to_ticks(msg.price)
                xyz.qty_to_lots(msg.qty)
            assert err.value.reason == nxt["reason"] and str(err.value) == nxt["text"]


# -------------------------------------------------------- internal links

CMD_SAMPLES = {
    internal.NewOrderCmd: internal.NewOrderCmd(NS, "gw1", b"\x00k\x8bEg", "alice", "a-1", "XYZ",
                                               internal.SELL, internal.LIMIT, internal.IOC, 10150,
                                               10, True, internal.STP_CANCEL_OLDEST),
    internal.CancelCmd: internal.CancelCmd(NS, "gw2", b"\x01", "bob", "c-1", "ABC", 0, "b-7"),
    internal.ReplaceCmd: internal.ReplaceCmd(NS, "gw1", b"\x02\x03", "alice", "r-1", "XYZ", 10100,
                                             12, 44, ""),
}
EVENT_SAMPLES = {
    internal.Accepted: internal.Accepted(7, NS, 3, "alice", "a-1", "XYZ", internal.BUY,
                                         internal.MARKET, internal.FOK, 0, 5),
    internal.Rejected: internal.Rejected(8, NS, "bob", "c-1", "XYZ", 2, int(Reason.UNKNOWN_ORDER),
                                         "no open order 9"),
    internal.Trade: internal.Trade(9, NS, 1, "XYZ", 10150, 4, internal.SELL, 5, "bob", "b-1", 0, 3,
                                   "alice", "a-1", 6),
    internal.Cancelled: internal.Cancelled(10, NS, 3, "alice", "a-1", "XYZ", internal.BUY, 10150,
                                           6, internal.CXL_STP),
    internal.Expired: internal.Expired(11, NS, 5, "bob", "b-1", "XYZ", internal.SELL, 0, 2,
                                       internal.EXP_MARKET),
    internal.Replaced: internal.Replaced(12, NS, 3, "alice", "a-1", "XYZ", internal.BUY, 10140, 8,
                                         4, False),
    internal.Digest: internal.Digest(13, bytes(range(16))),
}


def test_every_internal_type_has_a_sample():
    assert set(CMD_SAMPLES) == set(typing.get_args(internal.Command))
    assert set(EVENT_SAMPLES) == set(typing.get_args(internal.Event))


@pytest.mark.parametrize("obj", [*CMD_SAMPLES.values(), *EVENT_SAMPLES.values()],
                         ids=lambda o: type(o).__name__)
def test_internal_encoding_is_an_array_tag_first(obj):
    cls = type(obj)
    arr = msgpack.unpackb(internal.encoder.encode(obj), raw=False)
    assert isinstance(arr, list)
    assert arr[0] == cls.__struct_config__.tag and type(arr[0]) is int
    assert arr[1:] == [getattr(obj, n) for n in field_names(cls)]


@pytest.mark.parametrize("obj", [*CMD_SAMPLES.values(), *EVENT_SAMPLES.values()],
                         ids=lambda o: type(o).__name__)
def test_hand_packed_internal_array_decodes(obj):
    cls = type(obj)
    arr = [cls.__struct_config__.tag, *(getattr(obj, n) for n in field_names(cls))]
    decoder = internal.command_decoder if cls in CMD_SAMPLES else internal.event_decoder
    assert decoder.decode(msgpack.packb(arr, use_bin_type=True)) == obj


def test_internal_trailing_defaults_may_be_omitted_and_extra_elements_are_ignored():
    short = [2, NS, "gw2", b"\x01", "bob", "c-1", "ABC"]
    assert internal.command_decoder.decode(msgpack.packb(short)) == internal.CancelCmd(
        NS, "gw2", b"\x01", "bob", "c-1", "ABC")
    cmd = CMD_SAMPLES[internal.NewOrderCmd]
    arr = msgpack.unpackb(internal.encoder.encode(cmd))
    assert internal.command_decoder.decode(msgpack.packb([*arr, "later"])) == cmd


def test_internal_enum_out_of_range_is_refused():
    arr = msgpack.unpackb(internal.encoder.encode(CMD_SAMPLES[internal.NewOrderCmd]))
    arr[7] = 3  # side: only 1 and 2 exist
    with pytest.raises(msgspec.ValidationError):
        internal.command_decoder.decode(msgpack.packb(arr))


def test_event_batch_round_trips_through_plain_msgpack():
    events = list(EVENT_SAMPLES.values())
    batch = internal.EventBatch(7, 13, events)
    arr = msgpack.unpackb(internal.encoder.encode(batch))
    assert arr[0] == 7 and arr[1] == 13 and len(arr[2]) == len(events)
    assert [e[0] for e in arr[2]] == [type(e).__struct_config__.tag for e in events]
    assert internal.batch_decoder.decode(msgpack.packb(arr)) == batch
    empty = internal.batch_decoder.decode(msgpack.packb([14, 14, []]))
    assert empty == internal.EventBatch(14, 14, [])


def test_spec_appendix_lists_internal_fields_in_class_order():
    rows = spec_text.internal_rows()
    for cls in [*CMD_SAMPLES, *EVENT_SAMPLES]:
        assert cls.__name__ in rows, f"SPEC.md Appendix A has no row for {cls.__name__}"
        tag, names = rows[cls.__name__]
        assert tag == cls.__struct_config__.tag
        assert names == field_names(cls), cls.__name__
