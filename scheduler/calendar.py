"""China's working calendar: statutory holidays off, make-up working days (调休) on.

Day facts come from ``chinese_calendar``. For years outside its data (it raises
``NotImplementedError`` for them) Monday-Friday are taken as working days and a warning is
logged once per year. Day lookups and per-year running counts are cached at module level, so
a planner may call these methods tens of thousands of times cheaply.

Conventions:

* ``next_slot(m)`` is ``m`` itself when it is working time, else the start of the working
  hours of the same day (a working day, before ``start``) or of the next working day.
* ``next_slot(m, at)`` is the first moment >= ``m`` whose local time is ``at`` on a working
  day; ``at`` is used as given, it is not clamped to working hours.
* ``on_or_after(d, at)`` is the first working day >= ``d`` at ``at`` (default: ``start``).
* ``working_days_between(a, b)`` counts working days in ``(a, b]`` (negative when b < a), so
  ``working_days_between(d, add_working_days(d, n)) == n`` for ``n >= 0``.
* ``working_days_in(a, b)`` lists working days in ``[a, b]``, both ends included.
"""

from __future__ import annotations

import functools
import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger(__name__)

ONE_DAY = timedelta(days=1)
FIRST_KNOWN_YEAR: int = min(chinese_calendar.holidays).year
LAST_KNOWN_YEAR: int = max(chinese_calendar.holidays).year

_warned_years: set[int] = set()


def _warn_once(year: int) -> None:
    """Log that a year falls back to Monday-Friday, once per year."""
    if year not in _warned_years:
        _warned_years.add(year)
        log.warning(
            "chinese_calendar has no data for %d; treating Monday-Friday as working days", year
        )


@functools.cache
def _is_working_day(d: date) -> bool:
    """Whether a date is a working day in China (cached; Mon-Fri past the library's data)."""
    if isinstance(d, datetime):
        raise TypeError("expected a date, got a datetime; convert it to a local date first")
    try:
        return bool(chinese_calendar.is_workday(d))
    except NotImplementedError:
        _warn_once(d.year)
        return d.weekday() < 5


@functools.cache
def _year_counts(year: int) -> tuple[int, ...]:
    """Running count of working days from 1 January through each day of a year (cached)."""
    counts: list[int] = []
    total = 0
    day = date(year, 1, 1)
    while day.year == year:
        total += _is_working_day(day)
        counts.append(total)
        day += ONE_DAY
    return tuple(counts)


def _count_through(d: date, base_year: int) -> int:
    """Working days from 1 January of base_year through d, inclusive (d.year >= base_year)."""
    before = sum(_year_counts(y)[-1] for y in range(base_year, d.year))
    return before + _year_counts(d.year)[d.toordinal() - date(d.year, 1, 1).toordinal()]


def clear_caches() -> None:
    """Forget cached day facts and which years were warned about (for tests)."""
    _is_working_day.cache_clear()
    _year_counts.cache_clear()
    _warned_years.clear()


class WorkCalendar:
    """Working days and hours in one time zone."""

    def __init__(self, tz: ZoneInfo, *, start: time = time(9), end: time = time(18)) -> None:
        """Working hours are start <= local time < end on working days."""
        if start.tzinfo is not None or end.tzinfo is not None:
            raise ValueError("start and end must be naive local times")
        if not start < end:
            raise ValueError(f"working hours start {start} must be before end {end}")
        self.tz = tz
        self.start = start
        self.end = end

    def __repr__(self) -> str:
        """Show the zone and the working hours."""
        return f"WorkCalendar({self.tz.key!r}, start={self.start}, end={self.end})"

    def _local(self, moment: datetime) -> datetime:
        """An aware moment in this calendar's time zone."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"expected an aware datetime, got naive {moment}")
        return moment.astimezone(self.tz)

    def _at(self, d: date, at: time) -> datetime:
        """The aware moment at local time `at` on day d."""
        return datetime.combine(d, at, tzinfo=self.tz)

    def is_working_day(self, d: date) -> bool:
        """Whether d is a working day (holidays off, make-up days on)."""
        return _is_working_day(d)

    def is_working_time(self, moment: datetime) -> bool:
        """Whether an aware moment falls in working hours on a working day, in this zone."""
        local = self._local(moment)
        return _is_working_day(local.date()) and self.start <= local.time() < self.end

    def next_working_day(self, d: date) -> date:
        """The first working day strictly after d."""
        d += ONE_DAY
        while not _is_working_day(d):
            d += ONE_DAY
        return d

    def _working_day_on_or_after(self, d: date) -> date:
        """d if it is a working day, else the next working day."""
        return d if _is_working_day(d) else self.next_working_day(d)

    def previous_working_day(self, d: date) -> date:
        """The last working day strictly before d."""
        d -= ONE_DAY
        while not _is_working_day(d):
            d -= ONE_DAY
        return d

    def next_slot(self, moment: datetime, at: time | None = None) -> datetime:
        """The first working moment >= moment (with `at`: the first working day's `at`)."""
        local = self._local(moment)
        today = local.date()
        if at is not None:
            if _is_working_day(today) and local.time() <= at:
                return self._at(today, at)
            return self._at(self.next_working_day(today), at)
        if _is_working_day(today):
            if local.time() < self.start:
                return self._at(today, self.start)
            if local.time() < self.end:
                return local
        return self._at(self.next_working_day(today), self.start)

    def on_or_after(self, d: date, at: time | None = None) -> datetime:
        """The first working day >= d at local time `at` (default: start of working hours)."""
        return self._at(self._working_day_on_or_after(d), self.start if at is None else at)

    def add_working_days(self, d: date, n: int) -> date:
        """The n-th working day after d (n < 0: before d; n == 0: d itself)."""
        step = ONE_DAY if n > 0 else -ONE_DAY
        remaining = abs(n)
        while remaining:
            d += step
            if _is_working_day(d):
                remaining -= 1
        return d

    def working_days_between(self, a: date, b: date) -> int:
        """How many working days lie in (a, b]; negative of (b, a] when b < a."""
        if b < a:
            return -self.working_days_between(b, a)
        return _count_through(b, a.year) - _count_through(a, a.year)

    def working_days_in(self, a: date, b: date) -> list[date]:
        """The working days in [a, b], both ends included, in order."""
        days: list[date] = []
        d = a
        while d <= b:
            if _is_working_day(d):
                days.append(d)
            d += ONE_DAY
        return days

    def first_working_day_of_week(self, d: date) -> date:
        """First working day of d's ISO week, or the next one after it if the week is off."""
        monday = d - timedelta(days=d.weekday())
        return self._working_day_on_or_after(monday)

    def last_working_day_of_week(self, d: date) -> date:
        """Last working day of d's ISO week, or the last one before it if the week is off."""
        sunday = d + timedelta(days=6 - d.weekday())
        return sunday if _is_working_day(sunday) else self.previous_working_day(sunday)
