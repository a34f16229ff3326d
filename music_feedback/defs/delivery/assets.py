"""The day's stored candidates leave the platform: email_deliveries, each marketplace's feedback requests for
batch day D sent exactly once at its local send time; and s3_export, the day's scored candidates in the lake
as Parquet, by run date and marketplace."""

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import polars as pl
from dagster import (AssetExecutionContext, AssetIn, AssetKey, AssetRecordsFilter, Config, DagsterInstance,
                     Failure, MaterializeResult, MetadataValue, MultiPartitionsDefinition,
                     StaticPartitionsDefinition, asset)

from music_feedback.clock import Clock
from music_feedback.defs.common import OWNER, Stopwatch, key
from music_feedback.defs.partitions import batch_date
from music_feedback.delivery.email.plan import plan, send_window, send_zone
from music_feedback.delivery.email.port import EmailSender
from music_feedback.delivery.email.render import Renderer
from music_feedback.delivery.email.send import EmailDelivery, SendOptions
from music_feedback.delivery.links import LinkSigner
from music_feedback.delivery.settings import address_template, public_url
from music_feedback.feedback.port import FeedbackStore
from music_feedback.lake.port import Lake, split
from music_feedback.programs.model import Program
from music_feedback.store.base import CandidateStore
from music_feedback.warehouse.port import Warehouse


class EmailRunConfig(Config):
    # A simulated or backfilled day runs as if it were the marketplace's send time; else the program's clock.
    at_send_time: bool = False
    workers: int = 4


def email_partitions(program: Program, daily) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition({"date": daily, "marketplace": StaticPartitionsDefinition(program.marketplaces)})


def batch_stored(instance: DagsterInstance, program: Program, day: date) -> bool:
    """Whether day D's batch is stored: its stored_candidates partition has been materialized. Asked of the
    instance, not the store: a day with no candidates writes nothing to the store, and is still stored."""
    found = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=key(program, "stored_candidates"), asset_partitions=[day.isoformat()]), limit=1)
    return bool(found.records)


def local_time(program: Program, marketplace: str, epoch: float) -> str:
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
            raise Failure(description=f"{marketplace} {day}: its send time "
                                      f"{local_time(program, marketplace, send_at)} "
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
            # May or may not have been taken by the service (a read timeout, a 5xx): left for its events.
            "unknown": counts.get("unknown", 0),
            "reconciled": {k: counts.get(f"reconciled_{k}", 0) for k in ("sent", "failed", "resend")},
            "campaigns": campaigns, "reasons": dict(report.reasons.most_common(10)),
            "ledger_all_marketplaces": ledger, "email_service": email_sender.describe(),
            "send_at": MetadataValue.timestamp(send_at), "duration_s": round(report.seconds, 3),
        })

    return email_deliveries


LAKE_TABLE = "candidates"  # s3_export's table in the lake


def build_export(program: Program, partitions):
    @asset(
        key=key(program, "s3_export"), group_name=program.slug, owners=[OWNER], kinds={"parquet", "s3"},
        partitions_def=partitions, ins={"scored": AssetIn(key(program, "scored_candidates"))},
        deps=[key(program, "stored_candidates")],
        description="The day's scored candidates in the lake (a local folder, or S3 with Glue partitions on "
                    "AWS), Parquet with zstd in `candidates/run_date=D/marketplace=M/`. Re-running a day "
                    "replaces it whole; a reader sees the old day or the new one.")
    def s3_export(context: AssetExecutionContext, lake: Lake, scored: pl.DataFrame) -> MaterializeResult:
        day = batch_date(context).isoformat()
        watch = Stopwatch()
        rows = scored.with_columns(pl.lit(day).alias("batch_date"))
        if isinstance(rows.schema.get("features"), pl.Struct):  # the lake's readers keep the JSON text they had
            rows = rows.with_columns(pl.col("features").struct.json_encode())
        parts = split(rows) if rows.height else {}
        written = lake.replace_day(LAKE_TABLE, day, parts)
        if not rows.height:
            context.log.warning(f"{day}: no candidates; the day is exported empty")
        return MaterializeResult(metadata={
            "dagster/row_count": rows.height, "rows_by_marketplace": {m: f.height for m, f in parts.items()},
            "files": len(written), "location": MetadataValue.path(written[0].rsplit("/marketplace=", 1)[0])
            if written else lake.describe(), "lake": lake.describe(), "duration_s": round(watch.total, 3)})

    return s3_export
