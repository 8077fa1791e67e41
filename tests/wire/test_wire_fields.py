"""wire/fields.py and wire/codes.py: the validators every frame reader shares, and the stable codes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from wavemq_edge import wire
from wavemq_edge.router import errors as router_errors
from wavemq_edge.wire import (
    CloseCode,
    ErrorCode,
    FieldError,
    Frame,
    FrameType,
    RemoteWireError,
    expect_bool,
    expect_bytes,
    expect_fields,
    expect_int,
    expect_int_list,
    expect_list,
    expect_map,
    expect_optional_str,
    expect_str,
)

Check = Callable[[object, str], object]

# (validator, accepted values, refused values, words of the message)
CASES: list[tuple[Check, list[object], list[object], str]] = [
    (expect_int, [0, -3, 1 << 70], [True, False, "1", b"1", None, [1]], "must be an integer"),
    (expect_bytes, [b"", b"x"], ["x", 1, None, [b"x"]], "must be a byte string"),
    (expect_str, ["", "x"], [b"x", 1, None, True], "must be a text string"),
    (expect_optional_str, [None, "", "a/b"], [b"x", 1, False], "must be a text string or null"),
    (expect_bool, [True, False], [0, 1, "true", None], "must be a boolean"),
    (expect_list, [[], [1, "a"]], [(), "ab", {}, None], "must be a list"),
    (expect_int_list, [[], [1, 2, 3]], [[1, True], [1, "2"], "12", None, [None]], "must be a list of integers"),
    (expect_map, [{}, {"a": 1, 2: b""}], [[], "a", None], "must be a map"),
]


@pytest.mark.parametrize(("check", "good", "bad", "words"), CASES, ids=[c[0].__name__ for c in CASES])
def test_validators_accept_and_refuse(check: Check, good: list[object], bad: list[object], words: str) -> None:
    for value in good:
        assert check(value, "X field") == value
    for value in bad:
        with pytest.raises(FieldError) as info:
            check(value, "DELIVER seq")
        err = info.value
        assert str(err).startswith(f"DELIVER seq {words}"), str(err)
        assert err.field == "DELIVER seq"
        assert err.close_code is CloseCode.BAD_FIELDS


def test_field_error_blames_the_peer_and_is_a_value_error() -> None:
    with pytest.raises(FieldError) as info:
        expect_int("7", "PING token")
    assert isinstance(info.value, RemoteWireError) and isinstance(info.value, ValueError)
    assert str(info.value) == "PING token must be an integer, got str"


def test_int_list_names_the_bad_item() -> None:
    with pytest.raises(FieldError, match=r"DACK seqs must be a list of integers, item 2 is bool"):
        expect_int_list([1, 2, True], "DACK seqs")


def test_expect_fields_exact_and_at_least() -> None:
    frame = Frame(FrameType.DELIVER, ("s", 1, b"m"))
    assert expect_fields(frame, 3) == ("s", 1, b"m")
    assert expect_fields(frame, 2, at_least=True) == ("s", 1, b"m")
    with pytest.raises(FieldError, match=r"^DELIVER frame has 3 fields, expected 4$"):
        expect_fields(frame, 4)
    with pytest.raises(FieldError, match=r"^DELIVER frame has 3 fields, expected 2$"):
        expect_fields(frame, 2)
    with pytest.raises(FieldError, match=r"^DELIVER frame has 3 fields, expected at least 5$") as info:
        expect_fields(frame, 5, at_least=True)
    assert info.value.field == "DELIVER frame"


def test_codes_live_in_wire_and_router_reexports_them() -> None:
    assert router_errors.ErrorCode is ErrorCode is wire.codes.ErrorCode
    assert wire.frames.CloseCode is CloseCode
    # stable numbers: clients and the README match on them
    assert int(ErrorCode.SUBSCRIPTION_ENDED) == 620 and int(ErrorCode.NO_PROOF) == 610
    assert int(CloseCode.BAD_FIELDS) == 403 and int(CloseCode.PROTOCOL_VIOLATION) == 404


def test_agent_frame_bound_is_named() -> None:
    assert wire.AGENT_MAX_FRAME_BYTES == 1 << 24
