"""The alert of a failed run: the job, partition, the failing step(s) and each one's own error, read from the
run's step-failure events in the instance (not the run's "Steps failed: [...]" summary)."""
from __future__ import annotations

from dagster import DagsterEventType, DagsterInstance, DagsterRun

MAX_ERROR = 2_000


def _user_error(error) -> tuple[str, str]:
    """(class, message) of the error the step's code raised: Dagster wraps it in its own execution error, whose
    cause it is."""
    while error.cause is not None and error.cls_name.startswith("Dagster"):
        error = error.cause
    message = (error.message or "").strip()
    return error.cls_name or "", message[:MAX_ERROR]


def failure_alert(instance: DagsterInstance, run: DagsterRun, run_message: str | None, at: float) -> dict:
    """One alert for the run: `step` and `error` are the first step that failed and its error (`errors` lists
    each failed step); a run that failed before any step (a launch or resource error) gives the run's own
    message as the error and no step."""
    records = instance.get_records_for_run(run_id=run.run_id, of_type=DagsterEventType.STEP_FAILURE).records
    steps = []
    for record in records:
        event = record.event_log_entry.dagster_event
        data = event.step_failure_data if event else None
        if data is None or data.error is None:
            continue
        kind, message = _user_error(data.error)
        steps.append({"step": event.step_key, "error_type": kind, "error": message})
    first = steps[0] if steps else {"step": None, "error_type": None, "error": (run_message or "")[:MAX_ERROR]}
    return {"at": at, "job": run.job_name, "run_id": run.run_id, "partition": run.tags.get("dagster/partition"),
            **first, "errors": steps, "run_message": run_message}


def subject(alert: dict) -> str:
    """A one-line summary (SNS subjects: at most 100 printable ASCII characters)."""
    where = f" at {alert['step']}" if alert.get("step") else ""
    part = f" [{alert['partition']}]" if alert.get("partition") else ""
    text = f"music_feedback: {alert['job']}{part} failed{where}"
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
    return text if len(text) <= 100 else text[:97] + "..."
