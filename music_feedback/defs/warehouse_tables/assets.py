"""The warehouse tables the batch reads, as external assets: the lineage shows what each stage depends on
(the filter on listeners and on past requests, the models on past outcomes), not just the stage before."""
from __future__ import annotations

from dagster import AssetKey, AssetSpec, Definitions, TableColumn, TableSchema, definitions

from music_feedback.programs.loader import load_programs
from music_feedback.warehouse.schema import TABLES

GROUP = "warehouse"
DESCRIPTIONS = {
    "track_plays": "Every play: listener, track, completion, play count, release date. The extract's source.",
    "listeners": "Listener attributes: marketplace, time zone, opt-out, bot score, authenticity, engagement.",
    "listener_genre_affinity": "Each listener's genre weights: the music_taste_profile feature.",
    "tracks": "Track attributes: genre, artist, popularity, release date, whether feedback is allowed.",
    "feedback_history": "Answers listeners gave: eligibility (already answered) and features.",
    "feedback_requests": "Requests already sent: the weekly frequency cap.",
    "feedback_outcomes": "Past requests, the features seen then, and whether the listener answered and liked.",
}
# Which tables each stage reads (the connector's own table is added to the extract).
READS = {
    "unify": ("listeners", "tracks"),
    "filter": ("listeners", "tracks", "feedback_history", "feedback_requests"),
    "features": ("listeners", "listener_genre_affinity", "tracks", "feedback_history"),
    "models": ("feedback_outcomes",),
}


def table_key(table: str) -> AssetKey:
    return AssetKey(["warehouse", table])


def warehouse_table_specs(extra_tables: set[str] = frozenset()) -> list[AssetSpec]:
    """One external asset per table; a connector may read a table outside the standard set."""
    return [AssetSpec(table_key(t), group_name=GROUP, kinds={"sql"}, owners=["team:data-engineering"],
                      description=DESCRIPTIONS.get(t, f"Source table of a program's connector: {t}."),
                      metadata={"dagster/column_schema": TableSchema(
                          columns=[TableColumn(c, typ) for c, typ in TABLES[t].items()])} if t in TABLES else None)
            for t in sorted(set(TABLES) | set(extra_tables)) if t != "warehouse_meta"]


def reads(stage: str) -> list[AssetKey]:
    return [table_key(t) for t in READS[stage]]


@definitions
def defs() -> Definitions:
    """Every standard table, and any other table a program's connector reads."""
    return Definitions(assets=warehouse_table_specs({p.connector.config.table for p in load_programs()}))
