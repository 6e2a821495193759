"""Internal links: gateway -> matcher commands, matcher -> everyone events.

Not for clients (they speak protocol.messages). These travel between zex
nodes, so they are compact: MessagePack arrays (msgspec ``array_like``) whose
first element is a small integer tag, with prices in ticks and quantities in
lots. The gateway proved every value already; the matcher decodes with the
same types, so a value of the wrong type still cannot reach a book.

Command frame (gateway DEALER -> matcher ROUTER):
    frame 0: one encoded command (NewOrderCmd | CancelCmd | ReplaceCmd)
Report frames (matcher ROUTER -> gateway DEALER):
    frame 0: gateway routing id (the gateway's configured name)
    frame 1: one encoded ReportBatch: [[client, role, event], ...]  (roles: matcher/book.py)
Event stream (matcher PUB -> subscribers):
    frame 0: b"ev"  (topic)
    frame 1: one encoded EventBatch: first_seq, last_seq, [event, ...]
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import Struct

BUY, SELL = 1, 2
LIMIT, MARKET = 1, 2
GTC, IOC, FOK = 1, 2, 3
STP_NONE, STP_CANCEL_NEWEST, STP_CANCEL_OLDEST, STP_CANCEL_BOTH = 0, 1, 2, 3

# Cancelled.reason / Expired.reason
CXL_USER, CXL_STP = 1, 2
EXP_IOC, EXP_FOK, EXP_MARKET = 1, 2, 3

SIDE_NAMES = {BUY: "buy", SELL: "sell"}
ORD_TYPE_NAMES = {LIMIT: "limit", MARKET: "market"}
TIF_NAMES = {GTC: "gtc", IOC: "ioc", FOK: "fok"}
STP_NAMES = {
    STP_NONE: "none",
    STP_CANCEL_NEWEST: "cancel_newest",
    STP_CANCEL_OLDEST: "cancel_oldest",
    STP_CANCEL_BOTH: "cancel_both",
}
CXL_NAMES = {CXL_USER: "user", CXL_STP: "stp"}
EXP_NAMES = {EXP_IOC: "ioc", EXP_FOK: "fok", EXP_MARKET: "market"}


class _Internal(Struct, array_like=True, frozen=True, tag_field="t"):
    pass


# ---------------------------------------------------------------- commands
# Every command carries where it came from (gateway name, client routing id
# at that gateway) and the time it entered zex (ns since the epoch, stamped
# by the gateway): the matcher never reads a clock, so replay is exact.


class NewOrderCmd(_Internal, tag=1):
    ts: int
    gw: str
    client: bytes
    account: str
    cl_ord_id: str
    symbol: str
    side: Literal[1, 2]
    ord_type: Literal[1, 2]
    tif: Literal[1, 2, 3]
    price: int  # ticks; 0 for market orders
    qty: int  # lots, > 0
    post_only: bool = False
    stp: Literal[0, 1, 2, 3] = STP_CANCEL_NEWEST


class CancelCmd(_Internal, tag=2):
    ts: int
    gw: str
    client: bytes
    account: str
    cl_ord_id: str
    symbol: str
    order_id: int = 0  # 0: look the order up by orig_cl_ord_id
    orig_cl_ord_id: str = ""


class ReplaceCmd(_Internal, tag=3):
    ts: int
    gw: str
    client: bytes
    account: str
    cl_ord_id: str
    symbol: str
    price: int
    qty: int  # new total quantity, filled included (FIX OrderQty semantics)
    order_id: int = 0
    orig_cl_ord_id: str = ""


Command = NewOrderCmd | CancelCmd | ReplaceCmd

# ------------------------------------------------------------------ events
# Every event carries the sequence number of the command that caused it; one
# command may cause several events, all with its seq, in the order they
# happened.


class Accepted(_Internal, tag=10):
    seq: int
    ts: int
    order_id: int
    account: str
    cl_ord_id: str
    symbol: str
    side: int
    ord_type: int
    tif: int
    price: int
    qty: int


class Rejected(_Internal, tag=11):
    seq: int
    ts: int
    account: str
    cl_ord_id: str
    symbol: str
    ref: int  # tag of the rejected command
    reason: int
    text: str


class Trade(_Internal, tag=12):
    seq: int
    ts: int
    trade_id: int
    symbol: str
    price: int
    qty: int
    taker_side: int
    taker_order_id: int
    taker_account: str
    taker_cl_ord_id: str
    taker_leaves: int
    maker_order_id: int
    maker_account: str
    maker_cl_ord_id: str
    maker_leaves: int


class Cancelled(_Internal, tag=13):
    seq: int
    ts: int
    order_id: int
    account: str
    cl_ord_id: str
    symbol: str
    side: int
    price: int
    qty: int  # quantity cancelled (the leaves at that moment)
    reason: int


class Expired(_Internal, tag=14):
    seq: int
    ts: int
    order_id: int
    account: str
    cl_ord_id: str
    symbol: str
    side: int
    price: int
    qty: int
    reason: int


class Replaced(_Internal, tag=15):
    seq: int
    ts: int
    order_id: int
    account: str
    cl_ord_id: str
    symbol: str
    side: int
    price: int
    qty: int  # new total quantity
    leaves: int
    kept_priority: bool


class Digest(_Internal, tag=16):
    """The engine's whole state hashed after command ``seq`` (see engine.digest)."""

    seq: int
    digest: bytes


Event = Accepted | Rejected | Trade | Cancelled | Expired | Replaced | Digest


class EventBatch(Struct, array_like=True, frozen=True):
    first_seq: int
    last_seq: int
    events: list[Event]


encoder = msgspec.msgpack.Encoder()
command_decoder = msgspec.msgpack.Decoder(Command)
event_decoder = msgspec.msgpack.Decoder(Event)
batch_decoder = msgspec.msgpack.Decoder(EventBatch)
