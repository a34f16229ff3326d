"""Feedback-solicitation programs as Dagster assets."""
