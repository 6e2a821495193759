"""Reject reason codes: a stable number, a stable name, and a sentence.

Codes are grouped by the layer that detects them, so a client can tell a
malformed message (1xx) from an order the instrument forbids (2xx), a session
problem (3xx), a risk limit (4xx) and a book-level refusal (5xx). Codes are
never renumbered; new ones are appended. SPEC.md lists the same table.
"""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    # 1xx: the message itself
    MALFORMED = 100
    UNKNOWN_TYPE = 101
    UNSUPPORTED_VERSION = 102
    MISSING_FIELD = 103
    WRONG_TYPE = 104
    INVALID_VALUE = 105
    FRAME_TOO_LARGE = 106
    # 2xx: the order against its instrument
    UNKNOWN_SYMBOL = 200
    BAD_PRICE = 201
    PRICE_OFF_TICK = 202
    PRICE_OUT_OF_BAND = 203
    BAD_QTY = 204
    QTY_OFF_LOT = 205
    QTY_TOO_LARGE = 206
    INVALID_COMBINATION = 207
    # 3xx: session and authorisation
    NOT_LOGGED_ON = 300
    AUTH_FAILED = 301
    RATE_LIMITED = 302
    NOT_AUTHORISED = 303
    # 4xx: risk limits (the text names the limit and the value)
    RISK_LIMIT = 400
    KILL_SWITCH = 401
    MAX_ORDER_QTY = 402
    MAX_NOTIONAL = 403
    PRICE_COLLAR = 404
    MAX_OPEN_ORDERS = 405
    MAX_POSITION = 406
    CREDIT_LIMIT = 407
    # 5xx: the book and the engine
    UNKNOWN_ORDER = 500
    POST_ONLY_WOULD_CROSS = 501
    INVALID_REPLACE = 502
    INTERNAL = 900
    UNAVAILABLE = 901

    @property
    def sentence(self) -> str:
        return _SENTENCES[self]


def reason_name(code: int) -> str:
    """The stable name of a reason code, "UNKNOWN" for a code this version does not know (SPEC 5)."""
    reason = Reason._value2member_map_.get(code)
    return reason.name if reason is not None else "UNKNOWN"


_SENTENCES: dict[Reason, str] = {
    Reason.MALFORMED: "the frame is not a MessagePack map",
    Reason.UNKNOWN_TYPE: "the message type is not one this version knows",
    Reason.UNSUPPORTED_VERSION: "the protocol version is not supported",
    Reason.MISSING_FIELD: "a required field is missing",
    Reason.WRONG_TYPE: "a field has the wrong type",
    Reason.INVALID_VALUE: "a field has a value outside its allowed set or range",
    Reason.FRAME_TOO_LARGE: "the frame is larger than the limit",
    Reason.UNKNOWN_SYMBOL: "the symbol is not listed",
    Reason.BAD_PRICE: "the price is not a decimal number",
    Reason.PRICE_OFF_TICK: "the price is not a multiple of the tick size",
    Reason.PRICE_OUT_OF_BAND: "the price is outside the instrument's price band",
    Reason.BAD_QTY: "the quantity is not a positive decimal number",
    Reason.QTY_OFF_LOT: "the quantity is not a multiple of the lot size",
    Reason.QTY_TOO_LARGE: "the quantity is above the instrument's maximum",
    Reason.INVALID_COMBINATION: "the order's type, time in force and flags do not combine",
    Reason.NOT_LOGGED_ON: "log on before sending orders",
    Reason.AUTH_FAILED: "the account or credential is wrong",
    Reason.RATE_LIMITED: "too many messages; slow down",
    Reason.NOT_AUTHORISED: "the account may not send this request",
    Reason.RISK_LIMIT: "a risk limit would be exceeded",
    Reason.KILL_SWITCH: "the account's kill switch is on",
    Reason.MAX_ORDER_QTY: "the quantity is above the account's maximum order quantity",
    Reason.MAX_NOTIONAL: "the order's notional is above the account's maximum",
    Reason.PRICE_COLLAR: "the price is too far from the reference price (fat finger)",
    Reason.MAX_OPEN_ORDERS: "the account has its maximum number of open orders",
    Reason.MAX_POSITION: "the order could take the position beyond the account's maximum",
    Reason.CREDIT_LIMIT: "the order could take the account's cash beyond its credit",
    Reason.UNKNOWN_ORDER: "no open order of this account has that id",
    Reason.POST_ONLY_WOULD_CROSS: "a post-only order would have traded on arrival",
    Reason.INVALID_REPLACE: "the replace would leave the order at or below its filled quantity",
    Reason.INTERNAL: "internal error; the command was not applied",
    Reason.UNAVAILABLE: "the matcher is not taking commands; the command was not applied",
}
