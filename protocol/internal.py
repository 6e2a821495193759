"""Internal links: gateway -> matcher commands, matcher -> everyone events.

Not for clients (they speak protocol.messages). These travel between zex
nodes, so they are compact: MessagePack arrays (msgspec ``array_like``) whose
first element is a small integer tag, with prices in ticks and quantities in
lots. The gateway proved every value already; the matcher decodes with the
same types, so a value of the wrong type still cannot reach a book.

Command frame (gateway DEALER -> matcher ROUTER):
    frame 0: one encoded Command (journaled) or QueryCmd (answered, not journaled)
Report frames (matcher ROUTER -> gateway DEALER):
    frame 0: gateway routing id (the gateway's configured name)
    frame 1: one encoded list of report items, each
             [client (bin), account (str), role (int), rseq (int), payload]
             where payload is an Event or an Answer (roles: matcher/book.py;
             rseq is the account's report sequence, 0 when not in it)
Event stream (matcher PUB -> subscribers):
    frame 0: b"ev"  (topic)
    frame 1: one encoded EventBatch: first_seq, last_seq, [event, ...]
  or, after a quiet heartbeat interval:
    frame 0: b"hb"
    frame 1: int, the last seq the matcher has published
Replay service (consumer DEALER -> matcher-side ROUTER):
    request  frame 0: one encoded ReplayRequest
    reply    frame 0: one encoded ReplayChunk; frames 1..n: EventBatches,
             exactly the bytes the event stream carried
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
CXL_USER, CXL_STP, CXL_KILL, CXL_DISCONNECT = 1, 2, 3, 4
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
CXL_NAMES = {CXL_USER: "user", CXL_STP: "stp", CXL_KILL: "kill", CXL_DISCONNECT: "disconnect"}

# Report roles (ReportItem.role): why a session gets a payload. DIRECT answers
# the request's sender; TAKER/MAKER say which side of a Trade the account was;
# OWNER is an unsolicited report about the account's order or account;
# RESENT repeats a first answer (rseq 0).
DIRECT_ROLE, TAKER_ROLE, MAKER_ROLE, OWNER_ROLE, RESENT_ROLE = 0, 1, 2, 3, 4

# Kill switch modes (KillSwitchCmd.mode, account state)
KILL_OFF, KILL_BLOCK, KILL_REDUCE_ONLY = 0, 1, 2
KILL_NAMES = {KILL_OFF: "off", KILL_BLOCK: "block", KILL_REDUCE_ONLY: "reduce_only"}

# QueryCmd.what
Q_ORDERS, Q_POSITIONS, Q_REPORTS, Q_BOOK = 1, 2, 3, 4
EXP_NAMES = {EXP_IOC: "ioc", EXP_FOK: "fok", EXP_MARKET: "market"}


class _Internal(Struct, array_like=True, frozen=True, tag_field="t", gc=False):
    """gc=False: the garbage collector does not track these. They hold only ints, strings,
    bytes and lists or dicts of those, so they can never be part of a reference cycle, and
    the matcher keeps every event of the day (answers, report logs): tracked, they made each
    full collection walk millions of objects (bench/README.md)."""


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
    price: int  # ticks; for a market order its protection price (0: none)
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


class MassCancelCmd(_Internal, tag=4):
    """Cancel-on-disconnect: cancel the open orders ``account`` entered through session (gw, client)."""

    ts: int
    gw: str
    client: bytes
    account: str
    reason: int  # CXL_DISCONNECT


class KillSwitchCmd(_Internal, tag=5):
    """An operator (``account``) sets ``target``'s kill switch to ``mode``."""

    ts: int
    gw: str
    client: bytes
    account: str
    cl_ord_id: str
    target: str
    mode: Literal[0, 1, 2]


class LimitsCmd(_Internal, tag=6):
    """Set an account's stateful risk limits; None is no limit.

    The matcher journals one itself at start for each account whose limits
    in config differ from its state, so a replay applies the limits that
    were in force when each order arrived.
    """

    ts: int
    account: str
    max_open_orders: int | None = None
    credit: int | None = None  # cash units the account may owe, open buys included
    max_position: dict[str, int] = {}  # symbol -> lots, long or short; absent: no limit
    gw: str = ""
    client: bytes = b""


class QueryCmd(_Internal, tag=7):
    """Read-only: answered from the matcher's state, never journaled or sequenced."""

    gw: str
    client: bytes
    account: str
    what: Literal[1, 2, 3, 4]  # Q_ORDERS, Q_POSITIONS, Q_REPORTS, Q_BOOK (limit = depth)
    req_id: str = ""
    symbol: str = ""
    from_rseq: int = 0
    limit: int = 1000


Command = NewOrderCmd | CancelCmd | ReplaceCmd | MassCancelCmd | KillSwitchCmd | LimitsCmd

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
    req_cl_ord_id: str = ""  # the cancel request's cl_ord_id; "" when unsolicited (stp, kill, disconnect)


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
    req_cl_ord_id: str = ""  # the replace request's cl_ord_id


class KillSwitchSet(_Internal, tag=17):
    seq: int
    ts: int
    account: str  # the operator who set it
    cl_ord_id: str
    target: str
    mode: int
    cancelled: int  # open orders it cancelled


class LimitsSet(_Internal, tag=18):
    seq: int
    ts: int
    account: str


class Digest(_Internal, tag=16):
    """The engine's whole state hashed after command ``seq`` (see engine.digest)."""

    seq: int
    digest: bytes


Event = Accepted | Rejected | Trade | Cancelled | Expired | Replaced | Digest | KillSwitchSet | LimitsSet

# ----------------------------------------------------------------- answers
# Answers to a QueryCmd: read from the matcher's state after command ``seq``.


class OpenOrder(Struct, array_like=True, frozen=True):
    order_id: int
    cl_ord_id: str
    symbol: str
    side: int
    price: int
    qty: int
    leaves: int
    filled: int


class OrdersAnswer(_Internal, tag=20):
    seq: int
    req_id: str
    orders: list[OpenOrder]


class Position(Struct, array_like=True, frozen=True):
    symbol: str
    lots: int  # net, negative is short
    bought: int
    sold: int


class PositionsAnswer(_Internal, tag=21):
    seq: int
    req_id: str
    cash: int  # cash units (see numbers.cash_units)
    positions: list[Position]
    open_orders: int
    kill: int


class ReportsAnswer(_Internal, tag=22):
    """Reports from_rseq..to_rseq of the account, each [rseq, role, event]."""

    from_rseq: int
    to_rseq: int
    last_rseq: int
    reports: list[tuple[int, int, Event]]


class BookAnswer(_Internal, tag=23):
    """Levels of a book, best first: [price ticks, qty lots, orders]."""

    seq: int
    req_id: str
    symbol: str
    bids: list[tuple[int, int, int]]
    asks: list[tuple[int, int, int]]


Answer = OrdersAnswer | PositionsAnswer | ReportsAnswer | BookAnswer


class EventBatch(Struct, array_like=True, frozen=True):
    first_seq: int
    last_seq: int
    events: list[Event]


class ReplayRequest(_Internal, tag=30):
    """Ask for the batches holding commands ``from_seq`` onwards, at most ``max_batches``.

    ``req_id`` comes back in the chunk, so a consumer can tell the answer to
    its current request from a late answer to one it gave up on.
    """

    req_id: int
    from_seq: int
    max_batches: int = 256


class ReplayChunk(_Internal, tag=31):
    """The answer: ``count`` batches follow, covering commands up to ``last_seq``.

    ``head`` is the last seq in the event log. ``count`` 0 with ``last_seq``
    below ``from_seq`` means nothing at or after ``from_seq`` exists yet (or
    any more: ``first`` above ``from_seq`` says the log starts later).
    """

    req_id: int
    from_seq: int
    last_seq: int
    head: int
    count: int
    first: int = 1  # the first seq the log holds


class AuditRecord(_Internal, tag=40):
    """What a node tells the logger that is not in the matcher's event stream.

    ``kind``: logon, logon_failed, logout, session_dropped, reject (refused at
    the gateway, never sequenced), kill_switch (an operator's request). The
    matcher's events reach the logger through the event stream, not this.
    """

    ts: int  # ns since the epoch, when it happened at ``source``
    source: str  # the node that saw it, e.g. the gateway's name
    kind: str
    account: str = ""
    client: bytes = b""
    cl_ord_id: str = ""
    reason: int = 0
    text: str = ""


encoder = msgspec.msgpack.Encoder()
audit_decoder = msgspec.msgpack.Decoder(AuditRecord)
replay_request_decoder = msgspec.msgpack.Decoder(ReplayRequest)
replay_chunk_decoder = msgspec.msgpack.Decoder(ReplayChunk)
command_decoder = msgspec.msgpack.Decoder(Command | QueryCmd)
event_decoder = msgspec.msgpack.Decoder(Event)
batch_decoder = msgspec.msgpack.Decoder(EventBatch)


class ReportItem(Struct, array_like=True, frozen=True):
    """One report to a gateway: deliver ``payload`` to ``client`` of ``account``."""

    client: bytes
    account: str
    role: int
    rseq: int
    payload: Event | Answer


report_decoder = msgspec.msgpack.Decoder(list[ReportItem])
