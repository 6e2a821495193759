"""Market-data messages: what the marketdata node publishes and its snapshot service answers.

Public, like protocol.messages: every message is a MessagePack map with
``type`` and ``v``, prices and quantities as decimal strings, so a
subscriber in any language needs only ZeroMQ and MessagePack (SPEC.md §12).

Feed (marketdata PUB -> subscriber SUB), two frames:
    frame 0: topic  b"md.<SYMBOL>.<channel>"   channel: trades | bbo | l2 | l3
    frame 1: one of Trades, Bbo, L2Update, L3Update, MdHeartbeat

Topics are byte prefixes: subscribe to b"md.XYZ.l2" for one channel,
b"md.XYZ." for every channel of XYZ, b"md." for everything. Symbols never
contain ".", so b"md.XYZ." cannot match another symbol.

Every message of one (symbol, channel) carries ``seq``: 1, 2, 3, ... with no
gaps for the trading day. The numbering is a pure function of the matcher's
event stream, so a restarted marketdata node (which rebuilds its books by
replaying that stream) continues it where it was. ``mseq`` is the matcher
sequence number of the command that caused the update; the updates one
command causes on every channel of a symbol go out back to back with the
same ``mseq``.

Snapshots (subscriber DEALER -> marketdata ROUTER), one frame each way:
    SnapshotRequest  ->  Snapshot (l2) | L3Snapshot (l3) | SnapshotReject
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

from .messages import VERSION, DecimalStr, ReqId, Side, Symbol, UInt

Channel = Literal["trades", "bbo", "l2", "l3"]
CHANNELS: tuple[Channel, ...] = ("trades", "bbo", "l2", "l3")
TOPIC_PREFIX = b"md."
HEARTBEAT_MS = 1000  # an idle topic gets an MdHeartbeat this often; 100..5000 is reasonable


def topic(symbol: str, channel: str) -> bytes:
    """The feed topic of one symbol and channel: ``topic("XYZ", "l2") == b"md.XYZ.l2"``."""
    return b"md.%s.%s" % (symbol.encode(), channel.encode())


# Each subclass repeats frozen=True. msgspec inherits it anyway, but type checkers read Struct
# as a dataclass_transform, where a subclass that does not say frozen is a mutable dataclass
# deriving from a frozen one (an error) and its fields would type as assignable.
class MdMessage(Struct, tag_field="type", kw_only=True, frozen=True):
    """Base of every market-data message: the ``type`` tag and the version ``v``."""

    v: int = VERSION


# ------------------------------------------------------------------- feed


class TradeInfo(Struct, kw_only=True, frozen=True):
    """One print. ``aggressor`` is the taker's side."""

    trade_id: UInt
    price: DecimalStr
    qty: DecimalStr
    aggressor: Side


class Trades(MdMessage, tag="trades", frozen=True):
    """The trades one matcher command made in one symbol, in the order they happened."""

    symbol: Symbol
    seq: UInt
    mseq: UInt
    ts: UInt  # ns since the epoch: when the command entered zex
    trades: list[TradeInfo]


class Bbo(MdMessage, tag="bbo", frozen=True):
    """The best bid and offer after a command that changed either (nil: that side is empty)."""

    symbol: Symbol
    seq: UInt
    mseq: UInt
    ts: UInt
    bid_price: DecimalStr | None = None
    bid_qty: DecimalStr | None = None
    ask_price: DecimalStr | None = None
    ask_qty: DecimalStr | None = None


LevelAction = Literal["add", "change", "delete"]
OrderAction = Literal["add", "modify", "delete"]


class LevelChange(Struct, kw_only=True, frozen=True):
    """A price level's new state. ``qty`` "0" and ``orders`` 0 with action delete: the level is gone."""

    action: LevelAction
    side: Side
    price: DecimalStr
    qty: DecimalStr
    orders: UInt


class L2Update(MdMessage, tag="l2", frozen=True):
    """The levels one matcher command changed in one symbol, each in its final state."""

    symbol: Symbol
    seq: UInt
    mseq: UInt
    ts: UInt
    changes: list[LevelChange]


class OrderChange(Struct, kw_only=True, frozen=True):
    """One order in the book.

    add: the order joins the back of its level; modify: its open ``qty``
    changed in place and it keeps its place (a fill or a reduction); delete:
    it left the book (``qty`` "0"). A replace that loses priority is a
    delete then an add of the same ``order_id``.
    """

    action: OrderAction
    order_id: UInt
    side: Side
    price: DecimalStr
    qty: DecimalStr


class L3Update(MdMessage, tag="l3", frozen=True):
    """The order-by-order changes one matcher command made in one symbol, in order."""

    symbol: Symbol
    seq: UInt
    mseq: UInt
    ts: UInt
    changes: list[OrderChange]


class MdHeartbeat(MdMessage, tag="md_heartbeat", frozen=True):
    """Sent on an idle topic: the next update on it will have ``next_seq``."""

    symbol: Symbol
    channel: Channel
    next_seq: UInt
    mseq: UInt  # the last matcher command the feed has applied
    heartbeat_ms: Annotated[int, Meta(ge=1, le=2**63 - 1)] = HEARTBEAT_MS  # this feed's interval


FeedMessage = Trades | Bbo | L2Update | L3Update | MdHeartbeat

# -------------------------------------------------------------- snapshots


class SnapshotRequest(MdMessage, tag="snapshot_request", frozen=True):
    """Ask for the whole book of ``symbol`` (``depth`` 0: every level)."""

    symbol: Symbol
    channel: Literal["l2", "l3"] = "l2"
    depth: Annotated[int, Meta(ge=0, le=100_000)] = 0
    req_id: ReqId = ""


class SnapLevel(Struct, kw_only=True, frozen=True):
    price: DecimalStr
    qty: DecimalStr
    orders: UInt


class SnapOrder(Struct, kw_only=True, frozen=True):
    order_id: UInt
    price: DecimalStr
    qty: DecimalStr


class Snapshot(MdMessage, tag="snapshot", frozen=True):
    """The L2 book of ``symbol`` as it stood after update ``seq`` of its ``l2`` topic.

    A subscriber applies the buffered updates of that topic with a seq above
    ``seq`` and drops the rest (the Clone pattern). ``bids`` and ``asks``
    are levels, best first.
    """

    req_id: ReqId
    symbol: Symbol
    seq: UInt
    mseq: UInt
    bids: list[SnapLevel]
    asks: list[SnapLevel]


class L3Snapshot(MdMessage, tag="l3_snapshot", frozen=True):
    """The orders of ``symbol`` after update ``seq`` of its ``l3`` topic, in priority order
    (best price first, earliest first within a price)."""

    req_id: ReqId
    symbol: Symbol
    seq: UInt
    mseq: UInt
    bids: list[SnapOrder]
    asks: list[SnapOrder]


class SnapshotReject(MdMessage, tag="snapshot_reject", frozen=True):
    """The request could not be answered; ``code`` and ``text`` as in a reject (SPEC.md §5)."""

    req_id: ReqId
    code: int
    text: str


encoder = msgspec.msgpack.Encoder()
feed_decoder = msgspec.msgpack.Decoder(FeedMessage)
snapshot_request_decoder = msgspec.msgpack.Decoder(SnapshotRequest)
snapshot_reply_decoder = msgspec.msgpack.Decoder(Snapshot | L3Snapshot | SnapshotReject)
