from __future__ import annotations

import pytest

from parsec_server.protocol import greeting


@pytest.mark.parametrize("index", range(9))
def test_round_trip(index: int) -> None:
    g_tag, g_field = greeting.GREETER_STEPS[index]
    c_tag, c_field = greeting.CLAIMER_STEPS[index]
    g_step = {"step": g_tag, **({g_field: b"g"} if g_field else {})}
    c_step = {"step": c_tag, **({c_field: b"c"} if c_field else {})}
    i, data = greeting.greeter_step_data(g_step)
    assert i == index and data == (b"g" if g_field else b"")
    assert greeting.greeter_step_from_data(i, data) == g_step
    i, data = greeting.claimer_step_data(c_step)
    assert i == index and data == (b"c" if c_field else b"")
    assert greeting.claimer_step_from_data(i, data) == c_step


def test_greeter_step_5_literal_tag() -> None:
    assert greeting.greeter_step_data({"step": "5"}) == (5, b"")
