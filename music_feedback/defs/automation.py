"""How the day's operations around the batch run: a job of some of a program's assets, and a schedule that
runs a daily job for the day before at a fixed time (UTC), stopped until turned on."""
from __future__ import annotations

from dagster import (AssetSelection, DailyPartitionsDefinition, DefaultScheduleStatus, ScheduleDefinition,
                     build_schedule_from_partitioned_job, define_asset_job, in_process_executor)

from music_feedback.defs.common import key
from music_feedback.programs.model import Program


def asset_job(program: Program, name: str, assets: list[str], description: str,
              daily: DailyPartitionsDefinition | None):
    """`<program>_<name>`: the program's assets named, one partition (or none) per run, in one process."""
    return define_asset_job(f"{program.slug}_{name}",
                            selection=AssetSelection.assets(*(key(program, a) for a in assets)),
                            partitions_def=daily, executor_def=in_process_executor,
                            description=f"{program.program_name}: {description}")


def daily_schedule(program: Program, job, hour: int, minute: int, what: str) -> ScheduleDefinition:
    return build_schedule_from_partitioned_job(
        job, hour_of_day=hour, minute_of_hour=minute, default_status=DefaultScheduleStatus.STOPPED,
        description=f"{program.program_name}: {what} at {hour:02d}:{minute:02d} UTC for the day before.")
