"""Run a day's email delivery, every marketplace as at its send time (make run, backfills): through
`runner.execute`, from the code location inside `music-feedback run`, else in this process."""
from __future__ import annotations

from datetime import date

from dagster import DagsterInstance, Failure, MultiPartitionKey

from music_feedback.programs.model import Program
from music_feedback.run_guard import run_tags

# A Failure is the run saying why it stopped (no stored batch, not yet its send time): its words are the message.
FAILURE = f"{Failure.__module__}.{Failure.__qualname__}: "


def run_email(defs, program: Program, day: date, inst: DagsterInstance, at_send_time: bool = True) -> list[dict]:
    from music_feedback.defs.delivery.jobs import email_job_name  # lazy: the library never imports defs/ at load
    from music_feedback.runner import QUIET, execute  # lazy: the runner sits on top of delivery
    job = defs.resolve_job_def(email_job_name(program))
    out = []
    for marketplace in program.marketplaces:
        partition = MultiPartitionKey({"date": day.isoformat(), "marketplace": marketplace})
        config = {**QUIET, "ops": {f"{program.slug}__email_deliveries": {"config": {"at_send_time": at_send_time}}}}
        result = execute(job, partition, inst, run_tags(), run_config=config)
        meta = next(iter(result.materializations.values()), {})
        out.append({"marketplace": marketplace, "success": result.success, "meta": meta,
                    "error": None if result.success else result.error.removeprefix(FAILURE)})
    return out


def email_summary(results: list[dict]) -> str:
    lines = ["email, each marketplace as at its local send time:"]
    for r in results:
        m = r["meta"]
        if not r["success"]:
            lines.append(f"  {r['marketplace']:<3} FAILED: {r['error']}")
            continue
        lines.append(f"  {r['marketplace']:<3} sent {m.get('sent', 0):>6,}  failed {m.get('failed', 0):>4,}  "
                     f"expired {m.get('expired', 0):>4,}  cancelled at send time {m.get('cancelled_at_send_time', 0):>4,}"
                     f"  {m.get('duration_s', 0):.1f}s")
    if results and results[0]["meta"].get("email_service"):
        lines.append(f"  delivered to: {results[0]['meta']['email_service']}")
    return "\n".join(lines)
