"""A program's partitions: batch days from its partitionsStartDate, and the training weeks.

Fixed by configuration, never read from the warehouse, so loading the definitions reads no data file. A day
before the warehouse's first play is still a partition; the runner refuses to run a day with no plays."""
from __future__ import annotations

from datetime import date, timedelta

from dagster import DailyPartitionsDefinition, TimeWindowPartitionMapping, WeeklyPartitionsDefinition

from music_feedback.programs.model import Program


def daily_partitions(program: Program) -> DailyPartitionsDefinition:
    """Partition D holds day D's plays; it is complete, and scheduled, once D has ended."""
    return DailyPartitionsDefinition(start_date=program.first_batch_day.isoformat(), end_offset=0)


def batch_date(context) -> date:
    return date.fromisoformat(context.partition_key)


def weekly_partitions(program: Program) -> WeeklyPartitionsDefinition:
    """Week partitions start on Sunday; week W is retrained at the Sunday 04:00 that ends it. They start two
    weeks before the first daily partition, so its day has a week that ended before it (week_for_day)."""
    start = program.first_batch_day - timedelta(days=14)
    return WeeklyPartitionsDefinition(start_date=start.isoformat(), day_offset=0)


def week_for_day(day: date) -> str:
    """The partition key of the latest week that ended on or before `day` (its champion scores `day`)."""
    end = day - timedelta(days=(day.weekday() + 1) % 7)
    return (end - timedelta(days=7)).isoformat()


# Day D maps to the week holding D-7 (offsets count the day's own periods): week_for_day(D), the latest week
# that ended by D, whose retrain made D's champion.
MODEL_WEEK_OF_DAY = TimeWindowPartitionMapping(start_offset=-7, end_offset=-7)
