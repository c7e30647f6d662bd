"""``date``: date arithmetic as multiple choice with 4-6 options in MM/DD/YYYY (task family ``choice``).

"Today is March 25, 2021. What is the date 2 weeks and 3 days from today?" The steps are whole-number
calculations on the day of the month (``2 * 7 = 14``, ``25 + 17 = 42``, ``42 - 31 = 11``): dates themselves are
never written inside a calculation, so no step looks like false arithmetic. The wrong options are the dates
that common slips lead to (off by a day or a week, the wrong direction, the wrong month length).
"""

from __future__ import annotations

import calendar
import datetime as dt
import random
from typing import Any

from pydantic import Field

from cotdistill.lab.common import Invalid, Knobs, Recorder, Solution, Val, pick
from cotdistill.tasks.choice import LETTERS

TASK = "date"
FAMILY = "choice"
MONTHS = list(calendar.month_name)[1:]


class DateKnobs(Knobs):
    max_offset: int = Field(27, ge=1, le=60, description="largest number of days to move")
    choices: list[int] = Field(
        default_factory=lambda: [4, 5, 6],
        description="allowed numbers of options (2-10; capped by the distinct slip dates, 8-9)",
    )
    years: list[int] = Field(
        default_factory=lambda: [2019, 2024], min_length=1, description="start years range from min to max of these"
    )
    distractors: int = Field(0, ge=0, le=3, description="irrelevant sentences per question")


DATE_DISTRACTORS = [
    "The meeting lasts {n} hours.",
    "{n} people are invited.",
    "The trip costs {n} dollars.",
]
ASKS_FWD = [
    "Today is {start}. What is the date {span} from today?",
    "Today is {start}. What will the date be {span} later?",
    "A parcel was sent on {start}. It arrives {span} later. On what date does it arrive?",
]
ASKS_BWD = [
    "Today is {start}. What was the date {span} ago?",
    "Today is {start}. What was the date {span} before today?",
    "A concert is on {start}. Tickets went on sale {span} earlier. On what date did they go on sale?",
]


def long_date(d: dt.date) -> str:
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}"


def short_date(d: dt.date) -> str:
    return d.strftime("%m/%d/%Y")


def _span(weeks: int, days: int) -> str:
    parts = []
    if weeks:
        parts.append(f"{weeks} week{'s' if weeks > 1 else ''}")
    if days:
        parts.append(f"{days} day{'s' if days > 1 else ''}")
    return " and ".join(parts)


def _month_len(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    m = year * 12 + (month - 1) + delta
    return m // 12, m % 12 + 1


def make(rng: random.Random, knobs: DateKnobs) -> dict[str, Any]:
    """Draw a start date, a span (weeks and/or days), a direction, and the options (gold among them)."""
    year = rng.randint(min(knobs.years), max(knobs.years))
    month = rng.randint(1, 12)
    start = dt.date(year, month, rng.randint(1, _month_len(year, month)))
    max_weeks = min(3, knobs.max_offset // 7)
    weeks = rng.randint(0, max_weeks)
    days = rng.randint(0 if weeks else 1, min(6 if weeks else knobs.max_offset, knobs.max_offset - 7 * weeks))
    if weeks == 0 and days == 0:
        raise Invalid("empty span")
    forward = rng.random() < 0.5
    p: dict[str, Any] = {"start": start.isoformat(), "weeks": weeks, "days": days, "forward": forward}
    offset = 7 * weeks + days
    sign = 1 if forward else -1
    gold = start + dt.timedelta(days=sign * offset)
    # wrong options: the dates that typical slips lead to
    cands = [
        gold + dt.timedelta(days=1),
        gold - dt.timedelta(days=1),
        gold + dt.timedelta(days=7),
        gold - dt.timedelta(days=7),
        start - dt.timedelta(days=sign * offset),  # wrong direction
        gold + dt.timedelta(days=2),
        gold - dt.timedelta(days=2),
        dt.date(gold.year + 1, gold.month, min(gold.day, 28)),
    ]
    if gold.month != start.month:  # moved into another month: the day number kept in the start month
        cands.append(dt.date(start.year, start.month, min(gold.day, _month_len(start.year, start.month))))
    n = max(2, min(len(LETTERS), pick(rng, knobs.choices)))
    wrong: list[dt.date] = []
    for c in cands[:4] + rng.sample(cands[4:], len(cands) - 4):
        if c != gold and c not in wrong:
            wrong.append(c)
    options = [gold] + wrong[: n - 1]
    rng.shuffle(options)
    p["choices"] = [short_date(d) for d in options]
    p["gold"] = LETTERS[options.index(gold)]
    ask = rng.choice(ASKS_FWD if forward else ASKS_BWD).format(start=long_date(start), span=_span(weeks, days))
    sents = [ask]
    for _ in range(knobs.distractors):
        sents.insert(0, rng.choice(DATE_DISTRACTORS).format(n=rng.randint(2, 20)))
    p["question"] = " ".join(sents)
    facts = [f"The start date is {long_date(start)}."]
    if weeks:
        facts.append("A week has 7 days.")
    y, m = _shift_month(start.year, start.month, 0 if forward else -1)
    facts.append(f"{MONTHS[m - 1]} {y} has {_month_len(y, m)} days.")
    p["facts"] = facts
    return p


def solve(p: dict[str, Any], slip: tuple[int, int] | None = None) -> Solution:
    """Days to move, then the day of the month, carrying into the next (or borrowing from the previous) month."""
    rec = Recorder(slip)
    start = dt.date.fromisoformat(p["start"])
    weeks, days, forward = p["weeks"], p["days"], p["forward"]
    if weeks:
        off = rec.calc(weeks, "*", 7, f"days in {weeks} week{'s' if weeks > 1 else ''}", "week_days")
        if days:
            off = rec.calc(off, "+", days, "days to move in total", "offset")
    else:
        off = Val(days, "offset")
    year, month = start.year, start.month
    if forward:
        day = rec.calc(start.day, "+", off, f"day count from {MONTHS[month - 1]} {start.day}", "day")
        guard = 0
        while day.value > _month_len(year, month):
            mlen = _month_len(year, month)
            name = MONTHS[month - 1]
            year, month = _shift_month(year, month, 1)
            day = rec.calc(day, "-", mlen, f"day of {MONTHS[month - 1]} ({name} has {mlen} days)", "day")
            guard += 1
            if guard > 3:
                raise Invalid("runaway carry")
    else:
        if start.day > off.value:
            day = rec.calc(start.day, "-", off, f"day of {MONTHS[month - 1]} after going back", "day")
        else:
            day = Val(start.day, "day")
            guard = 0
            while day.value <= off.value:
                year, month = _shift_month(year, month, -1)
                mlen = _month_len(year, month)
                text = f"day count from the start of {MONTHS[month - 1]} ({MONTHS[month - 1]} has {mlen} days)"
                day = rec.calc(day, "+", mlen, text, "day")
                guard += 1
                if guard > 3:
                    raise Invalid("runaway borrow")
            day = rec.calc(day, "-", off, f"day of {MONTHS[month - 1]} after going back", "day")
        if day.value < 1:
            raise Invalid("day 0")
    if day.value > _month_len(year, month) or day.value < 1:
        raise Invalid("not a date")
    date = dt.date(year, month, day.value)
    short = short_date(date)
    answer = LETTERS[p["choices"].index(short)] if short in p["choices"] else None
    where = f", which is option ({answer})" if answer else ""
    conclusion = f"So the date is {long_date(date)}, written {short}{where}."
    return Solution(rec.steps, short, answer, conclusion, str(day.value), "day")


def goal(p: dict[str, Any]) -> str:
    start = dt.date.fromisoformat(p["start"])
    word = "after" if p["forward"] else "before"
    return f"the date {_span(p['weeks'], p['days'])} {word} {long_date(start)}"


APPROACHES = [
    "count the days one by one on a calendar",
    "turn the span into days and move the day of the month, carrying across the month end",
    "jump a whole month and then correct the difference",
]
