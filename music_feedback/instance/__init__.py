"""The Dagster instance's storage, where Dagster's own needs a change (see dagster.yaml)."""
