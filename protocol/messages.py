"""Client messages: what a client and a gateway say to each other.

Every message is one ZeroMQ frame holding a MessagePack map with two fixed
keys: ``type`` (the tag, a string) and ``v`` (the protocol version, an int).
Prices and quantities travel as decimal strings ("101.25", "3") so no float
ever touches them; the gateway turns them into integer ticks and lots using
the instrument's tick and lot size. SPEC.md is the normative text; each class
here is one message of it, field for field.

Requests (client -> gateway): Logon, Heartbeat, NewOrder, Cancel, Replace.
Reports (gateway -> client): LogonAck, Heartbeat, Ack, Reject, Fill,
Cancelled, Expired, Replaced.
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
UInt = Annotated[int, Meta(ge=0, le=2**63 - 1)]


class Message(Struct, tag_field="type", kw_only=True, frozen=True):
    """Base of every client message: the ``type`` tag and the version ``v``."""

    v: int = VERSION


# ---------------------------------------------------------------- requests


class Logon(Message, tag="logon"):
    """Open a session. ``heartbeat_ms`` is the interval the client will keep."""

    account: Annotated[str, Meta(min_length=1, max_length=32)]
    credential: Annotated[str, Meta(max_length=256)] = ""
    heartbeat_ms: Annotated[int, Meta(ge=100, le=60_000)] = 1_000


class Heartbeat(Message, tag="heartbeat"):
    """Liveness, both ways. ``next_seq`` is the sender's next report sequence (0 if none)."""

    next_seq: UInt = 0


class NewOrder(Message, tag="new_order"):
    """Enter an order.

    ``price`` is required for ``limit`` and must be absent or null for
    ``market``. ``cl_ord_id`` is unique per account for the trading day: a
    resend with the same id returns the first answer, never a second order.
    """

    cl_ord_id: ClOrdId
    symbol: Symbol
    side: Side
    qty: DecimalStr
    ord_type: OrdType = "limit"
    price: DecimalStr | None = None
    tif: Tif = "gtc"
    post_only: bool = False
    stp: Stp = "cancel_newest"


class Cancel(Message, tag="cancel"):
    """Cancel an open order, named by ``order_id`` or by its ``orig_cl_ord_id``."""

    cl_ord_id: ClOrdId
    symbol: Symbol
    order_id: UInt = 0
    orig_cl_ord_id: str = ""


class Replace(Message, tag="replace"):
    """Change an open order's price and/or total quantity.

    A quantity decrease at the same price keeps time priority; a price change
    or a quantity increase sends the order to the back of its new level.
    """

    cl_ord_id: ClOrdId
    symbol: Symbol
    qty: DecimalStr
    price: DecimalStr
    order_id: UInt = 0
    orig_cl_ord_id: str = ""


# ----------------------------------------------------------------- reports


class LogonAck(Message, tag="logon_ack"):
    account: str
    session_id: str
    heartbeat_ms: int


class Ack(Message, tag="ack"):
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
    resent: bool = False


class Reject(Message, tag="reject"):
    """A request was refused. ``seq`` is 0 when the refusal happened before sequencing."""

    cl_ord_id: str
    ref_type: str
    reason: int
    reason_name: str
    text: str
    seq: int = 0
    resent: bool = False


class Fill(Message, tag="fill"):
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


class Cancelled(Message, tag="cancelled"):
    """The rest of an order is cancelled: by the owner (``user``) or by self-trade prevention (``stp``)."""

    order_id: int
    cl_ord_id: str
    symbol: str
    side: Side
    qty: str
    reason: Literal["user", "stp"]
    seq: int
    ts: int


class Expired(Message, tag="expired"):
    """The unfilled rest of an IOC or market order expired, or a FOK was killed whole."""

    order_id: int
    cl_ord_id: str
    symbol: str
    side: Side
    qty: str
    reason: Literal["ioc", "fok", "market"]
    seq: int
    ts: int


class Replaced(Message, tag="replaced"):
    order_id: int
    cl_ord_id: str
    symbol: str
    side: Side
    price: str
    qty: str
    leaves: str
    kept_priority: bool
    seq: int
    ts: int


REQUESTS = (Logon, Heartbeat, NewOrder, Cancel, Replace)
REPORTS = (LogonAck, Heartbeat, Ack, Reject, Fill, Cancelled, Expired, Replaced)
ALL = (Logon, Heartbeat, NewOrder, Cancel, Replace, LogonAck, Ack, Reject, Fill, Cancelled, Expired, Replaced)
Request = Logon | Heartbeat | NewOrder | Cancel | Replace
Report = LogonAck | Heartbeat | Ack | Reject | Fill | Cancelled | Expired | Replaced
