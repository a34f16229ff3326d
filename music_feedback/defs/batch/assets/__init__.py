"""The batch's assets, one module per stage: extract -> unify -> filter -> features -> score -> store."""
from __future__ import annotations

from dagster import AssetsDefinition, DailyPartitionsDefinition

from music_feedback.defs.batch.assets.extract import build_extract
from music_feedback.defs.batch.assets.features import build_features
from music_feedback.defs.batch.assets.filter import build_filter
from music_feedback.defs.batch.assets.score import build_score
from music_feedback.defs.batch.assets.store import build_store
from music_feedback.defs.batch.assets.unify import build_unify
from music_feedback.programs.model import Program


def batch_assets(program: Program, daily: DailyPartitionsDefinition) -> list[AssetsDefinition]:
    return [build_extract(program, daily), build_unify(program, daily), build_filter(program, daily),
            *build_features(program, daily), build_score(program, daily), build_store(program, daily)]
