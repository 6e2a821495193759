"""Gateway intake with no sockets: a frame and the session state in, a decision out (intake.py)."""

from __future__ import annotations

import msgpack
import pytest

from zex.nodes.gateway.intake import Closed, Intake, Opened, Refusal
from zex.nodes.gateway.risk import AccountRules
from zex.nodes.runtime.config import AccountConfig
from zex.protocol import internal as i
from zex.protocol import messages as m
from zex.protocol.codec import encode
from zex.protocol.numbers import Cash, Instrument
from zex.protocol.reasons import Reason

XYZ = Instrument("XYZ", tick="0.01", lot="1", max_price="1000", reference_price="10")
BTC = Instrument("BTC", tick="0.5", lot="0.001", min_price="1", max_price="100000", max_qty="10")
ACCOUNTS = [
    AccountConfig(id="alice", credential="pw", cancel_on_disconnect=True),
    AccountConfig(id="bob", credential="pw"),
    AccountConfig(id="slow", credential="pw", rate=2, burst=3),
    AccountConfig(
        id="risky", credential="pw", max_order_qty="20", max_notional="150", collar_pct="10"
    ),
    AccountConfig(id="ops", credential="pw", operator=True),
]
TS = 1_764_000_000_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def intake(clock) -> Intake:
    cash = Cash([XYZ, BTC])
    rules = {a.id: AccountRules.build(a, (XYZ, BTC), cash) for a in ACCOUNTS}
    return Intake("gw1", (XYZ, BTC), rules, cash, {}, clock=clock, wall_ns=lambda: TS)


def logged_on(intake: Intake, client: bytes, account: str) -> Opened:
    r = intake.handle(client, encode(m.Logon(account=account, credential="pw", heartbeat_ms=500)))
    assert type(r) is Opened, r
    return r


def refusal(r, reason: Reason) -> Refusal:
    assert type(r) is Refusal and r.reason == reason, r
    return r


def test_logon_opens_a_session_and_asks_for_the_accounts_rseq(intake):
    r = intake.handle(b"c1", encode(m.Logon(account="alice", credential="nope")))
    assert refusal(r, Reason.AUTH_FAILED).ref_type == "logon" and b"c1" not in intake.sessions
    refusal(
        intake.handle(b"c1", encode(m.Logon(account="nobody", credential="pw"))), Reason.AUTH_FAILED
    )
    r = logged_on(intake, b"c1", "alice")
    assert (r.account, r.heartbeat_ms, len(r.session_id)) == ("alice", 500, 16)
    assert r.query == i.QueryCmd("gw1", b"c1", "alice", i.Q_REPORTS, "", "", 1, 0)
    # the same account again: answered again
    assert logged_on(intake, b"c1", "alice").session_id != r.session_id
    r = refusal(
        intake.handle(b"c1", encode(m.Logon(account="bob", credential="pw"))), Reason.AUTH_FAILED
    )
    assert "logged on as alice" in r.text and intake.sessions[b"c1"].rules.id == "alice"


def test_before_logon_only_heartbeats_pass_silently(intake):
    assert intake.handle(b"c1", encode(m.Heartbeat())) is None
    r = intake.handle(
        b"c1", encode(m.NewOrder(cl_ord_id="o1", symbol="XYZ", side="buy", qty="1", price="10"))
    )
    assert (refusal(r, Reason.NOT_LOGGED_ON).cl_ord_id, r.ref_type, r.account) == (
        "o1",
        "new_order",
        "",
    )
    r = intake.handle(b"c1", encode(m.Query(req_id="q1", what="orders")))
    assert refusal(r, Reason.NOT_LOGGED_ON).cl_ord_id == "q1"


def test_a_new_order_becomes_the_matchers_command_in_ticks_and_lots(intake):
    logged_on(intake, b"c1", "bob")
    r = intake.handle(
        b"c1",
        encode(
            m.NewOrder(
                cl_ord_id="o1",
                symbol="BTC",
                side="sell",
                qty="0.25",
                price="30000.5",
                tif="fok",
                stp="cancel_both",
            )
        ),
    )
    assert r == i.NewOrderCmd(
        TS,
        "gw1",
        b"c1",
        "bob",
        "o1",
        "BTC",
        i.SELL,
        i.LIMIT,
        i.FOK,
        60001,
        250,
        False,
        i.STP_CANCEL_BOTH,
    )
    r = intake.handle(
        b"c1", encode(m.NewOrder(cl_ord_id="o2", symbol="XYZ", side="buy", qty="1", price="10"))
    )
    assert (r.tif, r.stp, r.post_only) == (i.GTC, i.STP_CANCEL_NEWEST, False)


def test_a_market_order_is_ioc_by_default_and_gets_its_protection_price(intake):
    logged_on(intake, b"c1", "risky")
    r = intake.handle(
        b"c1",
        encode(m.NewOrder(cl_ord_id="o1", symbol="XYZ", side="buy", qty="1", ord_type="market")),
    )
    # 10 % over the reference price 10
    assert (r.ord_type, r.tif, r.price) == (i.MARKET, i.IOC, 1100)
    r = intake.handle(
        b"c1",
        encode(
            m.NewOrder(
                cl_ord_id="o2", symbol="XYZ", side="sell", qty="1", ord_type="market", tif="fok"
            )
        ),
    )
    assert (r.tif, r.price) == (i.FOK, 900)
    for bad in ({"tif": "gtc"}, {"price": "10"}, {"post_only": True}):
        msg = m.NewOrder(
            cl_ord_id="o3", symbol="XYZ", side="buy", qty="1", ord_type="market", **bad
        )
        refusal(intake.handle(b"c1", encode(msg)), Reason.INVALID_COMBINATION)
    r = intake.handle(
        b"c1",
        encode(
            m.NewOrder(
                cl_ord_id="o4",
                symbol="XYZ",
                side="buy",
                qty="1",
                price="10",
                tif="ioc",
                post_only=True,
            )
        ),
    )
    refusal(r, Reason.INVALID_COMBINATION)
    r = intake.handle(b"c1", encode(m.NewOrder(cl_ord_id="o5", symbol="XYZ", side="buy", qty="1")))
    assert "price is required" in refusal(r, Reason.MISSING_FIELD).text


def test_the_collar_follows_the_last_trade_the_front_saw(intake):
    logged_on(intake, b"c1", "risky")
    order = encode(m.NewOrder(cl_ord_id="o1", symbol="XYZ", side="buy", qty="1", price="11.50"))
    refusal(intake.handle(b"c1", order), Reason.PRICE_COLLAR)  # reference_price 10: at most 11
    intake.refs["XYZ"] = 1100  # a trade at 11: the band is now [9.90, 12.10]
    assert type(intake.handle(b"c1", order)) is i.NewOrderCmd


def test_the_rate_limit_refuses_past_the_burst_and_refills_with_time(intake, clock):
    logged_on(intake, b"c1", "slow")  # 2/s, burst 3
    beat = encode(m.Query(req_id="q", what="positions"))
    assert [type(intake.handle(b"c1", beat)) for _ in range(4)] == [i.QueryCmd] * 3 + [Refusal]
    assert "rate limit 2/s (burst 3)" in intake.handle(b"c1", beat).text
    clock.now += 0.5  # one token
    assert [type(intake.handle(b"c1", beat)) for _ in range(2)] == [i.QueryCmd, Refusal]
    assert intake.handle(b"c1", encode(m.Heartbeat())) is None  # heartbeats are never limited


def test_a_repeated_logon_takes_a_token_as_any_request_does(intake, clock):
    """Each repeat asks the matcher and writes an audit record: it is paced like the rest. A
    first logon has no session, hence no bucket, and takes none."""
    logged_on(intake, b"c1", "slow")  # 2/s, burst 3, all 3 left
    again = encode(m.Logon(account="slow", credential="pw", heartbeat_ms=500))
    assert [type(intake.handle(b"c1", again)) for _ in range(4)] == [Opened] * 3 + [Refusal]
    r = refusal(intake.handle(b"c1", again), Reason.RATE_LIMITED)
    assert (r.ref_type, r.account) == ("logon", "slow") and "rate limit 2/s (burst 3)" in r.text
    assert intake.sessions[b"c1"].rules.id == "slow"  # refused, the session goes on
    # a wrong account or credential on the session costs a token too
    wrong = encode(m.Logon(account="bob", credential="pw"))
    refusal(intake.handle(b"c1", wrong), Reason.RATE_LIMITED)
    clock.now += 0.5  # one token
    assert refusal(intake.handle(b"c1", wrong), Reason.AUTH_FAILED)
    refusal(intake.handle(b"c1", again), Reason.RATE_LIMITED)
    clock.now += 0.5
    q = encode(m.Query(req_id="q", what="positions"))
    assert type(intake.handle(b"c1", q)) is i.QueryCmd  # one bucket for logons and requests
    refusal(intake.handle(b"c1", again), Reason.RATE_LIMITED)


def test_cancel_replace_query_recover(intake):
    logged_on(intake, b"c1", "bob")
    r = intake.handle(b"c1", encode(m.Cancel(cl_ord_id="c", symbol="XYZ")))
    assert "order_id or orig_cl_ord_id" in refusal(r, Reason.MISSING_FIELD).text
    assert intake.handle(
        b"c1", encode(m.Cancel(cl_ord_id="c", symbol="XYZ", orig_cl_ord_id="o1"))
    ) == i.CancelCmd(TS, "gw1", b"c1", "bob", "c", "XYZ", 0, "o1")
    refusal(
        intake.handle(b"c1", encode(m.Cancel(cl_ord_id="c", symbol="NOPE", order_id=3))),
        Reason.UNKNOWN_SYMBOL,
    )
    assert intake.handle(
        b"c1", encode(m.Replace(cl_ord_id="r", symbol="BTC", qty="1", price="20000", order_id=9))
    ) == i.ReplaceCmd(TS, "gw1", b"c1", "bob", "r", "BTC", 40000, 1000, 9, "")
    refusal(
        intake.handle(
            b"c1",
            encode(m.Replace(cl_ord_id="r", symbol="BTC", qty="1", price="20000.1", order_id=9)),
        ),
        Reason.PRICE_OFF_TICK,
    )
    assert intake.handle(
        b"c1", encode(m.Query(req_id="q", what="book", symbol="XYZ", depth=5))
    ) == i.QueryCmd("gw1", b"c1", "bob", i.Q_BOOK, "q", "XYZ", 0, 5)
    refusal(intake.handle(b"c1", encode(m.Query(req_id="q", what="book"))), Reason.MISSING_FIELD)
    refusal(
        intake.handle(b"c1", encode(m.Query(req_id="q", what="orders", symbol="NOPE"))),
        Reason.UNKNOWN_SYMBOL,
    )
    assert intake.handle(b"c1", encode(m.Recover(from_rseq=7, limit=50))) == i.QueryCmd(
        "gw1", b"c1", "bob", i.Q_REPORTS, "", "", 7, 50
    )


def test_only_an_operator_sets_a_kill_switch_and_only_on_a_configured_account(intake):
    logged_on(intake, b"c1", "bob")
    logged_on(intake, b"c2", "ops")
    ks = m.KillSwitch(cl_ord_id="k", account="bob", mode="reduce_only")
    refusal(intake.handle(b"c1", encode(ks)), Reason.NOT_AUTHORISED)
    assert intake.handle(b"c2", encode(ks)) == i.KillSwitchCmd(
        TS, "gw1", b"c2", "ops", "k", "bob", i.KILL_REDUCE_ONLY
    )
    r = intake.handle(b"c2", encode(m.KillSwitch(cl_ord_id="k", account="nobody", mode="block")))
    refusal(r, Reason.INVALID_VALUE)


def test_logout_and_drop_end_the_session_with_its_cancel_on_disconnect(intake):
    logged_on(intake, b"c1", "alice")
    logged_on(intake, b"c2", "bob")
    r = intake.handle(b"c1", encode(m.Logout()))
    assert type(r) is Closed and (r.account, r.why) == ("alice", "logout")
    assert r.cancel == i.MassCancelCmd(TS, "gw1", b"c1", "alice", i.CXL_DISCONNECT)
    assert b"c1" not in intake.sessions
    refusal(intake.handle(b"c1", encode(m.Logout())), Reason.NOT_LOGGED_ON)
    r = intake.drop(b"c2", "heartbeat")
    # bob has no cancel-on-disconnect
    assert (r.account, r.why, r.cancel) == ("bob", "heartbeat", None)
    assert intake.drop(b"c2", "heartbeat") is None


def test_bad_frames_are_refused_with_what_could_be_read(intake):
    logged_on(intake, b"c1", "bob")
    r = refusal(intake.handle(b"c1", b"\xc1garbage"), Reason.MALFORMED)
    assert (r.ref_type, r.cl_ord_id, r.account) == ("", "", "bob")
    long_id = "x" * 40
    r = intake.handle(
        b"c1", msgpack.packb({"type": "cancel", "v": 1, "cl_ord_id": long_id, "symbol": "XYZ"})
    )
    assert (refusal(r, Reason.INVALID_VALUE).cl_ord_id, r.ref_type) == (long_id, "cancel")
    refusal(intake.handle(b"c1", b"\x00" * 5000), Reason.FRAME_TOO_LARGE)
    assert (
        "exactly one frame; got 3"
        in refusal(intake.too_many_frames(b"c1", 3), Reason.MALFORMED).text
    )
