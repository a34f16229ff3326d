"""The email sensor: each marketplace's email for batch day D starts once D's candidates are stored and the
marketplace's local send time has come.

A sensor, not a clock schedule: in Tokyo 10:00 on D+1 comes an hour before the 02:00 UTC batch stores D, and
a fixed time cannot wait for data. The sensor's skip reason says what each marketplace's day is waiting for.
"""

import json
from datetime import date, datetime, timedelta, timezone

from dagster import (DefaultSensorStatus, MultiPartitionKey, RunRequest, SensorEvaluationContext,
                     SensorResult, sensor)

from music_feedback.clock import Clock
from music_feedback.defs.common import key
from music_feedback.defs.delivery.assets import batch_stored, local_time
from music_feedback.delivery.email.plan import send_window
from music_feedback.programs.model import Program

# A send window that closed without its batch still gets its (failing) run this long after, so a missed
# day shows as a failed run instead of vanishing from the sensor's view.
REPORT_MISSED_FOR = timedelta(days=1)
# Days back the sensor looks: sendTime may be on D+2 (east of UTC+10), the lateness up to 48 h, plus the above.
LOOKBACK_DAYS = 5


def sensor_name(program: Program) -> str:
    return f"{program.slug}_email_when_stored"


def email_sensor(program: Program, job, daily, clock: Clock | None = None):
    """Requests (D, marketplace) once D's batch is stored and the marketplace's send time has come, or once
    its send window has closed without a batch (that run fails naming the batch). Windows that closed
    before the sensor was last started are not its to answer for: turning it on starts no stale runs.
    `clock`: tests and simulated days; by default the process's clock, read at each tick."""
    config = program.channel("email").typed_config()
    first_day = daily.start.date()

    @sensor(name=sensor_name(program), job=job, minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.STOPPED,
            description=f"{program.program_name}: starts each marketplace's email for day D once D's candidates "
                        f"are stored ({key(program, 'stored_candidates').to_user_string()} D materialized) and "
                        f"{config.send_time} local time has come; a send window that closes without the batch "
                        "gets a run that fails naming it. The skip reason lists what each day waits for.")
    def _email_sensor(context: SensorEvaluationContext) -> SensorResult:
        clk = clock or Clock.from_env()
        now = clk.now()
        started = context.last_sensor_start_time  # wall-clock time, read on this clock
        watched_from = started + clk.offset_s if started is not None else float("-inf")
        today = datetime.fromtimestamp(now, timezone.utc).date()
        requested = set(json.loads(context.cursor)) if context.cursor else set()
        stored: dict[date, bool] = {}
        kept, requests, waiting = set(), [], []
        for day in (today - timedelta(days=n) for n in range(LOOKBACK_DAYS, 0, -1)):  # days that have ended
            if day < first_day:
                continue
            for market in program.marketplaces:
                send_at, send_before = send_window(program, market, day)
                done = f"{day.isoformat()}|{market}"
                if now >= send_before + REPORT_MISSED_FOR.total_seconds() or send_before <= watched_from:
                    continue
                if done in requested:
                    kept.add(done)
                    continue
                if day not in stored:
                    stored[day] = batch_stored(context.instance, program, day)
                if now < send_at:
                    waiting.append(f"{market} {day}: waits for its send time "
                                   f"{local_time(program, market, send_at)}; "
                                   f"batch {'stored' if stored[day] else 'not stored yet'}")
                elif stored[day] or now >= send_before:
                    requests.append(RunRequest(run_key=done, partition_key=MultiPartitionKey(
                        {"date": day.isoformat(), "marketplace": market}),
                        tags={"music_feedback/email_trigger": "batch stored" if stored[day] else "window closed"}))
                    kept.add(done)
                else:
                    waiting.append(f"{market} {day}: send time has come; waits for the batch "
                                   f"({key(program, 'stored_candidates').to_user_string()} {day} not materialized), "
                                   f"until {local_time(program, market, send_before)}")
        for line in waiting:
            context.log.info(line)
        cursor = json.dumps(sorted(kept))
        if requests:
            return SensorResult(run_requests=requests, cursor=cursor)
        return SensorResult(skip_reason="\n".join(waiting) or "no day is due", cursor=cursor)

    return _email_sensor
