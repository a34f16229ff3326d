"""email_deliveries: each marketplace's feedback requests, sent at 10:00 local time on D+1, exactly once."""

from datetime import date, datetime, time as dtime, timedelta, timezone
from zoneinfo import ZoneInfo

from dagster import (AssetExecutionContext, AssetKey, Config, DefaultScheduleStatus, MaterializeResult,
                     MetadataValue, MultiPartitionKey, MultiPartitionsDefinition, RunRequest,
                     StaticPartitionsDefinition, asset, define_asset_job, in_process_executor, schedule)

from music_feedback.assets.common import OWNER, key
from music_feedback.delivery.email.plan import plan, send_window
from music_feedback.delivery.email.port import EmailSender
from music_feedback.delivery.email.render import Renderer
from music_feedback.delivery.email.send import EmailDelivery, SendOptions
from music_feedback.delivery.links import LinkSigner
from music_feedback.delivery.settings import address_template, public_url
from music_feedback.feedback.port import FeedbackStore
from music_feedback.programs.model import Program
from music_feedback.store.base import CandidateStore
from music_feedback.warehouse.port import Warehouse


class EmailRunConfig(Config):
    # A simulated or backfilled day runs as if it were the marketplace's send time; a schedule uses the clock.
    at_send_time: bool = False
    workers: int = 4


def email_partitions(program: Program, daily) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition({"date": daily, "marketplace": StaticPartitionsDefinition(program.marketplaces)})


def job_name(program: Program) -> str:
    return f"{program.slug}_email_delivery"


def build_email(program: Program, daily):
    partitions = email_partitions(program, daily)
    config = program.channel("email").typed_config()

    @asset(
        key=key(program, "email_deliveries"), group_name=program.slug, owners=[OWNER], kinds={"email"},
        partitions_def=partitions, deps=[AssetKey(key(program, "stored_candidates").path)],
        description=f"Feedback requests by email ({config.template_id}) for one marketplace, at {config.send_time} "
                    f"local time on D+1: the day's best candidates (score >= {config.min_score}, at most "
                    f"{config.limit:,}, at most {config.max_per_track:,} per track), opt-out, suppression and the "
                    "weekly cap checked again at send time, one campaign per marketplace and genre. The ledger "
                    "makes each request go out once; one past the lateness window is recorded as expired.")
    def email_deliveries(context: AssetExecutionContext, config: EmailRunConfig, candidate_store: CandidateStore,
                         feedback_store: FeedbackStore, email_sender: EmailSender,
                         warehouse: Warehouse) -> MaterializeResult:
        keys = context.partition_key.keys_by_dimension
        day, marketplace = date.fromisoformat(keys["date"]), keys["marketplace"]
        send_at, _ = send_window(program, marketplace, day)
        offset = (send_at - datetime.now(timezone.utc).timestamp()) if config.at_send_time else 0.0
        clock = lambda: datetime.now(timezone.utc).timestamp() + offset  # noqa: E731
        planned = plan(program, candidate_store, feedback_store, day,
                       datetime.combine(day + timedelta(days=1), dtime(), tzinfo=timezone.utc))
        if clock() < send_at:
            context.log.warning(f"{marketplace}: before the send time; requests stay planned, nothing is sent")
        renderer = Renderer(program, LinkSigner.from_env(), public_url(), address_template())
        delivery = EmailDelivery(program, candidate_store, feedback_store, email_sender, renderer, warehouse,
                                 SendOptions(workers=config.workers, clock=clock))
        report = delivery.run(day, marketplace) if clock() >= send_at else None
        counts = dict(report.counts) if report else {}
        ledger = feedback_store.ledger_counts(program.program_id, day.isoformat(), program.channel("email").channel_id)
        campaigns = {c: n for c, n in planned["campaigns"].items() if c.startswith(f"{marketplace}-")}
        return MaterializeResult(metadata={
            "sent": counts.get("sent", 0), "failed": counts.get("failed", 0), "expired": counts.get("expired", 0),
            "cancelled_at_send_time": counts.get("cancelled", 0), "retried": counts.get("retried", 0),
            "campaigns": campaigns, "reasons": dict((report.reasons if report else {}).most_common(10)),
            "ledger_all_marketplaces": ledger, "email_service": email_sender.describe(),
            "send_at": MetadataValue.timestamp(send_at), "duration_s": round(report.seconds, 3) if report else 0.0,
        })

    return email_deliveries


def email_job(program: Program, asset_def):
    return define_asset_job(job_name(program), selection=[asset_def], executor_def=in_process_executor,
                            partitions_def=asset_def.partitions_def,
                            description=f"{program.program_name}: send one marketplace's feedback requests.")


def email_schedules(program: Program, job) -> list:
    """One per marketplace at sendTime in its own zone, for the batch day that ended the day before."""
    config = program.channel("email").typed_config()
    hour, minute = map(int, config.send_time.split(":"))
    out = []
    for marketplace in program.marketplaces:
        zone = program.time_zone(marketplace) if config.timezone == "local" else config.timezone

        @schedule(name=f"{program.slug}_email_{marketplace.lower()}", job=job, cron_schedule=f"{minute} {hour} * * *",
                  execution_timezone=zone, default_status=DefaultScheduleStatus.STOPPED,
                  description=f"{program.program_name}: email for {marketplace} at {config.send_time} {zone}, "
                              "for the batch day before.")
        def _schedule(context, _market=marketplace, _zone=zone):
            local_day = context.scheduled_execution_time.astimezone(ZoneInfo(_zone)).date()
            partition = MultiPartitionKey({"date": (local_day - timedelta(days=1)).isoformat(), "marketplace": _market})
            return RunRequest(run_key=str(partition), partition_key=partition)

        out.append(_schedule)
    return out
