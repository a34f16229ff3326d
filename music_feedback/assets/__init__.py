"""The assets of one program, built from its configuration."""
from __future__ import annotations

from music_feedback.assets.common import daily_partitions
from music_feedback.assets.extract import build_extract
from music_feedback.assets.features import build_features
from music_feedback.assets.filter import build_filter
from music_feedback.assets.models import build_models
from music_feedback.assets.score import build_score
from music_feedback.assets.store import build_store
from music_feedback.assets.unify import build_unify
from music_feedback.programs.model import Program


def daily_assets(program: Program) -> list:
    parts = daily_partitions(program)
    return [build_extract(program, parts), build_unify(program, parts), build_filter(program, parts),
            *build_features(program, parts), build_score(program, parts), build_store(program, parts)]


def model_assets(program: Program) -> list:
    return build_models(program)
