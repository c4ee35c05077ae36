"""WorkCalendar: China's working days (holidays off, make-up days on) and working hours."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler import calendar as workcal
from scheduler.calendar import LAST_KNOWN_YEAR, WorkCalendar

TZ = ZoneInfo("Asia/Shanghai")
D = date.fromisoformat


def at(text: str) -> datetime:
    """An aware Asia/Shanghai moment from 'YYYY-MM-DD HH:MM'."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """Each test starts without cached day facts or remembered warnings."""
    workcal.clear_caches()
    yield
    workcal.clear_caches()


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar(TZ)


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2023-10-02", False),  # National Day holiday (Monday)
        ("2023-10-06", False),  # National Day holiday (Friday)
        ("2023-10-07", True),  # make-up working Saturday
        ("2023-10-08", True),  # make-up working Sunday
        ("2023-10-09", True),  # ordinary Monday
        ("2023-09-29", False),  # Mid-Autumn, Friday
        ("2023-09-28", True),
        ("2023-06-22", False),  # Dragon Boat
        ("2023-06-23", False),
        ("2023-06-24", False),
        ("2023-06-25", True),  # make-up working Sunday
        ("2023-05-01", False),  # Labour Day
        ("2023-05-02", False),
        ("2023-05-03", False),
        ("2023-04-23", True),  # make-up working Sunday
        ("2023-05-06", True),  # make-up working Saturday
        ("2023-11-11", False),  # ordinary Saturday
        ("2023-11-12", False),  # ordinary Sunday
        ("2023-11-13", True),  # ordinary Monday
    ],
)
def test_is_working_day_2023(cal: WorkCalendar, day: str, working: bool) -> None:
    assert cal.is_working_day(D(day)) is working


def test_is_working_day_rejects_datetime(cal: WorkCalendar) -> None:
    with pytest.raises(TypeError):
        cal.is_working_day(at("2023-10-09 10:00"))


@pytest.mark.parametrize(
    ("moment", "working"),
    [
        (at("2023-10-09 08:59"), False),
        (at("2023-10-09 09:00"), True),  # start is in
        (at("2023-10-09 17:59"), True),
        (at("2023-10-09 18:00"), False),  # end is out
        (at("2023-10-07 10:00"), True),  # make-up Saturday
        (at("2023-10-02 10:00"), False),  # holiday
        (at("2023-11-11 10:00"), False),  # weekend
        # 02:00 UTC is 10:00 in Shanghai
        (datetime(2023, 10, 9, 2, 0, tzinfo=UTC), True),
        # 10:00 UTC is 18:00 in Shanghai
        (datetime(2023, 10, 9, 10, 0, tzinfo=UTC), False),
        # 20:00 UTC Sunday 8 Oct is 04:00 Monday in Shanghai: a working day, before hours
        (datetime(2023, 10, 8, 20, 0, tzinfo=UTC), False),
    ],
)
def test_is_working_time(cal: WorkCalendar, moment: datetime, working: bool) -> None:
    assert cal.is_working_time(moment) is working


def test_custom_hours() -> None:
    cal = WorkCalendar(TZ, start=time(8, 30), end=time(17, 30))
    assert cal.is_working_time(at("2023-10-09 08:30"))
    assert not cal.is_working_time(at("2023-10-09 17:30"))
    assert cal.next_slot(at("2023-10-09 07:00")) == at("2023-10-09 08:30")


def test_bad_hours_and_naive_moments(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError):
        WorkCalendar(TZ, start=time(18), end=time(9))
    with pytest.raises(ValueError):
        cal.is_working_time(datetime(2023, 10, 9, 10))
    with pytest.raises(ValueError):
        cal.next_slot(datetime(2023, 10, 9, 10))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2023-10-07 08:00", "2023-10-07 09:00"),  # make-up Saturday, before hours
        ("2023-10-06 20:00", "2023-10-07 09:00"),  # holiday evening -> make-up Saturday
        ("2023-10-09 10:15", "2023-10-09 10:15"),  # already working time: unchanged
        ("2023-10-09 09:00", "2023-10-09 09:00"),
        ("2023-10-09 18:00", "2023-10-10 09:00"),  # end of hours -> next day
        ("2023-09-28 19:00", "2023-10-07 09:00"),  # into the Golden Week
        ("2023-10-01 12:00", "2023-10-07 09:00"),
        ("2023-11-10 18:30", "2023-11-13 09:00"),  # Friday evening -> Monday
        ("2023-11-11 10:00", "2023-11-13 09:00"),  # ordinary Saturday
    ],
)
def test_next_slot(cal: WorkCalendar, moment: str, expected: str) -> None:
    slot = cal.next_slot(at(moment))
    assert slot == at(expected)
    assert slot.tzinfo is TZ
    assert cal.is_working_time(slot)


def test_next_slot_converts_to_the_calendar_zone(cal: WorkCalendar) -> None:
    slot = cal.next_slot(datetime(2023, 10, 9, 2, 0, tzinfo=UTC))
    assert slot.tzinfo is TZ
    assert (slot.date(), slot.time()) == (D("2023-10-09"), time(10))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2023-10-09 08:00", "2023-10-09 10:00"),  # working day before `at`
        ("2023-10-09 10:00", "2023-10-09 10:00"),  # exactly `at`
        ("2023-10-09 10:01", "2023-10-10 10:00"),  # past `at`: next working day
        ("2023-10-06 09:00", "2023-10-07 10:00"),  # holiday -> make-up Saturday
        ("2023-09-29 08:00", "2023-10-07 10:00"),
    ],
)
def test_next_slot_at(cal: WorkCalendar, moment: str, expected: str) -> None:
    assert cal.next_slot(at(moment), at=time(10)) == at(expected)


@pytest.mark.parametrize(
    ("day", "when", "expected"),
    [
        ("2023-10-02", time(10), "2023-10-07 10:00"),
        ("2023-10-07", time(10), "2023-10-07 10:00"),
        ("2023-11-11", None, "2023-11-13 09:00"),  # default: start of hours
        ("2023-09-29", None, "2023-10-07 09:00"),
    ],
)
def test_on_or_after(cal: WorkCalendar, day: str, when: time | None, expected: str) -> None:
    assert cal.on_or_after(D(day), when) == at(expected)


@pytest.mark.parametrize(
    ("day", "n", "expected"),
    [
        ("2023-10-09", -1, "2023-10-08"),  # make-up Sunday
        ("2023-10-09", -2, "2023-10-07"),  # make-up Saturday
        ("2023-10-09", -3, "2023-09-28"),  # skips Golden Week and Mid-Autumn
        ("2023-09-28", 1, "2023-10-07"),
        ("2023-09-28", 3, "2023-10-09"),
        ("2023-10-02", 1, "2023-10-07"),  # from a holiday
        ("2023-10-02", 0, "2023-10-02"),  # n == 0 is the day itself
        ("2023-06-21", 1, "2023-06-25"),  # over Dragon Boat to the make-up Sunday
        ("2023-04-28", 1, "2023-05-04"),  # over Labour Day
        ("2023-05-04", -1, "2023-04-28"),
        ("2023-12-29", 1, "2024-01-02"),  # over the New Year
    ],
)
def test_add_working_days(cal: WorkCalendar, day: str, n: int, expected: str) -> None:
    assert cal.add_working_days(D(day), n) == D(expected)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("2023-09-28", "2023-10-09", 3),  # 7th, 8th, 9th
        ("2023-09-27", "2023-09-28", 1),
        ("2023-10-01", "2023-10-06", 0),
        ("2023-10-09", "2023-10-09", 0),
        ("2023-10-09", "2023-09-28", -3),
        ("2022-12-31", "2023-12-31", 249),  # working days of 2023 in China
    ],
)
def test_working_days_between(cal: WorkCalendar, a: str, b: str, expected: int) -> None:
    assert cal.working_days_between(D(a), D(b)) == expected


def test_working_days_between_matches_counting(cal: WorkCalendar) -> None:
    base = D("2023-09-20")
    for offset in range(0, 30, 3):
        for length in range(0, 400, 37):
            a = base + timedelta(days=offset)
            b = a + timedelta(days=length)
            counted = sum(cal.is_working_day(a + timedelta(days=i)) for i in range(1, length + 1))
            assert cal.working_days_between(a, b) == counted
            assert cal.working_days_between(b, a) == -counted


@pytest.mark.parametrize("n", [1, 2, 3, 10, 250])
def test_add_then_count_round_trip(cal: WorkCalendar, n: int) -> None:
    start = D("2023-09-25")
    assert cal.working_days_between(start, cal.add_working_days(start, n)) == n


def test_working_days_in(cal: WorkCalendar) -> None:
    assert cal.working_days_in(D("2023-09-27"), D("2023-10-09")) == [
        D("2023-09-27"),
        D("2023-09-28"),
        D("2023-10-07"),
        D("2023-10-08"),
        D("2023-10-09"),
    ]
    assert cal.working_days_in(D("2023-10-01"), D("2023-10-06")) == []
    assert cal.working_days_in(D("2023-10-09"), D("2023-10-01")) == []


@pytest.mark.parametrize(
    ("day", "first", "last"),
    [
        ("2023-09-27", "2023-09-25", "2023-09-28"),  # Friday 29th is Mid-Autumn
        ("2023-10-04", "2023-10-07", "2023-10-08"),  # Mon-Fri off, Sat & Sun make-up days
        ("2023-11-15", "2023-11-13", "2023-11-17"),  # ordinary week
        ("2023-06-19", "2023-06-19", "2023-06-25"),  # Dragon Boat week ends on make-up Sunday
        ("2023-05-01", "2023-05-04", "2023-05-06"),  # Labour Day week
    ],
)
def test_week_bounds(cal: WorkCalendar, day: str, first: str, last: str) -> None:
    assert cal.first_working_day_of_week(D(day)) == D(first)
    assert cal.last_working_day_of_week(D(day)) == D(last)


def test_week_with_no_working_days(cal: WorkCalendar, monkeypatch: pytest.MonkeyPatch) -> None:
    off = {D("2023-11-13") + timedelta(days=i) for i in range(7)}
    monkeypatch.setattr(
        workcal.chinese_calendar, "is_workday", lambda d: d.weekday() < 5 and d not in off
    )
    assert cal.first_working_day_of_week(D("2023-11-15")) == D("2023-11-20")
    assert cal.last_working_day_of_week(D("2023-11-15")) == D("2023-11-10")


@pytest.mark.parametrize(
    ("day", "working"),
    [
        ("2040-01-02", True),  # Monday
        ("2040-01-06", True),  # Friday
        ("2040-01-07", False),  # Saturday
        ("2040-01-08", False),  # Sunday
        ("2040-10-01", True),  # Monday: no holiday data, so a working day
    ],
)
def test_fallback_is_monday_to_friday(cal: WorkCalendar, day: str, working: bool) -> None:
    assert cal.is_working_day(D(day)) is working


def test_fallback_warns_once_per_year(cal: WorkCalendar, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="scheduler.calendar"):
        assert cal.working_days_in(D("2040-01-01"), D("2040-01-31"))
        assert cal.working_days_between(D("2040-01-01"), D("2040-12-31")) > 0
        assert cal.add_working_days(D("2040-03-01"), 10)
        assert cal.is_working_day(D("2041-01-02"))
        assert cal.is_working_day(D("2023-10-09"))  # known year: no warning
    messages = [r.getMessage() for r in caplog.records if r.name == "scheduler.calendar"]
    assert messages == [
        "chinese_calendar has no data for 2040; treating Monday-Friday as working days",
        "chinese_calendar has no data for 2041; treating Monday-Friday as working days",
    ]


def test_counts_across_the_last_known_year(
    cal: WorkCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    last = date(LAST_KNOWN_YEAR, 12, 31)
    after = date(LAST_KNOWN_YEAR + 1, 1, 31)
    counted = sum(
        cal.is_working_day(last + timedelta(days=i)) for i in range(1, (after - last).days + 1)
    )
    assert cal.working_days_between(last, after) == counted
    assert any(f"no data for {LAST_KNOWN_YEAR + 1}" in r.getMessage() for r in caplog.records)
