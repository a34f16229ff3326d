"""feedback_propensity_model and music_affinity_model: retrained weekly (Sunday 04:00 UTC) on the week's
partition, registered, and promoted only when they beat the champion by scoring.promotionMargin."""
from datetime import date, timedelta

from dagster import AssetExecutionContext, AssetsDefinition, MetadataValue, Output, ResourceParam, asset

from music_feedback.defs.common import OWNER, Stopwatch, key
from music_feedback.defs.partitions import weekly_partitions
from music_feedback.defs.warehouse_tables.assets import reads
from music_feedback.io.port import ParquetIOManager
from music_feedback.programs.model import Program
from music_feedback.scoring.deployment.port import FAILED, ModelDeployer
from music_feedback.scoring.outcomes import training_rows
from music_feedback.scoring.registry.port import ModelRegistry
from music_feedback.scoring.retrain import retrain
from music_feedback.warehouse.port import Warehouse

ASSET_NAMES = {"propensity": "feedback_propensity_model", "affinity": "music_affinity_model"}
QUESTIONS = {"propensity": "will the listener answer a feedback request?",
             "affinity": "will the listener like the track (thumbs up), given they answer?"}


def _table(decision: dict) -> str:
    ev = decision["evaluation"]
    rows = [(name, ev[name]) for name in ("challenger", "champion", "popularity_baseline") if ev[name]]
    return ("| model | AUC | log loss | calibration error |\n|---|---|---|---|\n"
            + "".join(f"| {n} | {m['auc']} | {m['log_loss']} | {m['calibration_error']} |\n" for n, m in rows))


def build_model(program: Program, role: str):
    spec = program.model(role)

    @asset(key=key(program, ASSET_NAMES[role]), group_name=f"{program.slug}_models", owners=[OWNER],
           kinds={"scikitlearn", "python"}, partitions_def=weekly_partitions(program), deps=reads("models"),
           description=f"{spec.model_id}: {QUESTIONS[role]} Gradient-boosted trees on {', '.join(spec.features)}; "
                       "trained weekly on outcomes up to the week's end, evaluated on the newest 20% against the "
                       "champion and a popularity baseline, promoted only by margin.")
    def model(context: AssetExecutionContext, warehouse: Warehouse, model_registry: ModelRegistry,
              model_deployer: ModelDeployer, io_manager: ResourceParam[ParquetIOManager]):
        watch = Stopwatch()
        end = date.fromisoformat(context.partition_key) + timedelta(days=7)
        scored = list(key(program, "scored_candidates").path)
        rows, source = training_rows(warehouse, program.program_id, io_manager, scored, end)
        decision = retrain(spec, rows, model_registry, end, program.scoring.promotion_margin,
                           lineage={"source": source, "warehouse": warehouse.describe(),
                                    "week": context.partition_key, "run_id": context.run_id},
                           deployer=model_deployer)
        deployment = decision["deployment"] or {}
        if deployment.get("status") == FAILED:
            context.log.warning(
                f"{spec.model_id}: deploying {decision['challenger_version']} to endpoint {deployment['endpoint']} "
                f"failed: {deployment['detail']}. The endpoint keeps what it served before, and the registry keeps as "
                f"champion {decision['champion_after'] or 'no version'}, so the batch scores with it. To do: "
                f"{deployment.get('remedy', 're-run this week')}.")
        else:
            context.log.info(f"{spec.model_id}: {decision['reason']}"
                             + (f" ({deployment['detail']})" if deployment else ""))
        return Output(decision, metadata={
            "dagster/row_count": decision["training_rows"], "challenger_version": decision["challenger_version"],
            "champion_version": decision["champion_after"] or "none", "promoted": decision["promoted"],
            "reason": decision["reason"], "training_source": source,
            "training_window": MetadataValue.json(decision["training_window"]),
            "evaluation": MetadataValue.md(_table(decision)), "registry": model_registry.describe(),
            "deployment_status": deployment.get("status", "nothing promoted"),
            "deployment": MetadataValue.json(deployment), "deployer": model_deployer.describe(),
            "duration_s": round(watch.total, 3)})

    return model


def build_models(program: Program) -> list[AssetsDefinition]:
    return [build_model(program, role) for role in ASSET_NAMES]
