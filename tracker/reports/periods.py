"""Report periods: inclusive local dates in TRACKER_TIMEZONE turned into UTC instants,
and their geometry: the whole UTC hours inside them, their local midnights, whether
their days can be found by arithmetic.

Every bad date is a ``PeriodError`` whose message says what was wrong and how to
fix it (the API answers 422 with it). Absurd but valid periods (year 1 to 9999)
are clamped to the years data can exist in, which changes no figure and keeps
every query bounded.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: no event or outcome can be stamped outside these instants (events carry the
#: tracker's clock; senders' sent_at beyond them would be a sender bug)
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

#: longer periods list only days with activity in ``days`` (a dense list of
#: millions of empty days helps nobody)
DENSE_DAYS = 3660

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


class PeriodError(ValueError):
    """A period that cannot be reported on; the message is shown to the caller."""


@dataclass(frozen=True)
class Period:
    first: date          # first local day, inclusive
    last: date           # last local day, inclusive
    timezone: str
    start: datetime      # UTC instant of first's local midnight (clamped)
    end: datetime        # UTC instant after last's local day (exclusive, clamped)

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def on_whole_hours(self) -> bool:
        """Start and end fall on whole UTC hours (not in a time zone with half-hour
        midnights): counters kept per UTC hour answer the period exactly."""
        return all(t.minute == t.second == t.microsecond == 0 for t in (self.start, self.end))

    @property
    def dense(self) -> bool:
        return self.days <= DENSE_DAYS

    def local_days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.days)]


def parse_date(value: str | None, name: str) -> date:
    if value is None or value == "":
        raise PeriodError(f"{name} is required: give a date as YYYY-MM-DD, e.g. {name}=2026-05-01")
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise PeriodError(
            f"{name}={value[:40]!r} is not a date; give YYYY-MM-DD (years 0001 to 9999), "
            f"e.g. {name}=2026-05-01") from None


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local day starts, clamped to [EARLIEST, LATEST]."""
    if day.year < EARLIEST.year + 1:
        return EARLIEST
    if day.year >= LATEST.year:
        return LATEST
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def period(from_: str | None, to: str | None, timezone: str) -> Period:
    """The period [from_, to] in ``timezone``; raises PeriodError on bad input."""
    first = parse_date(from_, "from")
    last = parse_date(to, "to")
    if first > last:
        raise PeriodError(f"from ({first}) is after to ({last}); swap them or fix one")
    zone = ZoneInfo(timezone)
    end = LATEST if last == date.max else local_midnight(last + timedelta(days=1), zone)
    return Period(first, last, timezone, local_midnight(first, zone), end)


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def ceil_hour(t: datetime) -> datetime:
    floor = floor_hour(t)
    return floor if floor == t else floor + HOUR


@functools.lru_cache(maxsize=512)
def midnights(period: Period) -> tuple[datetime, ...] | None:
    """The UTC instants of the period's local midnights, from its first day's to the
    one after its last day; None for periods too long or too far out to list them.
    Cached: a year's midnights take ~1 ms to compute, and reports ask for the same
    periods."""
    if (not period.dense or period.first.year <= EARLIEST.year
            or period.last.year >= LATEST.year - 1):
        return None
    zone = ZoneInfo(period.timezone)
    bounds = tuple(local_midnight(period.first + timedelta(days=i), zone)
                   for i in range(period.days + 1))
    if bounds[0] != period.start or bounds[-1] != period.end:
        return None
    if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        return None
    return bounds


def day_bounds(period: Period) -> tuple[datetime, ...] | None:
    """``midnights`` when they can place rollup hours in local days: all of them on
    whole UTC hours. None otherwise."""
    bounds = midnights(period)
    if bounds is None or any(b.astimezone(UTC) != floor_hour(b.astimezone(UTC))
                             for b in bounds):
        return None
    return bounds


def uniform_days(period: Period) -> bool:
    """Every local day of the period lasts 24 hours (no DST change inside): a day
    starts a whole number of days after the period does."""
    bounds = midnights(period)
    return bounds is not None and all(b - a == DAY for a, b in zip(bounds, bounds[1:],
                                                                    strict=False))


def dense_days(period: Period, found: set[object]) -> list[date]:
    """The days a series lists: all of them for sane periods, else those with data."""
    if period.dense:
        return period.local_days()
    return sorted(d for d in found if isinstance(d, date))
