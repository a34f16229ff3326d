"""The Dagster job that relays the feedback outbox to the event publisher, every five minutes."""
from dagster import DefaultScheduleStatus, Nothing, OpExecutionContext, Out, ScheduleDefinition, job, op

from music_feedback.feedback.events import EventPublisher, relay
from music_feedback.feedback.port import FeedbackStore


@op(out=Out(Nothing),
    description="Publish every unpublished feedback event, oldest first; what fails stays for the next run.")
def publish_feedback_events(context: OpExecutionContext, feedback_store: FeedbackStore,
                            event_publisher: EventPublisher) -> None:
    published = relay(feedback_store, event_publisher)
    context.log.info(f"published {published} event(s) to {event_publisher.describe()}")


@job(description="Relay feedback events from the outbox table to the event bus (EventBridge on AWS).")
def feedback_events_relay():
    publish_feedback_events()


relay_schedule = ScheduleDefinition(
    name="feedback_events_relay_every_5_minutes", job=feedback_events_relay, cron_schedule="*/5 * * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description="Publishes the feedback outbox every 5 minutes (answers are in the store at once; this moves "
                "their events to the bus).")
