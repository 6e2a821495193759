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
    Book,
    Cancel,
    Cancelled,
    Expired,
    Fill,
    Heartbeat,
    KillSwitch,
    KillSwitchSet,
    Level,
    LoggedOut,
    Logon,
    LogonAck,
    Logout,
    NewOrder,
    OrderInfo,
    Orders,
    PositionInfo,
    Positions,
    Query,
    Recover,
    Recovered,
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
    Logout: Logout(),
    Heartbeat: Heartbeat(next_seq=42),
    NewOrder: NewOrder(
        cl_ord_id="a-1",
        symbol="XYZ",
        side="sell",
        qty="12",
        ord_type="limit",
        price="101.25",
        tif="ioc",
        post_only=False,
        stp="cancel_both",
    ),
    Cancel: Cancel(cl_ord_id="c-1", symbol="XYZ", order_id=0, orig_cl_ord_id="a-1"),
    Replace: Replace(cl_ord_id="r-1", symbol="BTC-USD", qty="0.75", price="65000.5", order_id=9),
    Recover: Recover(from_rseq=17, limit=250),
    Query: Query(req_id="q-1", what="book", symbol="XYZ", depth=5),
    KillSwitch: KillSwitch(cl_ord_id="k-1", account="bob", mode="reduce_only"),
    LogonAck: LogonAck(
        account="alice",
        session_id="7f3a",
        heartbeat_ms=2_500,
        next_rseq=18,
        operator=True,
        cancel_on_disconnect=True,
        rate="20",
        burst="10",
        max_order_qty="0.5",
        max_notional="150000.25",
        collar_pct="7.5",
    ),
    LoggedOut: LoggedOut(reason="heartbeat", text="nothing received for 3 intervals"),
    Ack: Ack(
        cl_ord_id="a-2",
        order_id=17,
        symbol="XYZ",
        side="buy",
        ord_type="market",
        tif="fok",
        price=None,
        qty="3",
        seq=41,
        ts=NS,
        rseq=0,
        resent=True,
    ),
    Reject: Reject(
        cl_ord_id="a-3",
        ref_type="new_order",
        reason=int(Reason.MAX_POSITION),
        reason_name="MAX_POSITION",
        text="max_position 100 lots in XYZ: could reach 104",
        seq=46,
        rseq=9,
        resent=False,
    ),
    Fill: Fill(
        order_id=17,
        cl_ord_id="a-1",
        symbol="XYZ",
        side="buy",
        price="101.5",
        qty="4",
        leaves="6",
        trade_id=7,
        liquidity="maker",
        seq=42,
        ts=NS + 1,
        rseq=5,
    ),
    Cancelled: Cancelled(
        order_id=17,
        cl_ord_id="a-1",
        orig_cl_ord_id="a-1",
        symbol="XYZ",
        side="buy",
        qty="6",
        reason="kill",
        seq=43,
        ts=NS + 2,
        rseq=7,
        resent=False,
    ),
    Expired: Expired(
        order_id=18,
        cl_ord_id="b-9",
        symbol="XYZ",
        side="sell",
        qty="1",
        reason="market",
        seq=44,
        ts=NS + 3,
        rseq=8,
    ),
    Replaced: Replaced(
        order_id=17,
        cl_ord_id="r-4",
        orig_cl_ord_id="a-1",
        symbol="XYZ",
        side="buy",
        price="101.4",
        qty="8",
        leaves="4",
        kept_priority=False,
        seq=45,
        ts=NS + 4,
        rseq=0,
        resent=True,
    ),
    KillSwitchSet: KillSwitchSet(
        cl_ord_id="k-1",
        account="bob",
        mode="block",
        cancelled=3,
        seq=47,
        ts=NS + 5,
        rseq=12,
        resent=False,
    ),
    Recovered: Recovered(from_rseq=5, to_rseq=9, last_rseq=12),
    Orders: Orders(
        req_id="q-1",
        orders=[
            OrderInfo(
                order_id=17,
                cl_ord_id="a-1",
                symbol="XYZ",
                side="buy",
                price="101.5",
                qty="10",
                leaves="6",
                filled="4",
            ),
            OrderInfo(
                order_id=23,
                cl_ord_id="a-9",
                symbol="BTC-USD",
                side="sell",
                price="65000.5",
                qty="0.002",
                leaves="0.002",
                filled="0",
            ),
        ],
        seq=47,
    ),
    Positions: Positions(
        req_id="q-2",
        cash="-1234.5",
        positions=[
            PositionInfo(symbol="BTC-USD", qty="0.25", bought="0.25", sold="0"),
            PositionInfo(symbol="XYZ", qty="-3", bought="2", sold="5"),
        ],
        open_orders=2,
        kill_switch="reduce_only",
        seq=48,
    ),
    Book: Book(
        req_id="q-3",
        symbol="XYZ",
        bids=[
            Level(price="101.5", qty="6", orders=1),
            Level(price="101.4", qty="250", orders=12),
        ],
        asks=[Level(price="102", qty="2", orders=1)],
        seq=49,
    ),
}
# The array fields whose elements are maps: (message, field) -> the element's Struct.
ARRAYS: dict[tuple[type, str], type] = {
    (Orders, "orders"): OrderInfo,
    (Positions, "positions"): PositionInfo,
    (Book, "bids"): Level,
    (Book, "asks"): Level,
}


def tag_of(cls: type) -> str:
    return cls.__struct_config__.tag


def field_names(cls: type) -> list[str]:
    return [f.name for f in msgspec.structs.fields(cls)]


def decoder_for(cls: type):
    return decode_request if cls in messages.REQUESTS else decode_report


def plain(value):
    """``value`` as plain data: a client message Struct (or element) as a dict of its fields."""
    if isinstance(value, msgspec.Struct):
        return {n: plain(getattr(value, n)) for n in field_names(type(value))}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def assert_same_types(got, want, where: str) -> None:
    """Equal is not enough: 1 == 1.0 == True; the wire types must be the same too."""
    assert type(got) is type(want), f"{where}: {type(got).__name__} vs {type(want).__name__}"
    if isinstance(want, dict):
        assert set(got) == set(want), where
        for k in want:
            assert_same_types(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_types(g, w, f"{where}[{i}]")


def _field(cls: type, name: str) -> msgspec.structs.FieldInfo:
    return next(f for f in msgspec.structs.fields(cls) if f.name == name)


def _element_struct(tp) -> type | None:
    """The Struct a ``list[Struct]`` annotation holds, else None."""
    if typing.get_origin(tp) is list:
        (arg,) = typing.get_args(tp)
        if isinstance(arg, type) and issubclass(arg, msgspec.Struct):
            return arg
    return None


def test_every_message_has_a_sample():
    assert set(SAMPLES) == set(messages.ALL)
    assert set(messages.ALL) == set(messages.REQUESTS) | set(messages.REPORTS)


def test_every_array_of_maps_is_known_and_sampled():
    """Each list-of-maps field of a message is in ARRAYS, and its sample has elements."""
    found = {}
    for cls in messages.ALL:
        for f in msgspec.structs.fields(cls):
            item = _element_struct(f.type)
            if item is not None:
                found[(cls, f.name)] = item
    assert found == ARRAYS
    for (cls, name), item in ARRAYS.items():
        elements = getattr(SAMPLES[cls], name)
        assert elements and all(type(e) is item for e in elements)


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
        assert wire[name] == plain(getattr(msg, name)), name
        assert_same_types(wire[name], plain(getattr(msg, name)), name)


@pytest.mark.parametrize("cls", messages.ALL, ids=tag_of)
def test_zex_encoding_decodes_back_with_zex(cls):
    msg = SAMPLES[cls]
    assert decoder_for(cls)(encode(msg)) == msg


@pytest.mark.parametrize("cls", messages.ALL, ids=tag_of)
def test_plain_msgpack_rewrite_decodes_back_with_zex(cls):
    """Read with plain msgpack, written again with plain msgpack: still the same message."""
    msg = SAMPLES[cls]
    wire = msgpack.unpackb(encode(msg), raw=False)
    assert decoder_for(cls)(msgpack.packb(wire, use_bin_type=True)) == msg


def test_heartbeat_is_both_a_request_and_a_report():
    frame = encode(Heartbeat(next_seq=5))
    assert decode_request(frame) == decode_report(frame) == Heartbeat(next_seq=5)


# ------------------------------------------------- hand-written maps -> zex
# Written from SPEC.md section 4, the way a client in another language would.

HAND: list[tuple[dict, type, dict]] = [
    # (map as sent, expected class, expected field values after decoding)
    (
        {"type": "logon", "v": 1, "account": "bob"},
        Logon,
        {"account": "bob", "credential": "", "heartbeat_ms": 1000},
    ),
    ({"type": "heartbeat", "v": 1}, Heartbeat, {"next_seq": 0}),
    ({"type": "logout", "v": 1}, Logout, {}),
    ({"type": "recover", "v": 1, "from_rseq": 1}, Recover, {"from_rseq": 1, "limit": 1000}),
    ({"type": "recover", "v": 1, "from_rseq": 2**63 - 1, "limit": 10_000}, Recover, {}),
    (
        {"type": "query", "v": 1, "req_id": "", "what": "positions"},
        Query,
        {"req_id": "", "what": "positions", "symbol": "", "depth": 10},
    ),
    (
        {
            "type": "query",
            "v": 1,
            "req_id": "q" * 36,
            "what": "orders",
            "symbol": "S" * 16,
            "depth": 1000,
        },
        Query,
        {},
    ),
    (
        {"type": "kill_switch", "v": 1, "cl_ord_id": "k1", "account": "bob", "mode": "off"},
        KillSwitch,
        {},
    ),
    (
        {
            "type": "new_order",
            "v": 1,
            "cl_ord_id": "x1",
            "symbol": "XYZ",
            "side": "buy",
            "qty": "5",
            "price": "10.5",
        },
        NewOrder,
        {
            "cl_ord_id": "x1",
            "symbol": "XYZ",
            "side": "buy",
            "qty": "5",
            "price": "10.5",
            "ord_type": "limit",
            "tif": None,
            "post_only": False,
            "stp": "cancel_newest",
        },
    ),
    (
        {
            "v": 1,
            "stp": "none",
            "tif": "fok",
            "ord_type": "market",
            "price": None,
            "qty": "0.001",
            "side": "sell",
            "symbol": "BTC-USD",
            "cl_ord_id": "x" * 36,
            "post_only": False,
            "type": "new_order",
        },  # key order is not significant
        NewOrder,
        {
            "cl_ord_id": "x" * 36,
            "symbol": "BTC-USD",
            "side": "sell",
            "qty": "0.001",
            "price": None,
            "ord_type": "market",
            "tif": "fok",
            "stp": "none",
        },
    ),
    (
        {"type": "cancel", "v": 1, "cl_ord_id": "c9", "symbol": "XYZ", "order_id": 2**63 - 1},
        Cancel,
        {"cl_ord_id": "c9", "symbol": "XYZ", "order_id": 2**63 - 1, "orig_cl_ord_id": ""},
    ),
    (
        {"type": "cancel", "v": 1, "cl_ord_id": "c10", "symbol": "XYZ", "orig_cl_ord_id": "x1"},
        Cancel,
        {"order_id": 0, "orig_cl_ord_id": "x1"},
    ),
    (
        {"type": "cancel", "v": 1, "cl_ord_id": "c11", "symbol": "XYZ", "orig_cl_ord_id": "o" * 36},
        Cancel,
        {"order_id": 0},
    ),
    (
        {
            "type": "replace",
            "v": 1,
            "cl_ord_id": "r1",
            "symbol": "XYZ",
            "order_id": 3,
            "qty": "7",
            "price": "10.25",
        },
        Replace,
        {"order_id": 3, "qty": "7", "price": "10.25", "orig_cl_ord_id": ""},
    ),
    (
        {"type": "logon_ack", "v": 1, "account": "bob", "session_id": "s-1", "heartbeat_ms": 500},
        LogonAck,
        {
            "account": "bob",
            "session_id": "s-1",
            "heartbeat_ms": 500,
            "next_rseq": 1,
            "operator": False,
            "cancel_on_disconnect": False,
            "rate": None,
            "burst": None,
            "max_order_qty": None,
            "max_notional": None,
            "collar_pct": None,
        },
    ),
    (
        {
            "type": "logon_ack",
            "v": 1,
            "account": "bob",
            "session_id": "s-2",
            "heartbeat_ms": 500,
            "next_rseq": 77,
            "operator": True,
            "cancel_on_disconnect": True,
            "rate": "0.5",
            "burst": "1",
            "max_order_qty": "0.001",
            "max_notional": None,
            "collar_pct": "12.5",
        },
        LogonAck,
        {},
    ),
    ({"type": "logged_out", "v": 1, "reason": "logout"}, LoggedOut, {"text": ""}),
    ({"type": "logged_out", "v": 1, "reason": "replaced", "text": "x"}, LoggedOut, {}),
    ({"type": "heartbeat", "v": 1, "next_seq": 99}, Heartbeat, {"next_seq": 99}),
    (
        {
            "type": "ack",
            "v": 1,
            "cl_ord_id": "x1",
            "order_id": 1,
            "symbol": "XYZ",
            "side": "buy",
            "ord_type": "limit",
            "tif": "gtc",
            "price": "10.5",
            "qty": "5",
            "seq": 1,
            "ts": NS,
        },
        Ack,
        {"order_id": 1, "price": "10.5", "seq": 1, "ts": NS, "rseq": 0, "resent": False},
    ),
    (
        {
            "type": "ack",
            "v": 1,
            "cl_ord_id": "x2",
            "order_id": 2,
            "symbol": "XYZ",
            "side": "sell",
            "ord_type": "market",
            "tif": "ioc",
            "price": None,
            "qty": "5",
            "seq": 2,
            "ts": NS,
            "rseq": 0,
            "resent": True,
        },
        Ack,
        {"price": None, "resent": True, "ord_type": "market"},
    ),
    (
        {
            "type": "reject",
            "v": 1,
            "cl_ord_id": "",
            "ref_type": "",
            "reason": 100,
            "reason_name": "MALFORMED",
            "text": "frame is not a MessagePack map",
        },
        Reject,
        {"reason": 100, "seq": 0, "rseq": 0, "resent": False},
    ),
    (
        {
            "type": "reject",
            "v": 1,
            "cl_ord_id": "x9",
            "ref_type": "new_order",
            "reason": 407,
            "reason_name": "CREDIT_LIMIT",
            "text": "credit 1000",
            "seq": 12,
            "rseq": 4,
        },
        Reject,
        {"resent": False},
    ),
    (
        {
            "type": "fill",
            "v": 1,
            "order_id": 1,
            "cl_ord_id": "x1",
            "symbol": "XYZ",
            "side": "buy",
            "price": "10.5",
            "qty": "2",
            "leaves": "3",
            "trade_id": 1,
            "liquidity": "taker",
            "seq": 3,
            "ts": NS,
        },
        Fill,
        {"leaves": "3", "liquidity": "taker", "trade_id": 1, "rseq": 0},
    ),
    (
        {
            "type": "fill",
            "v": 1,
            "order_id": 1,
            "cl_ord_id": "x1",
            "symbol": "XYZ",
            "side": "buy",
            "price": "10.5",
            "qty": "1",
            "leaves": "2",
            "trade_id": 2,
            "liquidity": "maker",
            "seq": 4,
            "ts": NS,
            "rseq": 3,
        },
        Fill,
        {},
    ),
    (
        {
            "type": "cancelled",
            "v": 1,
            "order_id": 1,
            "cl_ord_id": "c1",
            "orig_cl_ord_id": "x1",
            "symbol": "XYZ",
            "side": "buy",
            "qty": "3",
            "reason": "user",
            "seq": 4,
            "ts": NS,
        },
        Cancelled,
        {"qty": "3", "reason": "user", "rseq": 0, "resent": False},
    ),
    (
        {
            "type": "cancelled",
            "v": 1,
            "order_id": 2,
            "cl_ord_id": "x2",
            "orig_cl_ord_id": "x2",
            "symbol": "XYZ",
            "side": "sell",
            "qty": "1",
            "reason": "disconnect",
            "seq": 9,
            "ts": NS,
            "rseq": 6,
            "resent": False,
        },
        Cancelled,
        {},
    ),
    (
        {
            "type": "expired",
            "v": 1,
            "order_id": 5,
            "cl_ord_id": "x5",
            "symbol": "XYZ",
            "side": "sell",
            "qty": "1",
            "reason": "fok",
            "seq": 5,
            "ts": NS,
        },
        Expired,
        {"reason": "fok", "rseq": 0},
    ),
    (
        {
            "type": "replaced",
            "v": 1,
            "order_id": 1,
            "cl_ord_id": "r1",
            "orig_cl_ord_id": "x1",
            "symbol": "XYZ",
            "side": "buy",
            "price": "10.5",
            "qty": "4",
            "leaves": "2",
            "kept_priority": True,
            "seq": 6,
            "ts": NS,
        },
        Replaced,
        {"kept_priority": True, "leaves": "2", "rseq": 0, "resent": False},
    ),
    (
        {
            "type": "kill_switch_set",
            "v": 1,
            "cl_ord_id": "k1",
            "account": "bob",
            "mode": "block",
            "cancelled": 0,
            "seq": 10,
            "ts": NS,
        },
        KillSwitchSet,
        {"rseq": 0, "resent": False},
    ),
    ({"type": "recovered", "v": 1, "from_rseq": 7, "to_rseq": 6, "last_rseq": 6}, Recovered, {}),
    ({"type": "orders", "v": 1, "req_id": "q1", "orders": [], "seq": 0}, Orders, {}),
    (
        {
            "type": "orders",
            "v": 1,
            "req_id": "q2",
            "seq": 11,
            "orders": [
                {
                    "order_id": 3,
                    "cl_ord_id": "x3",
                    "symbol": "XYZ",
                    "side": "sell",
                    "price": "10.5",
                    "qty": "4",
                    "leaves": "1",
                    "filled": "3",
                    "later": True,
                }
            ],
        },  # unknown keys ignored
        Orders,
        {
            "orders": [
                {
                    "order_id": 3,
                    "cl_ord_id": "x3",
                    "symbol": "XYZ",
                    "side": "sell",
                    "price": "10.5",
                    "qty": "4",
                    "leaves": "1",
                    "filled": "3",
                }
            ]
        },
    ),
    (
        {
            "type": "positions",
            "v": 1,
            "req_id": "q3",
            "cash": "-0.5",
            "open_orders": 0,
            "kill_switch": "off",
            "seq": 11,
            "positions": [{"symbol": "XYZ", "qty": "-2", "bought": "1", "sold": "3"}],
        },
        Positions,
        {},
    ),
    (
        {
            "type": "book",
            "v": 1,
            "req_id": "q4",
            "symbol": "XYZ",
            "seq": 12,
            "asks": [],
            "bids": [
                {"price": "10.5", "qty": "3", "orders": 2},
                {"price": "10", "qty": "1", "orders": 1},
            ],
        },
        Book,
        {},
    ),
]


@pytest.mark.parametrize(
    "wire,cls,expected", HAND, ids=[f"{c.__name__}-{i}" for i, (_, c, _) in enumerate(HAND)]
)
def test_hand_written_map_decodes_with_zex(wire, cls, expected):
    msg = decoder_for(cls)(msgpack.packb(wire, use_bin_type=True))
    assert type(msg) is cls
    assert msg.v == 1
    sent = {k: v for k, v in wire.items() if k not in ("type", "v")}
    for name, value in {**sent, **expected}.items():
        assert plain(getattr(msg, name)) == value, name
    fields = set(field_names(cls))
    assert fields <= {*sent, *expected, "v"}, "every field is sent or its default checked"


def test_every_message_type_has_a_hand_written_map():
    assert {cls for _, cls, _ in HAND} == set(messages.ALL)


def test_unknown_fields_are_ignored_both_ways():
    extra = {
        "type": "new_order",
        "v": 1,
        "cl_ord_id": "x1",
        "symbol": "XYZ",
        "side": "buy",
        "qty": "5",
        "price": "1",
        "future_flag": [1, {"a": None}],
        "zz": b"\x00",
    }
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
    tif=st.sampled_from(["gtc", "ioc", "fok", None]),
    post_only=st.booleans(),
    stp=st.sampled_from(["cancel_newest", "cancel_oldest", "cancel_both", "none"]),
)
fills = st.builds(
    Fill,
    order_id=uint,
    cl_ord_id=text_,
    symbol=text_,
    side=st.sampled_from(["buy", "sell"]),
    price=decimal,
    qty=decimal,
    leaves=decimal,
    trade_id=uint,
    liquidity=st.sampled_from(["maker", "taker"]),
    seq=uint,
    ts=uint,
)


signed = st.from_regex(r"-?[0-9]{1,9}(\.[0-9]{1,9})?", fullmatch=True)
positions = st.builds(
    Positions,
    req_id=st.text(st.characters(codec="utf-8"), max_size=36),
    cash=signed,
    positions=st.lists(
        st.builds(PositionInfo, symbol=text_, qty=signed, bought=decimal, sold=decimal), max_size=5
    ),
    open_orders=uint,
    kill_switch=st.sampled_from(["block", "reduce_only", "off"]),
    seq=uint,
)


@settings(max_examples=100, deadline=None)
@given(msg=positions)
def test_random_positions_agree_with_plain_msgpack(msg):
    wire = msgpack.unpackb(encode(msg))
    assert wire == {"type": "positions", "v": 1, **plain(msg)}
    assert all(set(p) == set(field_names(PositionInfo)) for p in wire["positions"])
    assert decode_report(msgpack.packb(wire)) == msg


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
    if origin is list:
        return "array"
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _annotation_kind(args[0]) + " or nil"
    return {str: "str", int: "int", bool: "bool"}[tp]


def _literal_values(tp) -> tuple[str, ...]:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return typing.get_args(tp) if typing.get_origin(tp) is typing.Literal else ()


def _check_rows(rows: list[spec_text.FieldRow], cls: type, where: str) -> None:
    """Hold one SPEC.md table to one Struct: names, order, required, type, default, range, enum."""
    by_name = {r.name: r for r in rows}
    fields = {f.name: f for f in msgspec.structs.fields(cls) if f.name != "v"}
    assert len(by_name) == len(rows), f"{where}: a field is listed twice"
    assert list(by_name) == list(fields), f"{where}: SPEC.md lists the fields in the class's order"
    for name, f in fields.items():
        row = by_name[name]
        if row.required == "yes":
            assert f.required, f"{where}.{name} is required in SPEC.md but has a default in code"
            assert not row.default, f"{where}.{name} is required but SPEC.md gives a default"
        else:
            assert not f.required, f"{where}.{name} is optional in SPEC.md but required in code"
            assert row.default, f"{where}.{name} is optional but SPEC.md gives no default"
            assert spec_text.spec_default(row.default) == f.default, f"{where}.{name} default"
        kind = _annotation_kind(f.type)
        spec_kind = {"decimal": "str", "decimal or nil": "str or nil"}.get(row.type, row.type)
        assert spec_kind == kind, f"{where}.{name}: SPEC.md says {row.type}, code has {f.type}"
        spec_range = _DECIMAL_RANGE if row.type.startswith("decimal") else _spec_range(row.range)
        assert spec_range == _code_range(f.type), f"{where}.{name}: range {row.range!r}"
        values = _literal_values(f.type)
        quoted = set(re.findall(r'`"([^"`]*)"`', row.note))
        if values and row.range is not None:  # a request: the cell lists exactly the values
            assert quoted == set(values), f"{where}.{name}: SPEC.md lists {quoted}, code {values}"
        elif values:  # a report: the meaning names every value
            missing = set(values) - quoted
            assert not missing, f"{where}.{name}: SPEC.md does not name {missing}"


@pytest.mark.parametrize("cls", messages.ALL, ids=tag_of)
def test_spec_field_table_matches_the_message_class(cls):
    tables = spec_text.message_tables()
    assert tag_of(cls) in tables, f"SPEC.md section 4 has no section for {tag_of(cls)}"
    _check_rows(tables[tag_of(cls)], cls, tag_of(cls))


def test_spec_has_a_section_for_every_message_and_no_other():
    assert set(spec_text.message_tables()) == {tag_of(c) for c in messages.ALL}


@pytest.mark.parametrize("cls,name", list(ARRAYS), ids=lambda x: getattr(x, "__name__", x))
def test_spec_element_table_matches_the_item_struct(cls, name):
    item = ARRAYS[(cls, name)]
    tables = spec_text.element_tables()
    key = (tag_of(cls), name)
    assert key in tables, f"SPEC.md section for {tag_of(cls)} has no element table for {name}"
    _check_rows(tables[key], item, f"{tag_of(cls)}.{name}[]")


def test_spec_element_tables_belong_to_array_fields():
    arrays = {(tag_of(cls), name) for cls, name in ARRAYS}
    assert set(spec_text.element_tables()) == arrays


def test_spec_headings_say_request_or_report():
    kinds = spec_text.message_kinds()
    for cls in messages.ALL:
        want = {(True, False): "request", (False, True): "report", (True, True): "both ways"}[
            (cls in messages.REQUESTS, cls in messages.REPORTS)
        ]
        assert kinds[tag_of(cls)] == want, tag_of(cls)


# SPEC.md section 4: '"decimal" means a str following §3 (1..32 characters)'
_DECIMAL_RANGE = tuple(
    int(x)
    for x in re.search(
        r'"decimal"\s+means a str following §3 \((\d+)\.\.(\d+) characters\)', spec_text.text()
    ).groups()
)


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


def test_spec_enum_checks_can_fail():
    """The enum check above sees a missing value: drop one from a copied row and it must object."""
    row = next(r for r in spec_text.message_tables()["cancelled"] if r.name == "reason")
    broken = [
        r
        if r.name != "reason"
        else spec_text.FieldRow(
            r.name,
            r.type,
            r.required,
            r.default,
            r.range,
            r.note.replace('`"disconnect"`', "disconnect"),
        )
        for r in spec_text.message_tables()["cancelled"]
    ]
    assert '`"disconnect"`' in row.note
    with pytest.raises(AssertionError, match="disconnect"):
        _check_rows(broken, Cancelled, "cancelled")


def test_spec_example_bytes_decode_to_the_example_logon():
    frame = spec_text.example_bytes()
    assert decode_request(frame) == Logon(account="alice", credential="s3cret", heartbeat_ms=1000)
    first = spec_text.example_messages()[0][1]
    assert msgpack.packb(first) == frame


def test_spec_example_session_decodes():
    """Every complete map in the example decodes; a refused request gets the reject after it."""
    xyz = Instrument(
        "XYZ", tick="0.01", lot="1", min_price="0.01", max_price="10000", max_qty="100000"
    )
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


def test_spec_example_reports_are_complete():
    """A report map in the example that is not abridged has every field the gateway sends."""
    for kind, wire in spec_text.example_messages():
        if kind != "report":
            continue
        cls = type(decode_report(msgpack.packb(wire)))
        assert set(wire) == {"type", "v", *field_names(cls)}, wire["type"]
        for (owner, name), item in ARRAYS.items():
            if owner is cls:
                for element in wire[name]:
                    assert set(element) == set(field_names(item)), name


def test_spec_example_follows_the_report_sequence_rules():
    """Alice's side of the example obeys SPEC.md 7.2 and 7.3, as a client would check it."""
    flow = [(src, dst, m) for src, dst, m in spec_text.example_flow() if "A" in (src, dst)]
    applied = 0  # R: the last rseq Alice applied
    must_recover = None
    next_rseq = 1
    for src, _, m in flow:
        kind = m["type"]
        if src == "A":
            if must_recover is not None:
                assert m == {"type": "recover", "v": 1, "from_rseq": must_recover}
                must_recover = None
            else:
                assert kind != "recover", "a recover with no gap to fill"
            continue
        if kind == "logon_ack":
            assert m["next_rseq"] >= applied + 1
            next_rseq = m["next_rseq"]
            if next_rseq > applied + 1:
                must_recover = applied + 1
        elif kind == "recovered":
            assert m["to_rseq"] == applied and m["last_rseq"] >= m["to_rseq"]
            assert m["last_rseq"] >= next_rseq - 1
        elif kind == "heartbeat":
            assert m["next_seq"] == applied + 1
        elif "rseq" in m:
            if m["rseq"] == 0:  # outside the sequence: refused before sequencing, or a repeat
                assert m.get("seq") == 0 or m.get("resent") is True, m
            else:
                assert m["rseq"] == applied + 1, m
                applied = m["rseq"]
    assert must_recover is None and applied >= 5


# -------------------------------------------------------- internal links

CMD_SAMPLES = {
    internal.NewOrderCmd: internal.NewOrderCmd(
        NS,
        "gw1",
        b"\x00k\x8bEg",
        "alice",
        "a-1",
        "XYZ",
        internal.SELL,
        internal.LIMIT,
        internal.IOC,
        10150,
        10,
        True,
        internal.STP_CANCEL_OLDEST,
    ),
    internal.CancelCmd: internal.CancelCmd(NS, "gw2", b"\x01", "bob", "c-1", "ABC", 0, "b-7"),
    internal.ReplaceCmd: internal.ReplaceCmd(
        NS, "gw1", b"\x02\x03", "alice", "r-1", "XYZ", 10100, 12, 44, ""
    ),
    internal.MassCancelCmd: internal.MassCancelCmd(
        NS, "gw1", b"\x04", "alice", internal.CXL_DISCONNECT
    ),
    internal.KillSwitchCmd: internal.KillSwitchCmd(
        NS, "gw2", b"\x05", "ops", "k-1", "bob", internal.KILL_REDUCE_ONLY
    ),
    internal.LimitsCmd: internal.LimitsCmd(
        NS, "alice", 500, 10_000_000_000, {"BTC-USD": 100_000, "XYZ": 10_000}, "", b""
    ),
    internal.QueryCmd: internal.QueryCmd(
        "gw1", b"\x06", "alice", internal.Q_REPORTS, "", "", 17, 250
    ),
}
EVENT_SAMPLES = {
    internal.Accepted: internal.Accepted(
        7, NS, 3, "alice", "a-1", "XYZ", internal.BUY, internal.MARKET, internal.FOK, 0, 5
    ),
    internal.Rejected: internal.Rejected(
        8, NS, "bob", "c-1", "XYZ", 2, int(Reason.UNKNOWN_ORDER), "no open order 9"
    ),
    internal.Trade: internal.Trade(
        9, NS, 1, "XYZ", 10150, 4, internal.SELL, 5, "bob", "b-1", 0, 3, "alice", "a-1", 6
    ),
    internal.Cancelled: internal.Cancelled(
        10, NS, 3, "alice", "a-1", "XYZ", internal.BUY, 10150, 6, internal.CXL_USER, "c-3"
    ),
    internal.Expired: internal.Expired(
        11, NS, 5, "bob", "b-1", "XYZ", internal.SELL, 0, 2, internal.EXP_MARKET
    ),
    internal.Replaced: internal.Replaced(
        12, NS, 3, "alice", "a-1", "XYZ", internal.BUY, 10140, 8, 4, False, "r-1"
    ),
    internal.Digest: internal.Digest(13, bytes(range(16))),
    internal.KillSwitchSet: internal.KillSwitchSet(
        14, NS, "ops", "k-1", "bob", internal.KILL_BLOCK, 2
    ),
    internal.LimitsSet: internal.LimitsSet(15, NS, "alice"),
}
ANSWER_SAMPLES = {
    internal.OrdersAnswer: internal.OrdersAnswer(
        15,
        "q-1",
        [
            internal.OpenOrder(3, "a-1", "XYZ", internal.BUY, 10150, 10, 6, 4),
            internal.OpenOrder(8, "a-4", "BTC-USD", internal.SELL, 130001, 2, 2, 0),
        ],
    ),
    internal.PositionsAnswer: internal.PositionsAnswer(
        15,
        "q-2",
        -40600,
        [internal.Position("BTC-USD", 250, 250, 0), internal.Position("XYZ", -3, 2, 5)],
        2,
        internal.KILL_OFF,
    ),
    internal.ReportsAnswer: internal.ReportsAnswer(
        5,
        6,
        9,
        [
            (5, internal.DIRECT_ROLE, EVENT_SAMPLES[internal.Accepted]),
            (6, internal.MAKER_ROLE, EVENT_SAMPLES[internal.Trade]),
        ],
    ),
    internal.BookAnswer: internal.BookAnswer(
        15, "q-3", "XYZ", [(10150, 6, 1), (10140, 250, 12)], [(10200, 2, 1)]
    ),
}
INTERNAL_SAMPLES = [*CMD_SAMPLES.values(), *EVENT_SAMPLES.values(), *ANSWER_SAMPLES.values()]


def internal_plain(value):
    """Return an internal Struct as the plain array of SPEC.md Appendix A: tag (if any), fields."""
    if isinstance(value, msgspec.Struct):
        tag = type(value).__struct_config__.tag
        fields = [internal_plain(getattr(value, n)) for n in field_names(type(value))]
        return fields if tag is None else [tag, *fields]
    if isinstance(value, list | tuple):
        return [internal_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: internal_plain(v) for k, v in value.items()}
    return value


def test_every_internal_type_has_a_sample():
    assert set(CMD_SAMPLES) == set(typing.get_args(internal.Command)) | {internal.QueryCmd}
    assert set(EVENT_SAMPLES) == set(typing.get_args(internal.Event))
    assert set(ANSWER_SAMPLES) == set(typing.get_args(internal.Answer))


def test_queries_are_not_journaled_commands():
    """SPEC.md A.1: QueryCmd takes no seq and is not journaled, so it is no Command."""
    assert internal.QueryCmd not in typing.get_args(internal.Command)
    assert "ts" not in field_names(internal.QueryCmd)
    assert all("ts" in field_names(c) for c in typing.get_args(internal.Command))


@pytest.mark.parametrize("obj", INTERNAL_SAMPLES, ids=lambda o: type(o).__name__)
def test_internal_encoding_is_an_array_tag_first(obj):
    cls = type(obj)
    arr = msgpack.unpackb(internal.encoder.encode(obj), raw=False, strict_map_key=False)
    assert isinstance(arr, list)
    assert arr[0] == cls.__struct_config__.tag and type(arr[0]) is int
    assert arr == internal_plain(obj)
    assert_same_types(arr, internal_plain(obj), cls.__name__)


def _item(payload, rseq: int = 0) -> internal.ReportItem:
    return internal.ReportItem(b"\x00k", "alice", internal.DIRECT_ROLE, rseq, payload)


@pytest.mark.parametrize("obj", INTERNAL_SAMPLES, ids=lambda o: type(o).__name__)
def test_hand_packed_internal_array_decodes(obj):
    cls = type(obj)
    arr = internal_plain(obj)
    if cls in CMD_SAMPLES:
        assert internal.command_decoder.decode(msgpack.packb(arr, use_bin_type=True)) == obj
        return
    if cls in EVENT_SAMPLES:
        assert internal.event_decoder.decode(msgpack.packb(arr, use_bin_type=True)) == obj
    # events and answers reach a gateway as the payload of a report item
    items = [[b"\x00k", "alice", internal.DIRECT_ROLE, 4, arr]]
    assert internal.report_decoder.decode(msgpack.packb(items, use_bin_type=True)) == [
        _item(obj, 4)
    ]


def test_report_frame_round_trips_through_plain_msgpack():
    """SPEC.md A.2: one frame is an array of [client, account, role, rseq, payload]."""
    items = [
        internal.ReportItem(b"\x01", "bob", internal.TAKER_ROLE, 7, EVENT_SAMPLES[internal.Trade]),
        internal.ReportItem(
            b"\x02", "alice", internal.MAKER_ROLE, 3, EVENT_SAMPLES[internal.Trade]
        ),
        internal.ReportItem(
            b"\x02", "alice", internal.RESENT_ROLE, 0, EVENT_SAMPLES[internal.Accepted]
        ),
        internal.ReportItem(
            b"\x03", "alice", internal.DIRECT_ROLE, 0, ANSWER_SAMPLES[internal.ReportsAnswer]
        ),
    ]
    arr = msgpack.unpackb(internal.encoder.encode(items), raw=False)
    assert arr == internal_plain(items)
    assert [len(a) for a in arr] == [5] * len(items)
    assert internal.report_decoder.decode(msgpack.packb(arr, use_bin_type=True)) == items


def test_internal_trailing_defaults_may_be_omitted_and_extra_elements_are_ignored():
    short = [2, NS, "gw2", b"\x01", "bob", "c-1", "ABC"]
    assert internal.command_decoder.decode(msgpack.packb(short)) == internal.CancelCmd(
        NS, "gw2", b"\x01", "bob", "c-1", "ABC"
    )
    limits = [6, NS, "alice"]
    assert internal.command_decoder.decode(msgpack.packb(limits)) == internal.LimitsCmd(
        NS, "alice", None, None, {}, "", b""
    )
    query = [7, "gw1", b"\x06", "alice", internal.Q_ORDERS]
    decoded = internal.command_decoder.decode(msgpack.packb(query))
    assert (decoded.req_id, decoded.symbol, decoded.from_rseq, decoded.limit) == ("", "", 0, 1000)
    cmd = CMD_SAMPLES[internal.NewOrderCmd]
    arr = msgpack.unpackb(internal.encoder.encode(cmd))
    assert internal.command_decoder.decode(msgpack.packb([*arr, "later"])) == cmd


def test_internal_enum_out_of_range_is_refused():
    arr = msgpack.unpackb(internal.encoder.encode(CMD_SAMPLES[internal.NewOrderCmd]))
    arr[7] = 3  # side: only 1 and 2 exist
    with pytest.raises(msgspec.ValidationError):
        internal.command_decoder.decode(msgpack.packb(arr))
    for cls, field in ((internal.KillSwitchCmd, "mode"), (internal.QueryCmd, "what")):
        arr = internal_plain(CMD_SAMPLES[cls])
        arr[1 + field_names(cls).index(field)] = 1 + max(_literal_values(_field(cls, field).type))
        with pytest.raises(msgspec.ValidationError):
            internal.command_decoder.decode(msgpack.packb(arr, use_bin_type=True))


def test_event_batch_round_trips_through_plain_msgpack():
    events = list(EVENT_SAMPLES.values())
    batch = internal.EventBatch(7, 15, events)
    arr = msgpack.unpackb(internal.encoder.encode(batch))
    assert arr[0] == 7 and arr[1] == 15 and len(arr[2]) == len(events)
    assert [e[0] for e in arr[2]] == [type(e).__struct_config__.tag for e in events]
    assert internal.batch_decoder.decode(msgpack.packb(arr)) == batch
    empty = internal.batch_decoder.decode(msgpack.packb([16, 16, []]))
    assert empty == internal.EventBatch(16, 16, [])


def _array_structs() -> list[type]:
    """Every internal array type: the samples' classes and the untagged arrays they contain."""
    return [
        *CMD_SAMPLES,
        *EVENT_SAMPLES,
        *ANSWER_SAMPLES,
        internal.OpenOrder,
        internal.Position,
        internal.ReportItem,
        internal.EventBatch,
        internal.ReplayRequest,
        internal.ReplayChunk,
        internal.AuditRecord,
    ]


def test_audit_record_round_trips_through_plain_msgpack():
    rec = internal.AuditRecord(5, "gw1", "reject", "alice", b"\x00k", "a-7", 202, "off tick")
    assert msgpack.unpackb(internal.encoder.encode(rec)) == [
        40,
        5,
        "gw1",
        "reject",
        "alice",
        b"\x00k",
        "a-7",
        202,
        "off tick",
    ]
    assert internal.audit_decoder.decode(
        msgpack.packb([40, 6, "gw2", "logon"])
    ) == internal.AuditRecord(6, "gw2", "logon")


def test_replay_messages_round_trip_through_plain_msgpack():
    req = internal.ReplayRequest(1, 101, 256)
    assert msgpack.unpackb(internal.encoder.encode(req)) == [30, 1, 101, 256]
    assert internal.replay_request_decoder.decode(
        msgpack.packb([30, 2, 5])
    ) == internal.ReplayRequest(2, 5)
    chunk = internal.ReplayChunk(1, 101, 180, 180, 42, 1)
    assert msgpack.unpackb(internal.encoder.encode(chunk)) == [31, 1, 101, 180, 180, 42, 1]
    assert (
        internal.replay_chunk_decoder.decode(msgpack.packb([31, 1, 101, 180, 180, 42, 1])) == chunk
    )


def test_spec_appendix_lists_internal_fields_in_class_order():
    rows = spec_text.internal_rows()
    for cls in _array_structs():
        assert cls.__name__ in rows, f"SPEC.md Appendix A has no row for {cls.__name__}"
        tag, names = rows[cls.__name__]
        assert tag == cls.__struct_config__.tag, cls.__name__
        assert names == field_names(cls), cls.__name__
    assert set(rows) == {c.__name__ for c in _array_structs()}


def test_spec_appendix_enumerations_match_internal_constants():
    enums = spec_text.internal_enums()
    named = {
        "side": internal.SIDE_NAMES,
        "ord_type": internal.ORD_TYPE_NAMES,
        "tif": internal.TIF_NAMES,
        "stp": internal.STP_NAMES,
        "cancelled reason": internal.CXL_NAMES,
        "expired reason": internal.EXP_NAMES,
        "kill switch mode": internal.KILL_NAMES,
    }
    for name, names in named.items():
        assert enums[name] == names, name
    # Roles and query kinds have constants, not name tables: <WORD>_ROLE and Q_<WORD>.
    roles = {getattr(internal, f"{w.upper()}_ROLE"): w for w in enums["report role"].values()}
    assert roles == enums["report role"]
    assert len({v for k, v in vars(internal).items() if k.endswith("_ROLE")}) == len(roles)
    whats = {getattr(internal, f"Q_{w.upper()}"): w for w in enums["query what"].values()}
    assert whats == enums["query what"]
    assert set(whats) == set(_literal_values(_field(internal.QueryCmd, "what").type))
    assert set(enums) == {*named, "report role", "query what"}


def test_client_enums_and_internal_names_agree():
    """The gateway maps internal codes to client words with these tables: each is a client value."""
    pairs = [
        (internal.SIDE_NAMES, Ack, "side"),
        (internal.ORD_TYPE_NAMES, Ack, "ord_type"),
        (internal.TIF_NAMES, Ack, "tif"),
        (internal.STP_NAMES, NewOrder, "stp"),
        (internal.CXL_NAMES, Cancelled, "reason"),
        (internal.EXP_NAMES, Expired, "reason"),
        (internal.KILL_NAMES, KillSwitchSet, "mode"),
    ]
    for names, cls, field in pairs:
        assert set(names.values()) == set(_literal_values(_field(cls, field).type)), field
