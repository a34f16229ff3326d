"""Answer "why was listener L (not) asked about track T on day D" from the batch's kept decisions."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from music_feedback.feedback.port import CONTACTED
from music_feedback.io.parquet_io_manager import LocalParquetIOManager
from music_feedback.io.port import ParquetIOManager
from music_feedback.policy.contact import REASON_TEXT
from music_feedback.policy.gate import ContactGate
from music_feedback.programs.model import Program
from music_feedback.store.base import CandidateStore


def _rows(frames: ParquetIOManager, program: Program, asset: str, day: date, listener: int,
          track: int) -> pl.DataFrame | None:
    try:
        scan = frames.scan([program.slug, asset], day.isoformat())
    except FileNotFoundError:
        return None
    return scan.filter((pl.col("listener_id") == listener) & (pl.col("track_id") == track)).collect()


def explain(assets: Path | ParquetIOManager, store: CandidateStore, program: Program, listener: int, track: int,
            day: date, gate: ContactGate | None = None, at: float | None = None) -> list[str]:
    """`assets`: the IO manager the batch wrote through, a folder or S3 (a path stands for the local one);
    with `gate`, the ledger's state and the contact policy's answer at `at` for each stored channel."""
    frames = assets if isinstance(assets, ParquetIOManager) else LocalParquetIOManager(base_dir=str(assets))
    who = f"listener {listener}, track {track}, {day.isoformat()}"
    unified = _rows(frames, program, "unified_candidates", day, listener, track)
    if unified is None:
        where = frames.where(frames.key_of([program.slug, "unified_candidates"], day.isoformat(), "parquet"))
        root = Path(frames.base_dir) if isinstance(frames, LocalParquetIOManager) else None
        hint = ("" if root is None or (root.parent.exists() and any(root.parent.iterdir())) else
                f"; nothing is there at all: run from the project folder or set MUSIC_FEEDBACK_HOME to its data folder")
        return [f"{who}: the {program.program_id} batch for {day.isoformat()} has not run "
                f"(looked for {where}{hint})"]
    rejected = _rows(frames, program, "rejected_streams", day, listener, track)
    if rejected is not None and rejected.height:
        reasons = ", ".join(sorted(set(rejected["reason"])))
        lines = [f"{who}: {rejected.height} extracted play row(s) set aside as malformed ({reasons})"]
        if not unified.height:
            return lines
    else:
        lines = []
    if not unified.height:
        return [f"{who}: not a candidate: no play of at least 95% on that day of a track released in the 7 days "
                "before it"]
    decision = _rows(frames, program, "candidate_decisions", day, listener, track)
    if decision is None:
        return lines + [f"{who}: a candidate, but the filter stage of {day.isoformat()} has not completed; "
                        "re-run the day and ask again"]
    if decision.height:
        row = decision.row(0, named=True)
        return lines + [f"{who}: removed by the '{row['filter']}' filter, reason {row['reason']}"]
    scored = _rows(frames, program, "scored_candidates", day, listener, track)
    if scored is None or not scored.height:
        return lines + [f"{who}: passed every filter but has not been scored yet"]
    s = scored.row(0, named=True)
    lines.append(f"{who}: passed every filter; score {s['score']:.3f} (propensity {s['propensity_score']:.3f}, "
                 f"affinity {s['affinity_score']:.3f}; {s['propensity_model_version']}, {s['affinity_model_version']})")
    stored = [r for r in store.for_listener(program.program_id, listener)
              if r["track_id"] == track and r["batch_date"] == day.isoformat()]
    if stored:
        lines.append(f"{who}: stored for channel(s) {', '.join(sorted(r['channel'] for r in stored))}, "
                     f"status {stored[0]['status']}")
    else:
        lines.append(f"{who}: not in the candidate store (expired, purged, or the store step has not run)")
    if gate is not None:
        lines += _policy_now(gate, program, listener, track, day, sorted(r["channel"] for r in stored), at)
    return lines


def _policy_now(gate: ContactGate, program: Program, listener: int, track: int, day: date, channels: list[str],
                at: float) -> list[str]:
    """What the delivery ledger holds for the pair, and what the contact policy says now, per channel."""
    lines = []
    for channel in channels:
        row = gate.feedback.ledger_row(program.program_id, day.isoformat(), listener, track, channel)
        contacted = row is not None and row["state"] in CONTACTED
        reason = gate.may_contact(listener, track, channel, at, contacted=contacted)
        ledger = f"ledger {row['state']}" + (f" ({row['reason']})" if row.get("reason") else "") if row else "not planned"
        lines.append(f"  {channel}: {ledger}; contact policy now: "
                     + (f"no, {reason} ({REASON_TEXT[reason]})" if reason else "may be asked"))
    return lines
