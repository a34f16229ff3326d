"""The feedback-volume sensor: a playlist recount once enough new answers have arrived since the last."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from dagster import (DefaultSensorStatus, RunRequest, SensorDefinition, SensorEvaluationContext, SkipReason,
                     sensor)

from music_feedback.feedback.port import FeedbackStore
from music_feedback.programs.model import Program


def feedback_volume_sensor(program: Program, playlists_job) -> SensorDefinition:
    threshold = program.playlists.recalculate_after

    @sensor(name=f"{program.slug}_feedback_volume", job=playlists_job, minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.STOPPED,
            description=f"Requests a playlist recount once {threshold:,} new answers have arrived since the last.")
    def feedback_volume(context: SensorEvaluationContext, feedback_store: FeedbackStore):
        after = int(context.cursor or 0)
        count, newest = feedback_store.events_since(program.program_id, "feedback.", after)
        if count < threshold:
            return SkipReason(f"{count} new answer(s) since event {after}; waiting for {threshold}")
        context.update_cursor(str(newest))
        day = (datetime.now(timezone.utc).date() - timedelta(days=1)).isoformat()
        return RunRequest(run_key=f"feedback-{newest}", partition_key=day,
                          tags={"music_feedback/trigger": f"{count} new answers"})

    return feedback_volume
