"""The feedback store on DynamoDB: one table, three indexes (see table.py for the layout)."""
from music_feedback.feedback.dynamodb.store import DynamoDBFeedbackStore

__all__ = ["DynamoDBFeedbackStore"]
