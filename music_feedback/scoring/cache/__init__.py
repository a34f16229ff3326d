"""The score cache: a pair's scores, per model versions, kept for 14 days so it is not scored again."""
