"""One vocabulary: sides, order types, tif, stp, kill modes, queries and reference types are
defined once in protocol/internal.py and mapped both ways; a positional unpacking is pinned."""

from __future__ import annotations

import typing

import pytest

from zex.protocol import internal as i
from zex.protocol import messages as m
from zex.protocol.reasons import Reason, reason_name

PAIRS = [
    (i.SIDE_NAMES, i.SIDE_CODES, m.Side, i.SideCode),
    (i.ORD_TYPE_NAMES, i.ORD_TYPE_CODES, m.OrdType, i.OrdTypeCode),
    (i.TIF_NAMES, i.TIF_CODES, m.Tif, i.TifCode),
    (i.STP_NAMES, i.STP_CODES, m.Stp, i.StpCode),
    (i.KILL_NAMES, i.KILL_CODES, m.KillMode, i.KillCode),
    (i.QUERY_NAMES, i.QUERY_CODES, None, i.QueryCode),
    (i.REF_TYPE_NAMES, i.REF_TYPE_CODES, None, None),
]


@pytest.mark.parametrize("names,codes,words,code_type", PAIRS)
def test_each_map_is_the_exact_inverse_of_its_names_and_covers_the_wire_words(
    names, codes, words, code_type
):
    assert {v: k for k, v in names.items()} == codes and len(codes) == len(names)
    if words is not None:
        assert set(codes) == set(typing.get_args(words))
    if code_type is not None:  # the codes are exactly those the command field accepts
        assert set(codes.values()) == set(typing.get_args(code_type))


def test_cancel_and_expiry_reasons_name_every_wire_word():
    assert set(i.CXL_NAMES.values()) == set(typing.get_args(m.CancelReason))
    assert set(i.EXP_NAMES.values()) == set(typing.get_args(m.ExpireReason))


def test_reference_types_are_the_command_tags_and_the_request_types():
    for cmd, word in (
        (i.NewOrderCmd, "new_order"),
        (i.CancelCmd, "cancel"),
        (i.ReplaceCmd, "replace"),
        (i.KillSwitchCmd, "kill_switch"),
    ):
        assert i.REF_TYPE_NAMES[cmd.__struct_config__.tag] == word
        assert word in {c.__struct_config__.tag for c in m.REQUESTS}
    assert set(typing.get_args(m.Query.__annotations__["what"])) <= set(i.QUERY_CODES)


def test_other_side_and_reason_names():
    assert i.OTHER_SIDE == {i.BUY: i.SELL, i.SELL: i.BUY}
    assert (
        reason_name(202) == "PRICE_OFF_TICK" == Reason(202).name and reason_name(777) == "UNKNOWN"
    )


def test_pin_fields_refuses_an_import_whose_positions_moved():
    i.pin_fields(i.CancelCmd, "ts gw client account cl_ord_id symbol order_id orig_cl_ord_id")
    with pytest.raises(
        ImportError, match="CancelCmd fields are ts gw client account cl_ord_id symbol order_id"
    ):
        i.pin_fields(i.CancelCmd, "ts gw client account symbol cl_ord_id order_id orig_cl_ord_id")
