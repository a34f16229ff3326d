"""The relay's schedule: every five minutes."""
from dagster import DefaultScheduleStatus, ScheduleDefinition

from music_feedback.defs.events_relay.jobs import feedback_events_relay

relay_schedule = ScheduleDefinition(
    name="feedback_events_relay_every_5_minutes", job=feedback_events_relay, cron_schedule="*/5 * * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Publishes the feedback outbox every 5 minutes (answers are in the store at once; this moves "
                "their events to the bus).")
