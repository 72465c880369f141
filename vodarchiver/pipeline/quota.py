"""The YouTube quota planner: what each call costs, from which daily bucket, and when it resets.

Pure. Costs and budgets are settings (YOUTUBE_QUOTA_COSTS, YOUTUBE_QUOTA_BUDGETS), so both
Google's old rule (`videos.insert` = 1,600 of 10,000 units) and its newer separate upload bucket
(100 uploads a day) can be configured. Google resets quotas at midnight Pacific time, daylight
saving time included; the day a unit is counted against is the Pacific date. The store charges
a call atomically only when the bucket can afford it, so the daemon never makes a call it
cannot pay for, even with several replicas sharing one project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")
CALLS = ("videos.insert", "videos.list", "channels.list", "playlistItems.list",
         "playlistItems.insert", "videos.delete", "thumbnails.set", "captions.list",
         "captions.insert")  # fmt: skip
EXTRA_CALLS = ("thumbnails.set", "captions.list", "captions.insert")  # never before an upload
DEFAULT_BUDGETS = "default=10000"
DEFAULT_COSTS = ("videos.insert=default:1600,videos.list=default:1,channels.list=default:1,"
                 "playlistItems.list=default:1,playlistItems.insert=default:50,"
                 "videos.delete=default:50,thumbnails.set=default:50,captions.list=default:50,"
                 "captions.insert=default:400")  # fmt: skip


@dataclass(frozen=True)
class Charge:
    """One call's price: `units` from `bucket`, counted on the Pacific day `day`."""

    call: str
    bucket: str
    units: int
    budget: int
    day: date

    @property
    def key(self) -> str:
        """The `kv` key that counts this bucket's units for the day."""
        return used_key(self.bucket, self.day)


@dataclass(frozen=True)
class QuotaPlan:
    """The configured buckets (units a day) and the price of every call."""

    budgets: Mapping[str, int]
    costs: Mapping[str, tuple[str, int]]

    def charge(self, call: str, now: datetime) -> Charge:
        """What `call` costs now."""
        bucket, units = self.costs[call]
        return Charge(call, bucket, units, self.budgets[bucket], pacific_day(now))


def used_key(bucket: str, day: date) -> str:
    """`kv` key of a bucket's units spent on one Pacific day."""
    return f"youtube_quota_used:{bucket}:{day.isoformat()}"


def pacific_day(now: datetime) -> date:
    """The Pacific calendar day `now` falls on: the day Google counts quota against."""
    return now.astimezone(PACIFIC).date()


def next_reset(now: datetime) -> datetime:
    """The next midnight in America/Los_Angeles after `now`, in UTC."""
    tomorrow = pacific_day(now) + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), tzinfo=PACIFIC).astimezone(UTC)


def parse_budgets(raw: str) -> dict[str, int]:
    """`default=10000,uploads=100` -> {'default': 10000, 'uploads': 100}."""
    budgets: dict[str, int] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        name, sep, units = part.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not units.strip().isdigit():
            raise ValueError(f"expected bucket=units pairs such as default=10000, got {part!r}")
        budgets[name] = int(units)
    if not budgets:
        raise ValueError("needs at least one bucket, such as default=10000")
    return budgets


def parse_costs(raw: str) -> dict[str, tuple[str, int]]:
    """`videos.insert=default:1600,...` -> {'videos.insert': ('default', 1600), ...}.

    Every call the daemon makes must have a price; calls not named keep their default.
    """
    costs = dict(_parse_pairs(DEFAULT_COSTS))
    costs.update(_parse_pairs(raw))
    return costs


def _parse_pairs(raw: str) -> dict[str, tuple[str, int]]:
    costs: dict[str, tuple[str, int]] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        call, sep, price = part.partition("=")
        bucket, colon, units = price.partition(":")
        call, bucket = call.strip(), bucket.strip()
        if not sep or not colon or not units.strip().isdigit() or not bucket.isidentifier():
            raise ValueError(
                f"expected call=bucket:units pairs such as videos.insert=default:1600, got {part!r}"
            )
        if call not in CALLS:
            raise ValueError(f"unknown call {call!r}; the calls are {', '.join(CALLS)}")
        costs[call] = (bucket, int(units))
    return costs


def check_plan(budgets: Mapping[str, int], costs: Mapping[str, tuple[str, int]]) -> list[str]:
    """Problems with a plan: a call charged to a bucket with no budget, or one it can never pay."""
    problems = []
    for call, (bucket, units) in sorted(costs.items()):
        if bucket not in budgets:
            problems.append(f"{call} is charged to bucket {bucket!r}, which has no budget")
        elif units > budgets[bucket] and call not in EXTRA_CALLS:
            # (an extra a small budget can never pay is left undone and shown, not refused)
            problems.append(f"{call} costs {units}, more than bucket {bucket!r} holds a day")
    return problems
