"""Seq order out of commit order, as pure logic."""

from __future__ import annotations

from services.stream.reorder import Reorder


def test_in_order_updates_pass_straight_through() -> None:
    order: Reorder[str] = Reorder(0)
    assert order.push(1, "a", now=0) == ["a"]
    assert order.push(2, "b", now=0) == ["b"]
    assert order.delivered == 2


def test_an_early_update_waits_for_the_gap_to_fill() -> None:
    order: Reorder[str] = Reorder(10)
    assert order.push(12, "twelve", now=0) == []
    assert not order.overdue(now=0.5)
    assert order.push(11, "eleven", now=0.6) == ["eleven", "twelve"]
    assert not order.overdue(now=5)


def test_after_the_wait_what_the_database_has_fills_and_holes_are_skipped() -> None:
    order: Reorder[str] = Reorder(10, wait=1.0)
    order.push(14, "fourteen", now=0)
    assert order.overdue(now=1.0)
    assert order.gap() == (10, 14)
    assert order.settle([(12, "twelve"), (14, "fourteen")]) == ["twelve", "fourteen"]
    assert order.delivered == 14
    assert order.push(13, "late", now=2) == []  # ids on a feed never go backwards


def test_duplicates_and_old_updates_are_dropped() -> None:
    order: Reorder[str] = Reorder(5)
    assert order.push(5, "old", now=0) == []
    assert order.push(6, "six", now=0) == ["six"]
    assert order.push(6, "six again", now=0) == []


def test_a_new_gap_gets_its_own_full_wait() -> None:
    order: Reorder[str] = Reorder(0, wait=1.0)
    order.push(2, "two", now=0)
    order.push(1, "one", now=0.9)
    order.push(4, "four", now=0.9)
    assert not order.overdue(now=1.5)
    assert order.overdue(now=2.0)


def test_a_held_update_pushed_again_goes_out_as_it_was_last_pushed() -> None:
    order: Reorder[str] = Reorder(0)
    order.push(2, "two", now=0)
    order.push(2, "two, edited", now=0)
    assert order.push(1, "one", now=0) == ["one", "two, edited"]


def test_a_discarded_update_is_a_hole_settled_like_any_other() -> None:
    order: Reorder[str] = Reorder(0, wait=1.0)
    order.push(2, "two", now=0)
    order.push(3, "three", now=0)
    order.discard(2)
    assert order.overdue(now=1.0)
    assert order.settle([]) == ["three"]
    assert order.delivered == 3


def test_a_held_update_deleted_before_its_turn_becomes_a_hole() -> None:
    order: Reorder[str] = Reorder(0, wait=1.0)
    order.push(2, "two", now=0)
    order.discard(2)
    order.discard(7)  # never held: nothing to do
    assert order.overdue(now=1.0) and order.gap() == (0, 0)  # the gap still waits its turn, with nothing above it
    assert (order.settle([]), order.delivered) == ([], 0)
    assert not order.overdue(now=5)
    assert order.push(1, "one", now=5) == ["one"]


def test_settling_never_delivers_again_what_was_delivered() -> None:
    order: Reorder[str] = Reorder(5)
    order.push(7, "seven", now=0)
    assert order.settle([(5, "five again"), (6, "six"), (7, "seven")]) == ["six", "seven"]
    assert order.delivered == 7
