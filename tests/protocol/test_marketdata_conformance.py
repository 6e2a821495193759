"""Conformance of the market-data messages: zex's codec, plain msgpack, and SPEC.md §12.

Every message goes both ways: encoded by zex and read with the plain
``msgpack`` package, and written by hand with ``msgpack.packb`` (as a
subscriber in another language would write it from SPEC.md) and decoded by
zex. The §12.4 field tables are read from SPEC.md and held to the Structs
with the same checks as the client messages' tables of §4.
"""

from __future__ import annotations

import json
import re
import typing

import msgpack
import msgspec
import pytest

from zex.protocol import marketdata as md
from zex.protocol.marketdata import (
    Bbo,
    L2Update,
    L3Snapshot,
    L3Update,
    LevelChange,
    MdHeartbeat,
    OrderChange,
    SnapLevel,
    SnapOrder,
    Snapshot,
    SnapshotReject,
    SnapshotRequest,
    TradeInfo,
    Trades,
)
from zex.protocol.reasons import Reason

from . import spec_text
from .test_conformance import _check_rows, assert_same_types, field_names, plain

NS = 1_764_000_000_623_456_789

SAMPLES: dict[type, md.MdMessage] = {
    Trades: Trades(
        symbol="XYZ",
        seq=7,
        mseq=881,
        ts=NS,
        trades=[
            TradeInfo(trade_id=70, price="101.5", qty="4", aggressor="sell"),
            TradeInfo(trade_id=71, price="101.4", qty="1", aggressor="sell"),
        ],
    ),
    Bbo: Bbo(
        symbol="XYZ",
        seq=9,
        mseq=881,
        ts=NS,
        bid_price="101.4",
        bid_qty="249",
        ask_price=None,
        ask_qty=None,
    ),
    L2Update: L2Update(
        symbol="BTC-USD",
        seq=42,
        mseq=881,
        ts=NS,
        changes=[
            LevelChange(action="change", side="buy", price="65000.5", qty="0.75", orders=3),
            LevelChange(action="delete", side="sell", price="65001", qty="0", orders=0),
            LevelChange(action="add", side="sell", price="65002", qty="0.001", orders=1),
        ],
    ),
    L3Update: L3Update(
        symbol="XYZ",
        seq=43,
        mseq=882,
        ts=NS + 1,
        changes=[
            OrderChange(action="delete", order_id=17, side="buy", price="101.5", qty="0"),
            OrderChange(action="add", order_id=17, side="buy", price="101.4", qty="8"),
            OrderChange(action="modify", order_id=9, side="sell", price="102", qty="1"),
        ],
    ),
    MdHeartbeat: MdHeartbeat(symbol="ABC", channel="l3", next_seq=1, mseq=882),
    SnapshotRequest: SnapshotRequest(symbol="XYZ", channel="l3", depth=5, req_id="s-1"),
    Snapshot: Snapshot(
        req_id="s-2",
        symbol="XYZ",
        seq=41,
        mseq=880,
        bids=[
            SnapLevel(price="101.5", qty="6", orders=1),
            SnapLevel(price="101.4", qty="250", orders=12),
        ],
        asks=[SnapLevel(price="102", qty="2", orders=1)],
    ),
    L3Snapshot: L3Snapshot(
        req_id="",
        symbol="XYZ",
        seq=43,
        mseq=882,
        bids=[SnapOrder(order_id=3, price="101.4", qty="8")],
        asks=[
            SnapOrder(order_id=9, price="102", qty="1"),
            SnapOrder(order_id=11, price="102", qty="1"),
        ],
    ),
    SnapshotReject: SnapshotReject(
        req_id="s-3", code=int(Reason.UNKNOWN_SYMBOL), text="symbol 'QQQ' is not listed"
    ),
}
FEED = tuple(typing.get_args(md.FeedMessage))
REPLIES = (Snapshot, L3Snapshot, SnapshotReject)
# (message, array field) -> the Struct of its map elements
ARRAYS: dict[tuple[type, str], type] = {
    (Trades, "trades"): TradeInfo,
    (L2Update, "changes"): LevelChange,
    (L3Update, "changes"): OrderChange,
    (Snapshot, "bids"): SnapLevel,
    (Snapshot, "asks"): SnapLevel,
    (L3Snapshot, "bids"): SnapOrder,
    (L3Snapshot, "asks"): SnapOrder,
}
ALL = tuple(SAMPLES)


def tag_of(cls: type) -> str:
    return cls.__struct_config__.tag


def decoder_for(cls: type) -> msgspec.msgpack.Decoder:
    if cls in FEED:
        return md.feed_decoder
    if cls in REPLIES:
        return md.snapshot_reply_decoder
    return md.snapshot_request_decoder


def _all_subclasses(cls: type) -> set[type]:
    """zex's own subclasses (a test or fuzz harness may subclass a message for its own use)."""
    out = set()
    for sub in cls.__subclasses__():
        if sub.__module__.startswith("zex."):
            out |= {sub}
        out |= _all_subclasses(sub)
    return out


def test_every_market_data_message_has_a_sample_and_a_decoder():
    assert set(SAMPLES) == _all_subclasses(md.MdMessage)
    assert set(ALL) == set(FEED) | set(REPLIES) | {SnapshotRequest}
    assert len({tag_of(c) for c in ALL}) == len(ALL)


# ------------------------------------------------------ zex -> plain msgpack


@pytest.mark.parametrize("cls", ALL, ids=tag_of)
def test_zex_encoding_reads_as_a_plain_msgpack_map(cls):
    msg = SAMPLES[cls]
    wire = msgpack.unpackb(md.encoder.encode(msg), raw=False, strict_map_key=True)
    want = {"type": tag_of(cls), **plain(msg)}
    assert wire == want
    assert_same_types(wire, want, tag_of(cls))
    assert type(wire["v"]) is int and wire["v"] == 1


@pytest.mark.parametrize("cls", ALL, ids=tag_of)
def test_zex_encoding_decodes_back_with_zex(cls):
    assert decoder_for(cls).decode(md.encoder.encode(SAMPLES[cls])) == SAMPLES[cls]


@pytest.mark.parametrize("cls,name", list(ARRAYS), ids=lambda x: getattr(x, "__name__", x))
def test_array_elements_are_plain_maps_with_the_documented_keys(cls, name):
    wire = msgpack.unpackb(md.encoder.encode(SAMPLES[cls]), raw=False)
    elements = wire[name]
    assert elements, f"the sample of {tag_of(cls)} has no {name}"
    for element in elements:
        assert set(element) == set(field_names(ARRAYS[(cls, name)]))  # no type, no v


# ------------------------------------------------------ plain msgpack -> zex


@pytest.mark.parametrize("cls", ALL, ids=tag_of)
def test_hand_packed_map_decodes_with_zex(cls):
    wire = {"type": tag_of(cls), **plain(SAMPLES[cls])}
    assert decoder_for(cls).decode(msgpack.packb(wire)) == SAMPLES[cls]


def test_key_order_missing_v_defaults_and_unknown_keys():
    """SPEC.md §2: any key order, a missing v is 1, defaults may be omitted, extras ignored."""
    frame = msgpack.packb({"symbol": "XYZ", "type": "snapshot_request", "later": [1, 2]})
    assert md.snapshot_request_decoder.decode(frame) == SnapshotRequest(symbol="XYZ")
    req = md.snapshot_request_decoder.decode(frame)
    assert (req.v, req.channel, req.depth, req.req_id) == (1, "l2", 0, "")
    empty = msgpack.packb({"type": "bbo", "v": 1, "symbol": "XYZ", "seq": 1, "mseq": 5, "ts": NS})
    assert md.feed_decoder.decode(empty) == Bbo(symbol="XYZ", seq=1, mseq=5, ts=NS)
    nil = msgpack.packb(
        {
            "type": "bbo",
            "v": 1,
            "symbol": "XYZ",
            "seq": 1,
            "mseq": 5,
            "ts": NS,
            "bid_price": None,
            "bid_qty": None,
            "ask_price": "9",
            "ask_qty": "1",
        }
    )
    assert md.feed_decoder.decode(nil).bid_price is None


def test_topics_are_the_documented_byte_prefixes():
    assert md.topic("XYZ", "l2") == b"md.XYZ.l2"
    assert md.topic("BTC-USD", "trades") == b"md.BTC-USD.trades"
    assert set(md.CHANNELS) == set(typing.get_args(md.Channel))
    assert md.topic("XYZ", "bbo").startswith(md.TOPIC_PREFIX)
    assert md.topic("XYZW", "l2").startswith(b"md.XYZ")
    assert not md.topic("XYZW", "l2").startswith(b"md.XYZ.")  # why the final dot matters


# ------------------------------------------------------ bad snapshot requests


def _bad(wire: dict) -> str:
    with pytest.raises(msgspec.ValidationError) as err:
        md.snapshot_request_decoder.decode(msgpack.packb(wire))
    return str(err.value)


@pytest.mark.parametrize(
    "field,value",
    [
        ("symbol", 7),
        ("symbol", b"XYZ"),
        ("symbol", None),
        ("channel", 2),
        ("depth", "10"),
        ("depth", 1.0),
        ("req_id", 5),
    ],
)
def test_a_field_of_the_wrong_type_names_the_field(field, value):
    wire = {"type": "snapshot_request", "v": 1, "symbol": "XYZ", field: value}
    assert f"`$.{field}`" in _bad(wire)


@pytest.mark.parametrize(
    "field,value",
    [
        ("symbol", ""),
        ("symbol", "S" * 17),
        ("channel", "bbo"),
        ("channel", "trades"),
        ("depth", -1),
        ("depth", 100_001),
        ("req_id", "r" * 37),
    ],
)
def test_a_value_out_of_range_names_the_field(field, value):
    wire = {"type": "snapshot_request", "v": 1, "symbol": "XYZ", field: value}
    assert f"`$.{field}`" in _bad(wire)


def test_a_missing_symbol_names_the_field():
    assert "missing required field `symbol`" in _bad({"type": "snapshot_request", "v": 1})


def test_a_wrong_type_tag_is_refused():
    assert "`$.type`" in _bad({"type": "snapshot", "v": 1, "symbol": "XYZ"})
    assert "`$.type`" in _bad({"type": None, "v": 1, "symbol": "XYZ"})
    assert "`$.type`" in _bad({"type": 1, "v": 1, "symbol": "XYZ"})


def test_replies_and_feed_messages_refuse_bad_fields_too():
    wire = {"type": "snapshot", **plain(SAMPLES[Snapshot])}
    wire["bids"] = [{"price": "1", "qty": "1"}]  # orders missing
    with pytest.raises(msgspec.ValidationError, match=r"`orders`.*`\$\.bids\[0\]`"):
        md.snapshot_reply_decoder.decode(msgpack.packb(wire))
    hb = {
        "type": "md_heartbeat",
        "v": 1,
        "symbol": "XYZ",
        "channel": "l1",
        "next_seq": 1,
        "mseq": 0,
    }
    with pytest.raises(msgspec.ValidationError, match=r"`\$\.channel`"):
        md.feed_decoder.decode(msgpack.packb(hb))
    change = {"type": "l2", **plain(SAMPLES[L2Update])}
    change["changes"][0]["action"] = "modify"  # an l3 action on l2
    with pytest.raises(msgspec.ValidationError, match=r"`\$\.changes\[0\]\.action`"):
        md.feed_decoder.decode(msgpack.packb(change))


# ---------------------------------------------------------- SPEC.md §12 itself

_HEADING = re.compile(r"^#### 12\.4\.\d+ (\w+) \(([^)]*)\)", re.M)


def _sections() -> list[tuple[str, str, str]]:
    """(type tag, kind, section text) for each "#### 12.4.N <tag> (<kind>)" of SPEC.md."""
    body = spec_text._section(spec_text.text(), "## 12. Market data", "\n## ")
    out = []
    for m in _HEADING.finditer(body):
        chunk = body[m.end() :]
        nxt = re.search(r"^#{3,4} ", chunk, re.M)
        out.append((m.group(1), m.group(2), chunk if nxt is None else chunk[: nxt.start()]))
    return out


def _tables() -> tuple[
    dict[str, list[spec_text.FieldRow]], dict[tuple[str, str], list[spec_text.FieldRow]]
]:
    main: dict[str, list[spec_text.FieldRow]] = {}
    elements: dict[tuple[str, str], list[spec_text.FieldRow]] = {}
    for tag, _, chunk in _sections():
        for intro, header, rows in spec_text._tables(chunk):
            m = spec_text._ELEMENT.match(intro)
            if m:
                for name in re.findall(r"`(\w+)`", m.group(1)):
                    elements[(tag, name)] = spec_text._field_rows(header, rows)
            else:
                assert tag not in main, f"SPEC.md §12.4 has two field tables for {tag}"
                main[tag] = spec_text._field_rows(header, rows)
    return main, elements


def test_spec_has_a_section_for_every_market_data_message_and_no_other():
    kinds = {tag: kind for tag, kind, _ in _sections()}
    want = (
        {tag_of(c): "feed" for c in FEED}
        | {tag_of(c): "reply" for c in REPLIES}
        | {tag_of(SnapshotRequest): "request"}
    )
    assert kinds == want


@pytest.mark.parametrize("cls", ALL, ids=tag_of)
def test_spec_field_table_matches_the_message_class(cls):
    main, _ = _tables()
    _check_rows(main[tag_of(cls)], cls, tag_of(cls))


@pytest.mark.parametrize("cls,name", list(ARRAYS), ids=lambda x: getattr(x, "__name__", x))
def test_spec_element_table_matches_the_item_struct(cls, name):
    _, elements = _tables()
    key = (tag_of(cls), name)
    assert key in elements, f"SPEC.md §12.4 for {tag_of(cls)} has no element table for {name}"
    _check_rows(elements[key], ARRAYS[(cls, name)], f"{tag_of(cls)}.{name}[]")


def test_spec_element_tables_belong_to_array_fields():
    _, elements = _tables()
    assert set(elements) == {(tag_of(cls), name) for cls, name in ARRAYS}


def test_spec_names_the_constants_of_the_code():
    body = spec_text._section(spec_text.text(), "## 12. Market data", "\n## ")
    assert f"`HEARTBEAT_MS`\n   (**{md.HEARTBEAT_MS} ms** unless" in body
    topics = re.findall(r"^\| `(\w+)` +\| `md\.<SYMBOL>\.(\w+)`", body, re.M)
    assert [c for c, _ in topics] == list(md.CHANNELS)
    assert all(c == t for c, t in topics)
    assert "tcp://127.0.0.1:7104" in body and "tcp://127.0.0.1:7105" in body


def test_spec_snapshot_example_decodes():
    """The §12.5 example: every map decodes, and its arithmetic holds."""
    body = spec_text._section(spec_text.text(), "### 12.5", "### 12.6")
    block = body[body.index("```") + 3 :]
    block = block[: block.index("```")]
    maps = [
        json.loads(m)
        for m in re.findall(r"(\{.*?\})\s*$", block, re.M | re.S)
        if m.count("{") == m.count("}")
    ]
    frames = [msgpack.packb(m) for m in maps]
    hb, req, update, snap = (
        md.feed_decoder.decode(frames[0]),
        md.snapshot_request_decoder.decode(frames[1]),
        md.feed_decoder.decode(frames[2]),
        md.snapshot_reply_decoder.decode(frames[3]),
    )
    assert isinstance(hb, MdHeartbeat) and isinstance(update, L2Update)
    assert isinstance(snap, Snapshot) and snap.req_id == req.req_id
    assert snap.seq >= hb.next_seq - 1 and update.seq == snap.seq + 1
