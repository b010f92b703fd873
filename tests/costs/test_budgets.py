"""Budgets: windows and their keys, what counts as spent, refusals and threshold crossings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from service.costs.budgets import (
    Budget,
    BudgetWindow,
    Period,
    budgets_from,
    check_submission,
    parse_per_key_budgets,
    thresholds_crossed,
    windows_at,
)
from service.costs.default_prices import DEFAULT_PRICE_TABLES
from service.errors import BudgetExceeded
from storage import spending
from storage.records import TaskStatus
from tests.factories import make_task

DAILY = Budget(Decimal("10"), Period.DAY)
MONTHLY = Budget(Decimal("100"), Period.MONTH)
OWNER_DAILY = Budget(Decimal("5"), Period.DAY, "owner")
AT = datetime(2026, 12, 3, 14, 30, tzinfo=UTC)


def window(budget: Budget, at: datetime = AT, **metadata: object) -> BudgetWindow:
    (found,) = windows_at([budget], at, metadata)
    return found


# --- windows ---------------------------------------------------------------------------------


def test_window_keys() -> None:
    windows = windows_at([DAILY, MONTHLY, OWNER_DAILY], AT, {"owner": "alice"})
    assert [w.key for w in windows] == [
        "daily:2026-12-03",
        "monthly:2026-12",
        "owner=alice:daily:2026-12-03",
    ]
    assert windows[2].scope == "alice"
    assert (windows[0].start, windows[0].end) == (
        datetime(2026, 12, 3, tzinfo=UTC),
        datetime(2026, 12, 4, tzinfo=UTC),
    )
    assert (windows[1].start, windows[1].end) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )


def test_a_per_key_budget_applies_only_to_tasks_with_the_key() -> None:
    assert windows_at([OWNER_DAILY], AT, {"team": "x"}) == []
    assert windows_at([DAILY, OWNER_DAILY], AT, {}) == [window(DAILY)]


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("a:b=c", "owner=a%3Ab%3Dc:daily:2026-12-03"),  # cannot look like another key
        ("", "owner=:daily:2026-12-03"),
        (7, "owner=7:daily:2026-12-03"),
        ("7", "owner=7:daily:2026-12-03"),  # the same owner as the number 7
        ({"b": 1, "a": 2}, "owner=%7B%22b%22%3A1%2C%22a%22%3A2%7D:daily:2026-12-03"),
        ("élise", "owner=%C3%A9lise:daily:2026-12-03"),
    ],
)
def test_metadata_values_in_keys(value: object, key: str) -> None:
    assert window(OWNER_DAILY, owner=value).key == key


def test_day_rolls_over_at_utc_midnight() -> None:
    last = datetime(2026, 12, 3, 23, 59, 59, 999999, tzinfo=UTC)
    assert window(DAILY, last).key == "daily:2026-12-03"
    assert window(DAILY, last + timedelta(microseconds=1)).key == "daily:2026-12-04"
    assert window(DAILY, last).contains(last)
    assert not window(DAILY, last).contains(last + timedelta(microseconds=1))


def test_the_day_is_the_utc_day_whatever_the_offset_given() -> None:
    # 01:00 on the 4th in UTC+2 is still the 3rd in UTC.
    plus_two = timezone(timedelta(hours=2))
    assert window(DAILY, datetime(2026, 12, 4, 1, 0, tzinfo=plus_two)).key == "daily:2026-12-03"


@pytest.mark.parametrize(
    ("at", "key", "end"),
    [
        (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), "monthly:2026-12", datetime(2027, 1, 1)),
        (datetime(2027, 1, 1, tzinfo=UTC), "monthly:2027-01", datetime(2027, 2, 1)),
        (datetime(2028, 2, 29, 12, tzinfo=UTC), "monthly:2028-02", datetime(2028, 3, 1)),
        (datetime(2026, 4, 30, 23, 59, tzinfo=UTC), "monthly:2026-04", datetime(2026, 5, 1)),
    ],
)
def test_month_rolls_over_at_its_end(at: datetime, key: str, end: datetime) -> None:
    found = window(MONTHLY, at)
    assert found.key == key
    assert found.end == end.replace(tzinfo=UTC)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        windows_at([DAILY], datetime(2026, 12, 3), {})


# --- what is spent -----------------------------------------------------------------------------


# The rule is the storage's (storage.spending adds windows up in SQL by it); these are the
# cases a budget must get right.
@pytest.mark.parametrize(
    ("fields", "amount"),
    [
        ({"status": TaskStatus.QUEUED}, "3"),  # queued, pending, submitted...: the estimate
        ({"cost": "2.5"}, "2.5"),  # billed wins
        ({"cost": "0"}, "0"),  # billed nothing
        ({"status": TaskStatus.FAILED}, "0"),  # failed before it was sent: nothing to pay
        ({"status": TaskStatus.FAILED, "provider_task_id": "k1"}, "3"),  # it may be billed
        ({"estimate": None}, "0"),  # stored before prices existed
        ({"estimate": None, "cost": "4"}, "4"),
    ],
)
def test_what_a_task_counts_for(fields: dict[str, object], amount: str) -> None:
    task = make_task(**{"estimate": {"amount": "3", "currency": "units"}, **fields})
    assert spending.committed_amount(task, billed_counts=True) == Decimal(amount)


# --- refusals and thresholds ------------------------------------------------------------------


def test_exactly_at_the_limit_is_allowed_and_reaches_100() -> None:
    (check,) = check_submission([(window(DAILY), Decimal("8"))], Decimal("2"), "units")
    assert check.total == Decimal("10")
    assert [c.level for c in check.crossed] == [100]  # 80 was reached before
    assert check.crossed[0].dedupe_key == "daily:2026-12-03:100"


def test_a_cent_over_the_limit_is_refused() -> None:
    with pytest.raises(BudgetExceeded) as caught:
        check_submission([(window(DAILY), Decimal("7"))], Decimal("3.01"), "USD")
    refusal = caught.value
    assert (refusal.budget, refusal.window) == ("daily", "daily:2026-12-03")
    assert (refusal.limit, refusal.spent, refusal.estimate) == (
        Decimal("10"),
        Decimal("7"),
        Decimal("3.01"),
    )
    assert refusal.as_dict() == {
        "budget": "daily",
        "window": "daily:2026-12-03",
        "limit": "10",
        "spent": "7",
        "estimate": "3.01",
        "currency": "USD",
    }
    assert "7 spent + 3.01 estimated > 10 USD" in str(refusal)


def test_any_window_over_refuses_the_whole_submission() -> None:
    windows = [(window(MONTHLY), Decimal("10")), (window(OWNER_DAILY, owner="al"), Decimal("4"))]
    with pytest.raises(BudgetExceeded) as caught:
        check_submission(windows, Decimal("2"), "units")
    assert caught.value.budget == "owner/daily"
    assert caught.value.window == "owner=al:daily:2026-12-03"


def test_a_window_already_over_refuses_even_a_free_task() -> None:
    # Billed costs above their estimates can take a window past its limit.
    with pytest.raises(BudgetExceeded):
        check_submission([(window(DAILY), Decimal("10.5"))], Decimal("0"), "units")


def test_no_windows_no_refusal() -> None:
    assert check_submission([], Decimal("1000"), "units") == []


@pytest.mark.parametrize(
    ("before", "after", "levels"),
    [
        ("0", "4.99", ()),
        ("0", "5", (50,)),
        ("4.99", "5", (50,)),
        ("5", "7.99", ()),  # 50 was reached before: not again
        ("0", "8", (50, 80)),
        ("0", "10", (50, 80, 100)),
        ("7.99", "10", (80, 100)),
        ("10", "12", ()),  # past 100 already
        ("3", "3", ()),
    ],
)
def test_thresholds_crossed(before: str, after: str, levels: tuple[int, ...]) -> None:
    assert thresholds_crossed(Decimal("10"), Decimal(before), Decimal(after)) == levels


def test_crossings_describe_the_event() -> None:
    found = window(OWNER_DAILY, owner="alice")
    (check,) = check_submission([(found, Decimal("3"))], Decimal("1"), "USD")
    (crossing,) = check.crossed
    assert crossing.as_dict() == {
        "budget": "owner/daily",
        "window": "owner=alice:daily:2026-12-03",
        "scope": "alice",
        "level": 80,
        "limit": "5",
        "spent": "4",
        "currency": "USD",
        "window_start": "2026-12-03T00:00:00+00:00",
        "window_end": "2026-12-04T00:00:00+00:00",
    }


def test_per_key_windows_are_counted_apart() -> None:
    alice, bob = window(OWNER_DAILY, owner="alice"), window(OWNER_DAILY, owner="bob")
    assert alice.key != bob.key
    # alice at her limit does not stop bob
    with pytest.raises(BudgetExceeded):
        check_submission([(alice, Decimal("5"))], Decimal("1"), "USD")
    assert check_submission([(bob, Decimal("0"))], Decimal("1"), "USD")[0].total == 1


def test_a_budget_needs_a_positive_limit() -> None:
    with pytest.raises(ValueError, match="more than 0"):
        Budget(Decimal("0"), Period.DAY)


# --- the settings' text -------------------------------------------------------------------------


def test_parse_per_key_budgets() -> None:
    assert parse_per_key_budgets(" owner=50/day, owner=1000/month ,team.a-b_c=0.5/MONTH,") == (
        Budget(Decimal("50"), Period.DAY, "owner"),
        Budget(Decimal("1000"), Period.MONTH, "owner"),
        Budget(Decimal("0.5"), Period.MONTH, "team.a-b_c"),
    )
    assert parse_per_key_budgets("") == ()
    assert [b.name for b in parse_per_key_budgets("owner=1/day,team=2/month")] == [
        "owner/daily",
        "team/monthly",
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("owner", "must read KEY=AMOUNT/day or KEY=AMOUNT/month"),
        ("owner=50", "must read KEY=AMOUNT/day"),
        ("=50/day", "the metadata key must be letters"),
        ("a b=50/day", "the metadata key must be letters"),
        ("a:b=50/day", "the metadata key must be letters"),
        ("own/er=50/day", "the metadata key must be letters"),
        ("é=50/day", "the metadata key must be letters"),
        ("owner=50/week", "the period must be day or month"),
        ("owner=lots/day", "'lots' is not a decimal number"),
        ("owner=-5/day", "is negative"),
        ("owner=0/day", "more than 0"),
        ("owner=inf/day", "not a finite number"),
        ("owner=5/day,owner=6/day", "owner already has a daily budget"),
    ],
)
def test_bad_per_key_budgets(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_per_key_budgets(text)


def test_budgets_from_the_settings() -> None:
    assert budgets_from(Decimal("10"), None, "owner=5/day") == (DAILY, OWNER_DAILY)
    assert budgets_from(None, Decimal("100")) == (MONTHLY,)
    assert budgets_from(None, None) == ()


@pytest.mark.parametrize(
    ("provider", "cost", "counted"),
    [
        ("kling", "7.2", "7.2"),  # final_unit_deduction is in the table's units
        ("kling", "0", "0"),
        ("kling", None, "3"),  # not billed yet: the estimate
        ("kling", "free", "3"),  # unreadable: the estimate stands
        ("kling", "-1", "3"),
        ("kling", "1e3", "3"),  # only plain decimals, as the SQL sums take them
        ("kling", " 7.2", "3"),
        ("newapi", "7.2", "3"),  # Kling's units relayed; the table is in USD
        ("apimodels", "7.2", "3"),
    ],
)
def test_a_reported_cost_counts_in_the_tables_currency_only(
    provider: str, cost: str | None, counted: str
) -> None:
    task = make_task(cost=cost, estimate={"amount": "3", "currency": "?"})
    comparable = DEFAULT_PRICE_TABLES[provider].final_cost_comparable
    assert spending.committed_amount(task, billed_counts=comparable) == Decimal(counted)


@pytest.mark.parametrize("value", ["alice", "", 7, 1.5, True, None, ["a"], {"b": 1, "a": 2}, "é"])
def test_window_scopes_are_what_storage_compares(value: object) -> None:
    # storage.spending adds windows up in SQL by the same text: the two must never drift.
    assert window(OWNER_DAILY, owner=value).scope == spending.scope_text(value)
