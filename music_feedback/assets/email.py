"""email_deliveries: each marketplace's feedback requests for batch day D, sent exactly once, once D's
candidates are stored and the marketplace's local send time has come.

A sensor, not a clock schedule, starts the runs: in Tokyo 10:00 on D+1 comes an hour before the 02:00 UTC
batch stores D, and a fixed time cannot wait for data. The sensor's skip reason says what each
marketplace's day is waiting for.
"""

import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from dagster import (AssetExecutionContext, AssetKey, AssetRecordsFilter, Config, DagsterInstance,
                     DefaultSensorStatus, Failure, MaterializeResult, MetadataValue, MultiPartitionKey,
                     MultiPartitionsDefinition, RunRequest, SensorEvaluationContext, SensorResult,
                     StaticPartitionsDefinition, asset, define_asset_job, in_process_executor, sensor)

from music_feedback.assets.common import OWNER, key
from music_feedback.clock import Clock
from music_feedback.delivery.email.plan import plan, send_window, send_zone
from music_feedback.delivery.email.port import EmailSender
from music_feedback.delivery.email.render import Renderer
from music_feedback.delivery.email.send import EmailDelivery, SendOptions
from music_feedback.delivery.links import LinkSigner
from music_feedback.delivery.settings import address_template, public_url
from music_feedback.feedback.port import FeedbackStore
from music_feedback.programs.model import Program
from music_feedback.store.base import CandidateStore
from music_feedback.warehouse.port import Warehouse

# A send window that closed without its batch still gets its (failing) run this long after, so a missed
# day shows as a failed run instead of vanishing from the sensor's view.
REPORT_MISSED_FOR = timedelta(days=1)
# Days back the sensor looks: sendTime may be on D+2 (east of UTC+10), the lateness up to 48 h, plus the above.
LOOKBACK_DAYS = 5


class EmailRunConfig(Config):
    # A simulated or backfilled day runs as if it were the marketplace's send time; else the program's clock.
    at_send_time: bool = False
    workers: int = 4


def email_partitions(program: Program, daily) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition({"date": daily, "marketplace": StaticPartitionsDefinition(program.marketplaces)})


def job_name(program: Program) -> str:
    return f"{program.slug}_email_delivery"


def sensor_name(program: Program) -> str:
    return f"{program.slug}_email_when_stored"


def batch_stored(instance: DagsterInstance, program: Program, day: date) -> bool:
    """Whether day D's batch is stored: its stored_candidates partition has been materialized. Asked of the
    instance, not the store: a day with no candidates writes nothing to the store, and is still stored."""
    found = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key(program, "stored_candidates"), asset_partitions=[day.isoformat()]), limit=1)
    return bool(found.records)


def _when(program: Program, marketplace: str, epoch: float) -> str:
    """An instant as the marketplace reads it, and in UTC."""
    zone = send_zone(program, marketplace)
    local = datetime.fromtimestamp(epoch, ZoneInfo(zone))
    return f"{local:%Y-%m-%d %H:%M} {zone} ({datetime.fromtimestamp(epoch, timezone.utc):%Y-%m-%d %H:%M} UTC)"


def missing_batch(program: Program, day: date) -> str:
    return (f"no stored batch for program {program.program_id}, day {day.isoformat()}: "
            f"{key(program, 'stored_candidates').to_user_string()} has no materialization for partition "
            f"{day.isoformat()}; run the daily batch for that day first. Nothing was planned or sent.")


def build_email(program: Program, daily):
    partitions = email_partitions(program, daily)
    config = program.channel("email").typed_config()

    @asset(
        key=key(program, "email_deliveries"), group_name=program.slug, owners=[OWNER], kinds={"email"},
        partitions_def=partitions, deps=[AssetKey(key(program, "stored_candidates").path)],
        description=f"Feedback requests by email ({config.template_id}) for one marketplace, at {config.send_time} "
                    f"local time on D+1 or, if the batch is not stored yet, as soon as it is: the day's best "
                    f"candidates (score >= {config.min_score}, at most {config.limit:,}, at most "
                    f"{config.max_per_track:,} per track), opt-out, suppression and the weekly cap checked again "
                    "at send time, one campaign per marketplace and genre. The ledger makes each request go out "
                    "once; one past the lateness window is recorded as expired. A day with no stored batch fails.")
    def email_deliveries(context: AssetExecutionContext, config: EmailRunConfig, candidate_store: CandidateStore,
                         feedback_store: FeedbackStore, email_sender: EmailSender,
                         warehouse: Warehouse) -> MaterializeResult:
        keys = context.partition_key.keys_by_dimension
        day, marketplace = date.fromisoformat(keys["date"]), keys["marketplace"]
        send_at, _ = send_window(program, marketplace, day)
        clock = Clock.at(send_at) if config.at_send_time else Clock.from_env()
        if not batch_stored(context.instance, program, day):
            raise Failure(description=missing_batch(program, day))
        if clock() < send_at:  # the sensor never starts one early; a launch by hand is refused, not half-done
            raise Failure(description=f"{marketplace} {day}: its send time {_when(program, marketplace, send_at)} "
                                      "has not come; nothing was planned or sent. Its sensor starts it then; a "
                                      "simulated or backfilled day runs with at_send_time.")
        planned = plan(program, candidate_store, feedback_store, day,
                       datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=timezone.utc))
        renderer = Renderer(program, LinkSigner.from_env(), public_url(), address_template())
        delivery = EmailDelivery(program, candidate_store, feedback_store, email_sender, renderer, warehouse,
                                 SendOptions(workers=config.workers, clock=clock))
        report = delivery.run(day, marketplace)
        counts = dict(report.counts)
        ledger = feedback_store.ledger_counts(program.program_id, day.isoformat(), program.channel("email").channel_id)
        campaigns = {c: n for c, n in planned["campaigns"].items() if c.startswith(f"{marketplace}-")}
        return MaterializeResult(metadata={
            "sent": counts.get("sent", 0), "failed": counts.get("failed", 0), "expired": counts.get("expired", 0),
            "cancelled_at_send_time": counts.get("cancelled", 0), "retried": counts.get("retried", 0),
            "campaigns": campaigns, "reasons": dict(report.reasons.most_common(10)),
            "ledger_all_marketplaces": ledger, "email_service": email_sender.describe(),
            "send_at": MetadataValue.timestamp(send_at), "duration_s": round(report.seconds, 3),
        })

    return email_deliveries


def email_job(program: Program, asset_def):
    return define_asset_job(job_name(program), selection=[asset_def], executor_def=in_process_executor,
                            partitions_def=asset_def.partitions_def,
                            description=f"{program.program_name}: send one marketplace's feedback requests.")


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
                    waiting.append(f"{market} {day}: waits for its send time {_when(program, market, send_at)}; "
                                   f"batch {'stored' if stored[day] else 'not stored yet'}")
                elif stored[day] or now >= send_before:
                    requests.append(RunRequest(run_key=done, partition_key=MultiPartitionKey(
                        {"date": day.isoformat(), "marketplace": market}),
                        tags={"music_feedback/email_trigger": "batch stored" if stored[day] else "window closed"}))
                    kept.add(done)
                else:
                    waiting.append(f"{market} {day}: send time has come; waits for the batch "
                                   f"({key(program, 'stored_candidates').to_user_string()} {day} not materialized), "
                                   f"until {_when(program, market, send_before)}")
        for line in waiting:
            context.log.info(line)
        cursor = json.dumps(sorted(kept))
        if requests:
            return SensorResult(run_requests=requests, cursor=cursor)
        return SensorResult(skip_reason="\n".join(waiting) or "no day is due", cursor=cursor)

    return _email_sensor
