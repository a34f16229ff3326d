"""Checks on the feature assets: nulls and ranges per partition (blocking: scoring must not read bad
features), and a freshness policy (materialized each day between 02:00 and 03:00 UTC)."""
from __future__ import annotations

from datetime import timedelta

from dagster import AssetCheckSpec, FreshnessPolicy

from music_feedback.quality.expectations import Between, NotNull, Unique

# Fresh when materialized between 02:00 (the batch starts) and the 03:00 deadline, every day.
FRESHNESS = FreshnessPolicy.cron(deadline_cron="0 3 * * *", lower_bound_delta=timedelta(hours=1), timezone="UTC")

LISTENER_CHECKS = [Unique(("listener_id",)), NotNull("listener_id"), NotNull("feedback_history"),
                   Between("engagement_score", 0.0, 1.0), Between("listening_frequency", 0.0, None),
                   Between("feedback_history", 0.0, None)]
TRACK_CHECKS = [Unique(("track_id",)), NotNull("track_id"), NotNull("similar_track_ratings"),
                Between("artist_popularity", 0.0, 1.0), Between("similar_track_ratings", 0.0, 1.0)]


def check_spec(asset_key, kind: str, partitions=None) -> AssetCheckSpec:
    return AssetCheckSpec(f"{kind}_features_valid", asset=asset_key, blocking=True, partitions_def=partitions,
                          description=f"{kind.capitalize()} features: one row per {kind}, no nulls where "
                                      "scoring needs a value, values within their ranges.")
