"""Client messages: what a client and a gateway say to each other.

Every message is one ZeroMQ frame holding a MessagePack map with two fixed
keys: ``type`` (the tag, a string) and ``v`` (the protocol version, an int).
Prices and quantities travel as decimal strings ("101.25", "3") so no float
ever touches them; the gateway turns them into integer ticks and lots using
the instrument's tick and lot size. SPEC.md is the normative text; each class
here is one message of it, field for field.

Requests (client -> gateway): Logon, Logout, Heartbeat, NewOrder, Cancel,
Replace, Recover, Query, KillSwitch (operator accounts only).
Reports (gateway -> client): LogonAck, LoggedOut, Heartbeat, Ack, Reject,
Fill, Cancelled, Expired, Replaced, KillSwitchSet (the execution reports),
and the answers Recovered, Orders, Positions.

Execution reports carry ``rseq``: the account's own report sequence number,
1, 2, 3, ... with no gaps across all the account's sessions and gateways for
the trading day. A client that tracks the last ``rseq`` it applied can ask
for exactly what it missed (``Recover``). ``rseq`` is 0 on a report that is
not in the account's sequence: a reject before sequencing, or a ``resent``
repeat of a first answer.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

VERSION = 1  # the only version this codec speaks; see SPEC.md "Versioning"

ClOrdId = Annotated[str, Meta(min_length=1, max_length=36)]
Symbol = Annotated[str, Meta(min_length=1, max_length=16)]
DecimalStr = Annotated[str, Meta(min_length=1, max_length=32)]
Side = Literal["buy", "sell"]
OrdType = Literal["limit", "market"]
Tif = Literal["gtc", "ioc", "fok"]
Stp = Literal["cancel_newest", "cancel_oldest", "cancel_both", "none"]
KillMode = Literal["block", "reduce_only", "off"]
CancelReason = Literal["user", "stp", "kill", "disconnect"]
ExpireReason = Literal["ioc", "fok", "market"]
ReqId = Annotated[str, Meta(max_length=36)]
UInt = Annotated[int, Meta(ge=0, le=2**63 - 1)]


# Each subclass repeats frozen=True. msgspec inherits it anyway, but type checkers read Struct
# as a dataclass_transform, where a subclass that does not say frozen is a mutable dataclass
# deriving from a frozen one (an error) and its fields would type as assignable.
class Message(Struct, tag_field="type", kw_only=True, frozen=True):
    """Base of every client message: the ``type`` tag and the version ``v``."""

    v: int = VERSION


# ---------------------------------------------------------------- requests


class Logon(Message, tag="logon", frozen=True):
    """Open a session. ``heartbeat_ms`` is the interval the client will keep."""

    account: Annotated[str, Meta(min_length=1, max_length=32)]
    credential: Annotated[str, Meta(max_length=256)] = ""
    heartbeat_ms: Annotated[int, Meta(ge=100, le=60_000)] = 1_000


class Logout(Message, tag="logout", frozen=True):
    """Close the session. The gateway answers ``logged_out``; cancel-on-disconnect applies."""


class Heartbeat(Message, tag="heartbeat", frozen=True):
    """Liveness, both ways.

    From the gateway, ``next_seq`` is the ``rseq`` the account's next
    execution report will have, so a quiet client can tell silence from loss.
    From a client it is the next ``rseq`` the client expects (informational).
    """

    next_seq: UInt = 0


class NewOrder(Message, tag="new_order", frozen=True):
    """Enter an order.

    ``price`` is required for ``limit`` and must be absent or null for
    ``market``. ``tif`` absent or null is ``gtc`` for a limit order and
    ``ioc`` for a market order (which never rests); an explicit ``gtc`` on a
    market order is refused. ``cl_ord_id`` is unique per account for the
    trading day: a resend with the same id returns the first answer, never a
    second order.
    """

    cl_ord_id: ClOrdId
    symbol: Symbol
    side: Side
    qty: DecimalStr
    ord_type: OrdType = "limit"
    price: DecimalStr | None = None
    tif: Tif | None = None  # None: gtc for limit, ioc for market (SPEC 4.4)
    post_only: bool = False
    stp: Stp = "cancel_newest"


class Cancel(Message, tag="cancel", frozen=True):
    """Cancel an open order, named by ``order_id`` or by its ``orig_cl_ord_id``."""

    cl_ord_id: ClOrdId
    symbol: Symbol
    order_id: UInt = 0
    orig_cl_ord_id: Annotated[str, Meta(max_length=36)] = ""


class Replace(Message, tag="replace", frozen=True):
    """Change an open order's price and/or total quantity.

    A quantity decrease at the same price keeps time priority; a price change
    or a quantity increase sends the order to the back of its new level.
    """

    cl_ord_id: ClOrdId
    symbol: Symbol
    qty: DecimalStr
    price: DecimalStr
    order_id: UInt = 0
    orig_cl_ord_id: Annotated[str, Meta(max_length=36)] = ""


class Recover(Message, tag="recover", frozen=True):
    """Ask for this account's execution reports with ``rseq`` >= ``from_rseq``.

    The gateway sends them (each the same report as first sent, same
    ``rseq``), at most ``limit`` of them, then ``recovered``. If
    ``recovered.to_rseq`` < ``recovered.last_rseq``, ask again from
    ``to_rseq + 1``.
    """

    from_rseq: Annotated[int, Meta(ge=1, le=2**63 - 1)]
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 1_000


class Query(Message, tag="query", frozen=True):
    """Ask for the account's open ``orders``, its ``positions`` and cash, or a ``book``.

    ``symbol`` narrows ``orders`` to one instrument ("" for all) and names
    the instrument of ``book`` (required), which lists ``depth`` price levels
    a side. The answer (``orders``, ``positions`` or ``book``) echoes ``req_id``.
    """

    req_id: ReqId
    what: Literal["orders", "positions", "book"]
    symbol: Annotated[str, Meta(max_length=16)] = ""
    depth: Annotated[int, Meta(ge=1, le=1000)] = 10


class KillSwitch(Message, tag="kill_switch", frozen=True):
    """Operator only: set an account's kill switch.

    ``block`` cancels all the account's open orders and refuses new ones;
    ``reduce_only`` cancels them and admits only orders that reduce a
    position; ``off`` lifts the switch. Answered by ``kill_switch_set``.
    Idempotent by ``cl_ord_id`` like any other request.
    """

    cl_ord_id: ClOrdId
    account: Annotated[str, Meta(min_length=1, max_length=32)]
    mode: KillMode


# ----------------------------------------------------------------- reports


class LogonAck(Message, tag="logon_ack", frozen=True):
    """The session is open. ``next_rseq`` is the ``rseq`` of the account's next report.

    The rest tells the client its account's options and the limits this
    gateway applies to it, so it need not find them by being refused:
    ``operator`` (may send kill_switch), ``cancel_on_disconnect``, ``rate``
    and ``burst`` (messages a second per session, and at once; None: no
    limit), ``max_order_qty`` (per order, in each instrument's units),
    ``max_notional`` (cash per order) and ``collar_pct`` (percent around the
    reference price); numbers are decimal strings, None where there is no
    limit. They are optional fields (SPEC 10), added after the first release
    of version 1.
    """

    account: str
    session_id: str
    heartbeat_ms: int
    next_rseq: int = 1
    operator: bool = False
    cancel_on_disconnect: bool = False
    rate: str | None = None
    burst: str | None = None
    max_order_qty: str | None = None
    max_notional: str | None = None
    collar_pct: str | None = None


class LoggedOut(Message, tag="logged_out", frozen=True):
    """The gateway closed the session: on ``logout``, a missed heartbeat, or a new logon elsewhere."""

    reason: Literal["logout", "heartbeat", "replaced"]
    text: str = ""


class Ack(Message, tag="ack", frozen=True):
    """The order is accepted and sequenced; ``resent`` marks a repeat of the first ack."""

    cl_ord_id: str
    order_id: int
    symbol: str
    side: Side
    ord_type: OrdType
    tif: Tif
    price: str | None
    qty: str
    seq: int
    ts: int
    rseq: int = 0
    resent: bool = False


class Reject(Message, tag="reject", frozen=True):
    """A request was refused. ``seq`` is 0 when the refusal happened before sequencing."""

    cl_ord_id: str
    ref_type: str
    reason: int
    reason_name: str
    text: str
    seq: int = 0
    rseq: int = 0
    resent: bool = False


class Fill(Message, tag="fill", frozen=True):
    """Part or all of an order traded. ``leaves`` is what stays open."""

    order_id: int
    cl_ord_id: str
    symbol: str
    side: Side
    price: str
    qty: str
    leaves: str
    trade_id: int
    liquidity: Literal["maker", "taker"]
    seq: int
    ts: int
    rseq: int = 0


class Cancelled(Message, tag="cancelled", frozen=True):
    """The rest of an order is cancelled.

    ``reason``: by the owner (``user``), by self-trade prevention (``stp``),
    by the account's kill switch (``kill``), or because the session that
    entered it ended with cancel-on-disconnect on (``disconnect``).
    ``cl_ord_id`` is the cancel request's (so it answers that request) and
    ``orig_cl_ord_id`` the order's; an unsolicited cancel has the order's in both.
    """

    order_id: int
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: Side
    qty: str
    reason: CancelReason
    seq: int
    ts: int
    rseq: int = 0
    resent: bool = False


class Expired(Message, tag="expired", frozen=True):
    """The unfilled rest of an IOC or market order expired, or a FOK was killed whole."""

    order_id: int
    cl_ord_id: str
    symbol: str
    side: Side
    qty: str
    reason: ExpireReason
    seq: int
    ts: int
    rseq: int = 0


class Replaced(Message, tag="replaced", frozen=True):
    """An order was changed. ``cl_ord_id`` is the replace request's; ``orig_cl_ord_id`` the order's.

    The order keeps its own cl_ord_id (and order_id) for its whole life:
    later fills and cancels name it by those.
    """

    order_id: int
    cl_ord_id: str
    orig_cl_ord_id: str
    symbol: str
    side: Side
    price: str
    qty: str
    leaves: str
    kept_priority: bool
    seq: int
    ts: int
    rseq: int = 0
    resent: bool = False


class KillSwitchSet(Message, tag="kill_switch_set", frozen=True):
    """An account's kill switch changed; ``cancelled`` open orders were cancelled by it.

    Sent to the operator who set it (as the answer to ``kill_switch``) and to
    the account's sessions (in their report sequence).
    """

    cl_ord_id: str
    account: str
    mode: KillMode
    cancelled: int
    seq: int
    ts: int
    rseq: int = 0
    resent: bool = False


class Recovered(Message, tag="recovered", frozen=True):
    """End of an answer to ``recover``: reports ``from_rseq``..``to_rseq`` were sent.

    ``to_rseq`` is ``from_rseq - 1`` when there was nothing to send;
    ``last_rseq`` is the account's latest ``rseq`` at that moment.
    """

    from_rseq: int
    to_rseq: int
    last_rseq: int


class OrderInfo(Struct, kw_only=True, frozen=True):
    """One open order, as ``orders`` lists it."""

    order_id: int
    cl_ord_id: str
    symbol: str
    side: Side
    price: str
    qty: str
    leaves: str
    filled: str


class Orders(Message, tag="orders", frozen=True):
    """The account's open orders, in order_id order."""

    req_id: str
    orders: list[OrderInfo]
    seq: int


class PositionInfo(Struct, kw_only=True, frozen=True):
    """The account's net position in one symbol; negative is short."""

    symbol: str
    qty: str
    bought: str
    sold: str


class Positions(Message, tag="positions", frozen=True):
    """The account's positions, cash and open-order count after command ``seq``.

    ``cash`` is in the quote currency of all instruments (T+0: every trade
    settles at once): it starts at 0 and goes down when the account buys.
    """

    req_id: str
    cash: str
    positions: list[PositionInfo]
    open_orders: int
    kill_switch: KillMode
    seq: int


class Level(Struct, kw_only=True, frozen=True):
    """One price level of a book: total open quantity and number of orders."""

    price: str
    qty: str
    orders: int


class Book(Message, tag="book", frozen=True):
    """The public book of ``symbol`` after command ``seq``, best level first on each side."""

    req_id: str
    symbol: str
    bids: list[Level]
    asks: list[Level]
    seq: int


REQUESTS = (Logon, Logout, Heartbeat, NewOrder, Cancel, Replace, Recover, Query, KillSwitch)
REPORTS = (
    LogonAck,
    LoggedOut,
    Heartbeat,
    Ack,
    Reject,
    Fill,
    Cancelled,
    Expired,
    Replaced,
    KillSwitchSet,
    Recovered,
    Orders,
    Positions,
    Book,
)
ALL = tuple(dict.fromkeys(REQUESTS + REPORTS))
Request = Logon | Logout | Heartbeat | NewOrder | Cancel | Replace | Recover | Query | KillSwitch
Report = (
    LogonAck
    | LoggedOut
    | Heartbeat
    | Ack
    | Reject
    | Fill
    | Cancelled
    | Expired
    | Replaced
    | KillSwitchSet
    | Recovered
    | Orders
    | Positions
    | Book
)
