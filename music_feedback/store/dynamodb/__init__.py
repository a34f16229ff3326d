"""The DynamoDB adapter of the candidate store."""
from music_feedback.store.dynamodb.store import DynamoDBCandidateStore
from music_feedback.store.dynamodb.writer import StoreWriteError

__all__ = ["DynamoDBCandidateStore", "StoreWriteError"]
