"""Settlement's arithmetic: clearing entries summed per pair of regions, then netted multilaterally."""

from __future__ import annotations

from gateway.domain.settlement import ClearingFlows, Position, net_positions


def test_netting_settles_a_cycle_with_fewer_payments() -> None:
    gross = {("330000", "110000"): 500, ("110000", "310000"): 300, ("310000", "330000"): 100}
    net = net_positions(gross)
    assert net == [Position("330000", "310000", 200), Position("330000", "110000", 200)]
    assert [position.amount_cents for position in net] == [200, 200]  # 100 points = 1 CNY


def test_only_credits_arriving_in_the_region_count_towards_what_the_source_owes() -> None:
    flows = ClearingFlows()
    flows.add_entry("110000", "xrt/330000/110000/t1", -700)  # Beijing issued 700 for points from Zhejiang
    flows.add_entry("110000", "xrt/330000/110000/t2", 100)  # and took 100 of them back
    flows.add_entry("110000", "xrt/110000/330000/t3", 900)  # its own points leaving: Zhejiang's entry counts
    flows.add_entry("110000", "ops-adjustment:1", -50)  # not a cross-region transfer
    assert flows.gross() == [Position("330000", "110000", 600)]
    assert flows.net() == [Position("330000", "110000", 600)]


def test_a_position_names_the_debtor_then_the_creditor() -> None:
    position = Position("330000", "110000", 250)
    assert (position.debtor_region, position.creditor_region, position.points) == ("330000", "110000", 250)
