"""The job that relays the feedback outbox to the event publisher (EventBridge on AWS)."""
from dagster import Nothing, OpExecutionContext, Out, in_process_executor, job, op

from music_feedback.feedback.events import EventPublisher, relay
from music_feedback.feedback.port import FeedbackStore


@op(out=Out(Nothing),
    description="Publish every unpublished feedback event, oldest first; what fails stays for the next run.")
def publish_feedback_events(context: OpExecutionContext, feedback_store: FeedbackStore,
                            event_publisher: EventPublisher) -> None:
    published = relay(feedback_store, event_publisher)
    context.log.info(f"published {published} event(s) to {event_publisher.describe()}")


# One op: a process of its own per step (Dagster's default executor) would only add a Python start.
@job(description="Relay feedback events from the outbox table to the event bus (EventBridge on AWS).",
     executor_def=in_process_executor)
def feedback_events_relay():
    publish_feedback_events()
