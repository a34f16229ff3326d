"""feedback_propensity_model and music_affinity_model: trained on the warehouse's outcome history."""

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from music_feedback.assets.common import OWNER, Stopwatch, key
from music_feedback.assets.warehouse_tables import reads
from music_feedback.programs.model import Program
from music_feedback.scoring.training import train_model
from music_feedback.warehouse import queries as q
from music_feedback.warehouse.port import Warehouse

ASSET_NAMES = {"propensity": "feedback_propensity_model", "affinity": "music_affinity_model"}
QUESTIONS = {"propensity": "will the listener answer a feedback request?",
             "affinity": "will the listener like the track (thumbs up), given they answer?"}


def build_model(program: Program, role: str):
    spec = program.model(role)

    @asset(key=key(program, ASSET_NAMES[role]), group_name=f"{program.slug}_models", owners=[OWNER],
           kinds={"scikitlearn", "python"}, deps=reads("models"),
           description=f"{spec.model_id}: {QUESTIONS[role]} Gradient-boosted trees on {', '.join(spec.features)}; "
                       "trained on past requests and their outcomes, evaluated on the newest 20%.")
    def model(context: AssetExecutionContext, warehouse: Warehouse):
        watch = Stopwatch()
        trained = train_model(spec, q.training_outcomes(warehouse, program.program_id))
        table = "| metric | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in trained.metrics.items())
        return Output(trained, metadata={
            "dagster/row_count": trained.training_rows, "version": trained.version,
            "features": MetadataValue.json(trained.features), **trained.metrics,
            "duration_s": round(watch.total, 3), "preview": MetadataValue.md(table)})

    return model


def build_models(program: Program):
    return [build_model(program, role) for role in ASSET_NAMES]
