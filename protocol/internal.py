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

from typing import Final, Literal, TypeAlias

import msgspec
from msgspec import Struct

from .messages import CancelReason, ExpireReason, KillMode, OrdType, Side, Stp, Tif

# The codes the commands carry, as Literal types: msgspec refuses any other value on decode,
# and a type checker any other value at a constructor. Final makes each name its literal.
SideCode: TypeAlias = Literal[1, 2]
OrdTypeCode: TypeAlias = Literal[1, 2]
TifCode: TypeAlias = Literal[1, 2, 3]
StpCode: TypeAlias = Literal[0, 1, 2, 3]
KillCode: TypeAlias = Literal[0, 1, 2]
QueryCode: TypeAlias = Literal[1, 2, 3, 4]

BUY: Final = 1
SELL: Final = 2
LIMIT: Final = 1
MARKET: Final = 2
GTC: Final = 1
IOC: Final = 2
FOK: Final = 3
STP_NONE: Final = 0
STP_CANCEL_NEWEST: Final = 1
STP_CANCEL_OLDEST: Final = 2
STP_CANCEL_BOTH: Final = 3

# Cancelled.reason / Expired.reason
CXL_USER, CXL_STP, CXL_KILL, CXL_DISCONNECT = 1, 2, 3, 4
EXP_IOC, EXP_FOK, EXP_MARKET = 1, 2, 3

# Each code's word on the wire (protocol/messages.py), keyed by any int: events carry plain ints.
SIDE_NAMES: dict[int, Side] = {BUY: "buy", SELL: "sell"}
ORD_TYPE_NAMES: dict[int, OrdType] = {LIMIT: "limit", MARKET: "market"}
TIF_NAMES: dict[int, Tif] = {GTC: "gtc", IOC: "ioc", FOK: "fok"}
STP_NAMES: dict[int, Stp] = {
    STP_NONE: "none",
    STP_CANCEL_NEWEST: "cancel_newest",
    STP_CANCEL_OLDEST: "cancel_oldest",
    STP_CANCEL_BOTH: "cancel_both",
}
CXL_NAMES: dict[int, CancelReason] = {
    CXL_USER: "user",
    CXL_STP: "stp",
    CXL_KILL: "kill",
    CXL_DISCONNECT: "disconnect",
}

# Report roles (ReportItem.role): why a session gets a payload. DIRECT answers
# the request's sender; TAKER/MAKER say which side of a Trade the account was;
# OWNER is an unsolicited report about the account's order or account;
# RESENT repeats a first answer (rseq 0).
DIRECT_ROLE, TAKER_ROLE, MAKER_ROLE, OWNER_ROLE, RESENT_ROLE = 0, 1, 2, 3, 4

# Kill switch modes (KillSwitchCmd.mode, account state)
KILL_OFF: Final = 0
KILL_BLOCK: Final = 1
KILL_REDUCE_ONLY: Final = 2
KILL_NAMES: dict[int, KillMode] = {
    KILL_OFF: "off",
    KILL_BLOCK: "block",
    KILL_REDUCE_ONLY: "reduce_only",
}

# QueryCmd.what
Q_ORDERS: Final = 1
Q_POSITIONS: Final = 2
Q_REPORTS: Final = 3
Q_BOOK: Final = 4
EXP_NAMES: dict[int, ExpireReason] = {EXP_IOC: "ioc", EXP_FOK: "fok", EXP_MARKET: "market"}
QUERY_NAMES: dict[int, str] = {
    Q_ORDERS: "orders",
    Q_POSITIONS: "positions",
    Q_REPORTS: "reports",
    Q_BOOK: "book",
}

# The other way: the wire's words (protocol/messages.py) to these codes, typed as the codes the
# commands accept. Each is the exact inverse of its *_NAMES map, so there is one vocabulary,
# defined here, mapped both ways (written out so the type checker sees each code;
# tests/protocol/test_vocabulary.py holds each pair to being inverses).
SIDE_CODES: dict[str, SideCode] = {"buy": BUY, "sell": SELL}
ORD_TYPE_CODES: dict[str, OrdTypeCode] = {"limit": LIMIT, "market": MARKET}
TIF_CODES: dict[str, TifCode] = {"gtc": GTC, "ioc": IOC, "fok": FOK}
STP_CODES: dict[str, StpCode] = {
    "none": STP_NONE,
    "cancel_newest": STP_CANCEL_NEWEST,
    "cancel_oldest": STP_CANCEL_OLDEST,
    "cancel_both": STP_CANCEL_BOTH,
}
KILL_CODES: dict[str, KillCode] = {
    "off": KILL_OFF,
    "block": KILL_BLOCK,
    "reduce_only": KILL_REDUCE_ONLY,
}
QUERY_CODES: dict[str, QueryCode] = {
    "orders": Q_ORDERS,
    "positions": Q_POSITIONS,
    "reports": Q_REPORTS,
    "book": Q_BOOK,
}
# the maker's side of a trade is the other side of the taker's
OTHER_SIDE: dict[int, SideCode] = {BUY: SELL, SELL: BUY}


def pin_fields(struct: type[Struct], names: str) -> None:
    """Refuse to import a module that unpacks ``struct`` by position if its fields moved.

    A hot loop may read a command with one ``msgspec.structs.astuple`` and
    unpack it by position; a field added, removed or reordered here would then
    shift every value silently. Call this at import, beside the unpacking:

        pin_fields(NewOrderCmd, "ts gw client account cl_ord_id symbol side ord_type tif price qty post_only stp")
    """
    want = tuple(names.split())
    have = tuple(struct.__struct_fields__)
    if have != want:
        raise ImportError(
            f"{struct.__name__} fields are {' '.join(have)}; the code unpacking it by position "
            f"expects {' '.join(want)}: update that code and its pin_fields call together"
        )


# Each subclass repeats frozen=True. msgspec inherits it anyway, but type checkers read Struct
# as a dataclass_transform, where a subclass that does not say frozen is a mutable dataclass
# deriving from a frozen one (an error) and its fields would type as assignable.
class _Internal(Struct, array_like=True, frozen=True, tag_field="t", gc=False):
    """gc=False: the garbage collector does not track these. They hold only ints, strings,
    bytes and lists or dicts of those, so they can never be part of a reference cycle, and
    the matcher keeps every event of the day (answers, report logs): tracked, they made each
    full collection walk millions of objects (bench/README.md)."""


# ---------------------------------------------------------------- commands
# Every command carries where it came from (gateway name, client routing id
# at that gateway) and the time it entered zex (ns since the epoch, stamped
# by the gateway): the matcher never reads a clock, so replay is exact.


class NewOrderCmd(_Internal, tag=1, frozen=True):
    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    gw: str  # the gateway's name (its DEALER identity prefix): where answers go
    client: bytes  # the client's routing id at that gateway: which session
    account: str  # the account (of the session; for an event, whose order or request it is)
    cl_ord_id: str  # the request's client order id, as the client sent it
    symbol: str  # the instrument
    side: SideCode  # BUY or SELL
    ord_type: OrdTypeCode  # LIMIT or MARKET
    tif: TifCode  # GTC, IOC or FOK
    price: int  # ticks; for a market order its protection price (0: none)
    qty: int  # lots, > 0
    post_only: bool = False  # refuse rather than trade on arrival
    stp: StpCode = STP_CANCEL_NEWEST  # self-trade prevention: STP_NONE .. STP_CANCEL_BOTH


class CancelCmd(_Internal, tag=2, frozen=True):
    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    gw: str  # the gateway's name (its DEALER identity prefix): where answers go
    client: bytes  # the client's routing id at that gateway: which session
    account: str  # the account (of the session; for an event, whose order or request it is)
    cl_ord_id: str  # the request's client order id, as the client sent it
    symbol: str  # the instrument
    order_id: int = 0  # 0: look the order up by orig_cl_ord_id
    orig_cl_ord_id: str = ""  # or the cl_ord_id of the new_order that made it, when order_id is 0


class ReplaceCmd(_Internal, tag=3, frozen=True):
    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    gw: str  # the gateway's name (its DEALER identity prefix): where answers go
    client: bytes  # the client's routing id at that gateway: which session
    account: str  # the account (of the session; for an event, whose order or request it is)
    cl_ord_id: str  # the request's client order id, as the client sent it
    symbol: str  # the instrument
    price: int  # ticks
    qty: int  # new total quantity, filled included (FIX OrderQty semantics)
    order_id: int = 0  # the matcher's id of the order
    orig_cl_ord_id: str = ""  # or the cl_ord_id of the new_order that made it, when order_id is 0


class MassCancelCmd(_Internal, tag=4, frozen=True):
    """Cancel-on-disconnect: cancel the open orders ``account`` entered through session (gw, client)."""

    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    gw: str  # the gateway's name (its DEALER identity prefix): where answers go
    client: bytes  # the client's routing id at that gateway: which session
    account: str  # the account (of the session; for an event, whose order or request it is)
    reason: int  # CXL_DISCONNECT


class KillSwitchCmd(_Internal, tag=5, frozen=True):
    """An operator (``account``) sets ``target``'s kill switch to ``mode``."""

    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    gw: str  # the gateway's name (its DEALER identity prefix): where answers go
    client: bytes  # the client's routing id at that gateway: which session
    account: str  # the account (of the session; for an event, whose order or request it is)
    cl_ord_id: str  # the request's client order id, as the client sent it
    target: str  # the account whose kill switch is set
    mode: KillCode  # KILL_OFF, KILL_BLOCK or KILL_REDUCE_ONLY


class LimitsCmd(_Internal, tag=6, frozen=True):
    """Set an account's stateful risk limits; None is no limit.

    The matcher journals one itself at start for each account whose limits
    in config differ from its state, so a replay applies the limits that
    were in force when each order arrived.
    """

    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    account: str  # the account (of the session; for an event, whose order or request it is)
    max_open_orders: int | None = None  # None: no limit
    credit: int | None = None  # cash units the account may owe, open buys included
    max_position: dict[str, int] = {}  # symbol -> lots, long or short; absent: no limit
    gw: str = ""  # the gateway's name (its DEALER identity prefix): where answers go
    client: bytes = b""  # the client's routing id at that gateway: which session


class QueryCmd(_Internal, tag=7, frozen=True):
    """Read-only: answered from the matcher's state, never journaled or sequenced."""

    gw: str  # the gateway's name (its DEALER identity prefix): where answers go
    client: bytes  # the client's routing id at that gateway: which session
    account: str  # the account (of the session; for an event, whose order or request it is)
    what: QueryCode  # Q_ORDERS, Q_POSITIONS, Q_REPORTS, Q_BOOK (limit = depth)
    req_id: str = ""  # the query's req_id, echoed
    symbol: str = ""  # the instrument
    from_rseq: int = 0  # the first report sequence number asked for
    limit: int = 1000  # at most this many items (reports, or levels of a book)


Command = NewOrderCmd | CancelCmd | ReplaceCmd | MassCancelCmd | KillSwitchCmd | LimitsCmd

# Rejected.ref: the tag of the command refused, and the client request type it answers.
REF_NEW_ORDER, REF_CANCEL, REF_REPLACE, REF_KILL_SWITCH = (
    NewOrderCmd.__struct_config__.tag,
    CancelCmd.__struct_config__.tag,
    ReplaceCmd.__struct_config__.tag,
    KillSwitchCmd.__struct_config__.tag,
)
REF_TYPE_NAMES = {
    REF_NEW_ORDER: "new_order",
    REF_CANCEL: "cancel",
    REF_REPLACE: "replace",
    REF_KILL_SWITCH: "kill_switch",
}
REF_TYPE_CODES = {name: code for code, name in REF_TYPE_NAMES.items()}

# ------------------------------------------------------------------ events
# Every event carries the sequence number of the command that caused it; one
# command may cause several events, all with its seq, in the order they
# happened.


class Accepted(_Internal, tag=10, frozen=True):
    seq: int  # the sequence number of the command that caused it
    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    order_id: int  # the matcher's id of the order
    account: str  # the account (of the session; for an event, whose order or request it is)
    cl_ord_id: str  # the request's client order id, as the client sent it
    symbol: str  # the instrument
    side: int  # BUY or SELL
    ord_type: int  # LIMIT or MARKET
    tif: int  # GTC, IOC or FOK
    price: int  # ticks
    qty: int  # lots


class Rejected(_Internal, tag=11, frozen=True):
    seq: int  # the sequence number of the command that caused it
    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    account: str  # the account (of the session; for an event, whose order or request it is)
    cl_ord_id: str  # the request's client order id, as the client sent it
    symbol: str  # the instrument
    ref: int  # tag of the rejected command
    reason: int  # why (the *_NAMES map of its kind)
    text: str  # the refusal in words, decimals as the client writes them (SPEC 4.8)


class Trade(_Internal, tag=12, frozen=True):
    seq: int  # the sequence number of the command that caused it
    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    trade_id: int  # the matcher's id of the trade
    symbol: str  # the instrument
    price: int  # ticks
    qty: int  # lots
    taker_side: int  # BUY or SELL: the maker's is OTHER_SIDE[taker_side]
    taker_order_id: int  # the arriving order
    taker_account: str  # its account
    taker_cl_ord_id: str  # its cl_ord_id
    taker_leaves: int  # its lots still open after this trade
    maker_order_id: int  # the resting order
    maker_account: str  # its account
    maker_cl_ord_id: str  # its cl_ord_id
    maker_leaves: int  # its lots still open after this trade


class Cancelled(_Internal, tag=13, frozen=True):
    seq: int  # the sequence number of the command that caused it
    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    order_id: int  # the matcher's id of the order
    account: str  # the account (of the session; for an event, whose order or request it is)
    cl_ord_id: str  # the request's client order id, as the client sent it
    symbol: str  # the instrument
    side: int  # BUY or SELL
    price: int  # ticks
    qty: int  # quantity cancelled (the leaves at that moment)
    reason: int  # why (the *_NAMES map of its kind)
    req_cl_ord_id: str = (
        ""  # the cancel request's cl_ord_id; "" when unsolicited (stp, kill, disconnect)
    )


class Expired(_Internal, tag=14, frozen=True):
    seq: int  # the sequence number of the command that caused it
    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    order_id: int  # the matcher's id of the order
    account: str  # the account (of the session; for an event, whose order or request it is)
    cl_ord_id: str  # the request's client order id, as the client sent it
    symbol: str  # the instrument
    side: int  # BUY or SELL
    price: int  # ticks
    qty: int  # lots
    reason: int  # why (the *_NAMES map of its kind)


class Replaced(_Internal, tag=15, frozen=True):
    seq: int  # the sequence number of the command that caused it
    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    order_id: int  # the matcher's id of the order
    account: str  # the account (of the session; for an event, whose order or request it is)
    cl_ord_id: str  # the request's client order id, as the client sent it
    symbol: str  # the instrument
    side: int  # BUY or SELL
    price: int  # ticks
    qty: int  # new total quantity
    leaves: int  # lots still open
    kept_priority: bool  # the order kept its place in its level
    req_cl_ord_id: str = ""  # the replace request's cl_ord_id


class KillSwitchSet(_Internal, tag=17, frozen=True):
    seq: int  # the sequence number of the command that caused it
    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    account: str  # the operator who set it
    cl_ord_id: str  # the request's client order id, as the client sent it
    target: str  # the account whose kill switch is set
    mode: int  # KILL_OFF, KILL_BLOCK or KILL_REDUCE_ONLY
    cancelled: int  # open orders it cancelled


class LimitsSet(_Internal, tag=18, frozen=True):
    seq: int  # the sequence number of the command that caused it
    ts: int  # ns since the epoch: when the request entered zex (the gateway's stamp)
    account: str  # the account (of the session; for an event, whose order or request it is)


class Digest(_Internal, tag=16, frozen=True):
    """The engine's whole state hashed after command ``seq`` (see engine.digest)."""

    seq: int  # the sequence number of the command that caused it
    digest: bytes  # the hash


Event = (
    Accepted
    | Rejected
    | Trade
    | Cancelled
    | Expired
    | Replaced
    | Digest
    | KillSwitchSet
    | LimitsSet
)

# ----------------------------------------------------------------- answers
# Answers to a QueryCmd: read from the matcher's state after command ``seq``.


class OpenOrder(Struct, array_like=True, frozen=True):
    order_id: int  # the matcher's id of the order
    cl_ord_id: str  # the request's client order id, as the client sent it
    symbol: str  # the instrument
    side: int  # BUY or SELL
    price: int  # ticks
    qty: int  # lots
    leaves: int  # lots still open
    filled: int  # lots traded


class OrdersAnswer(_Internal, tag=20, frozen=True):
    seq: int  # the sequence number of the command that caused it
    req_id: str  # the query's req_id, echoed
    orders: list[OpenOrder]  # the account's open orders, by order_id


class Position(Struct, array_like=True, frozen=True):
    symbol: str  # the instrument
    lots: int  # net, negative is short
    bought: int  # lots bought today
    sold: int  # lots sold today


class PositionsAnswer(_Internal, tag=21, frozen=True):
    seq: int  # the sequence number of the command that caused it
    req_id: str  # the query's req_id, echoed
    cash: int  # cash units (see numbers.cash_units)
    positions: list[Position]  # one per symbol the account traded
    open_orders: int  # how many orders the account has open
    kill: int  # the account's kill switch mode (KILL_NAMES)


class ReportsAnswer(_Internal, tag=22, frozen=True):
    """Reports from_rseq..to_rseq of the account, each [rseq, role, event]."""

    from_rseq: int  # the first report sequence number asked for
    to_rseq: int  # the last one sent
    last_rseq: int  # the account's latest rseq
    reports: list[tuple[int, int, Event]]  # [rseq, role, event] each


class BookAnswer(_Internal, tag=23, frozen=True):
    """Levels of a book, best first: [price ticks, qty lots, orders]."""

    seq: int  # the sequence number of the command that caused it
    req_id: str  # the query's req_id, echoed
    symbol: str  # the instrument
    bids: list[tuple[int, int, int]]  # best first
    asks: list[tuple[int, int, int]]  # best first


Answer = OrdersAnswer | PositionsAnswer | ReportsAnswer | BookAnswer


class EventBatch(Struct, array_like=True, frozen=True):
    first_seq: int  # the first command seq the batch covers
    last_seq: int  # the last command seq the batch covers
    events: list[Event]  # in the order they happened


class ReplayRequest(_Internal, tag=30, frozen=True):
    """Ask for the batches holding commands ``from_seq`` onwards, at most ``max_batches``.

    ``req_id`` comes back in the chunk, so a consumer can tell the answer to
    its current request from a late answer to one it gave up on.
    """

    req_id: int  # the query's req_id, echoed
    from_seq: int  # the first command seq wanted
    max_batches: int = 256  # at most this many batches in the answer


class ReplayChunk(_Internal, tag=31, frozen=True):
    """The answer: ``count`` batches follow, covering commands up to ``last_seq``.

    ``head`` is the last seq in the event log. ``count`` 0 with ``last_seq``
    below ``from_seq`` means nothing at or after ``from_seq`` exists yet (or
    any more: ``first`` above ``from_seq`` says the log starts later).
    """

    req_id: int  # the query's req_id, echoed
    from_seq: int  # the first command seq wanted
    last_seq: int  # the last command seq the batch covers
    head: int  # the last seq in the event log
    count: int  # batches following this chunk
    first: int = 1  # the first seq the log holds


class AuditRecord(_Internal, tag=40, frozen=True):
    """What a node tells the logger that is not in the matcher's event stream.

    ``kind``: logon, logon_failed, logout, session_dropped, reject (refused at
    the gateway, never sequenced), kill_switch (an operator's request). The
    matcher's events reach the logger through the event stream, not this.
    """

    ts: int  # ns since the epoch, when it happened at ``source``
    source: str  # the node that saw it, e.g. the gateway's name
    kind: str  # what happened (see the class docstring)
    account: str = ""  # the account (of the session; for an event, whose order or request it is)
    client: bytes = b""  # the client's routing id at that gateway: which session
    cl_ord_id: str = ""  # the request's client order id, as the client sent it
    reason: int = 0  # why (the *_NAMES map of its kind)
    text: str = ""  # the refusal in words, decimals as the client writes them (SPEC 4.8)


encoder = msgspec.msgpack.Encoder()
audit_decoder = msgspec.msgpack.Decoder(AuditRecord)
replay_request_decoder = msgspec.msgpack.Decoder(ReplayRequest)
replay_chunk_decoder = msgspec.msgpack.Decoder(ReplayChunk)
command_decoder = msgspec.msgpack.Decoder(Command | QueryCmd)
event_decoder = msgspec.msgpack.Decoder(Event)
batch_decoder = msgspec.msgpack.Decoder(EventBatch)


class ReportItem(Struct, array_like=True, frozen=True):
    """One report to a gateway: deliver ``payload`` to ``client`` of ``account``."""

    client: bytes  # the client's routing id at that gateway: which session
    account: str  # the account (of the session; for an event, whose order or request it is)
    role: int  # why the session gets it (the *_ROLE constants)
    rseq: int  # the account's report sequence number, 0 when not in it
    payload: Event | Answer  # an Event or an Answer


report_decoder = msgspec.msgpack.Decoder(list[ReportItem])
