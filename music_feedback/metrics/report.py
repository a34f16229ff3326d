"""The daily report: an HTML page with a summary table and PNG charts (one funnel per channel, the score
distribution against the program's bands and the email threshold, the holdout lift, feedback by genre and
marketplace, playlist moves), every axis labelled with its unit. Written to a staging folder and renamed
into place, so a report folder that exists is complete."""
from __future__ import annotations

import html
import math
import os
import shutil
import textwrap
import uuid
from pathlib import Path

import polars as pl

from music_feedback.metrics.compute import (STAGE_LABELS, STAGES, Z95, DayMetrics, channel_kinds, lift_text,
                                            stages_of)
from music_feedback.programs.model import Program

GREEN, GREY = "#1db954", "#9aa0a6"


class _Pyplot:
    """matplotlib.pyplot on first use: the evening report needs it, the other jobs should not pay its
    ~0.5 s import and memory in every process that loads the definitions."""

    def __getattr__(self, name):
        # lazy: matplotlib ~0.5 s of every process that loads the definitions; only the evening report draws
        import matplotlib
        matplotlib.use("Agg")  # files only, no display
        # lazy: matplotlib.pyplot, after use("Agg") above
        import matplotlib.pyplot
        return getattr(matplotlib.pyplot, name)


plt = _Pyplot()


def _save(fig, path: Path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig  # closed, but its axes still say what was drawn


def funnel_chart(program: Program, funnel: pl.DataFrame, path: Path) -> None:
    """One funnel per channel: voice has no opens or clicks, and its answers are not email's."""
    channels = funnel["channel"].unique().sort().to_list() if funnel.height else []
    fig, axes = plt.subplots(max(len(channels), 1), 1, figsize=(6.4, 0.6 + 2.2 * max(len(channels), 1)),
                             squeeze=False)
    kinds = channel_kinds(program)
    for ax, channel in zip(axes[:, 0], channels or [None]):
        stages = stages_of(program, channel) if channel else STAGES
        totals = [int(funnel.filter(pl.col("channel") == channel)[s].sum()) if channel else 0 for s in stages]
        bars = ax.barh([STAGE_LABELS[s] for s in stages][::-1], totals[::-1], color=GREEN)
        ax.bar_label(bars, labels=[f"{t:,}" for t in totals[::-1]], padding=3, fontsize=8)
        ax.set_title(f"Funnel of the day's requests: {channel} ({kinds.get(channel, '?')})" if channel
                     else "Funnel of the day's requests: none delivered")
        ax.set_xlabel("requests (count)")
        ax.set_ylabel("stage")
        ax.margins(x=0.15)
    return _save(fig, path)


def score_chart(program: Program, scored: pl.DataFrame, path: Path) -> None:
    """The distribution with the program's band edges and the email channel's minScore."""
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    if scored.height:
        ax.hist(scored["score"].to_numpy(), bins=40, range=(0, 1), color=GREEN)
    bands = program.metrics.score_bands
    for name, edge in (("high", bands.high), ("medium", bands.medium)):
        ax.axvline(edge, color=GREY, linestyle=":", linewidth=1, label=f"{name} score from {edge:.2f}")
    email = program.channel("email")
    if email:
        threshold = email.typed_config().min_score
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"email minScore {threshold:.2f}")
    ax.legend(fontsize=8)
    ax.set_title("Score distribution of the day's candidates")
    ax.set_xlabel("combined score (0 to 1, no unit)")
    ax.set_ylabel("candidates (count)")
    return _save(fig, path)


def feedback_chart(answers: pl.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.4))
    for ax, by in zip(axes, ("genre", "marketplace")):
        if answers.height:
            counts = (answers.group_by(by).agg((pl.col("rating") > 0).sum().alias("up"),
                                               (pl.col("rating") < 0).sum().alias("down")).sort(by))
            labels = [str(x) for x in counts[by].to_list()]
            ax.bar(labels, counts["up"].to_list(), color=GREEN, label="thumbs up")
            ax.bar(labels, counts["down"].to_list(), bottom=counts["up"].to_list(), color=GREY, label="thumbs down")
            ax.tick_params(axis="x", rotation=45, labelsize=8)
            ax.legend(fontsize=8)
        ax.set_title(f"Feedback by {by}")
        ax.set_xlabel(by)
        ax.set_ylabel("answers (count)")
    return _save(fig, path)


def moves_chart(moves: pl.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    if moves.height:
        counts = moves.group_by("genre").agg((pl.col("action") == "enter").sum().alias("entered"),
                                             (pl.col("action") == "leave").sum().alias("left")).sort("genre")
        labels = counts["genre"].to_list()
        ax.bar(labels, counts["entered"].to_list(), color=GREEN, label="entered")
        ax.bar(labels, [-x for x in counts["left"].to_list()], color=GREY, label="left")
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        ax.legend(fontsize=8)
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_title("Playlist moves of the day, by genre")
    ax.set_xlabel("genre")
    ax.set_ylabel("tracks (count; left below 0)")
    return _save(fig, path)


def lift_chart(day: str, lift: dict, path: Path) -> None:
    """Asked against held out over the complete window, each rate and the difference with its 95% interval."""
    if lift.get("status") != "measured":
        fig, ax = plt.subplots(figsize=(6.4, 1.8))
        ax.text(0.5, 0.5, "\n".join(textwrap.wrap(lift_text(lift), 90)), ha="center", va="center", fontsize=8,
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("lift in later plays (percentage points)")
        ax.set_ylabel("batch day")
        ax.set_title(f"Holdout lift of {day}: not measured")
        return _save(fig, path)
        return
    fig, (rates, diff) = plt.subplots(1, 2, figsize=(9.6, 2.6))
    groups = (("held out", lift["holdout_rate"], lift["held_out"]), ("asked", lift["treated_rate"], lift["treated"]))
    half = [100 * Z95 * math.sqrt(p * (1 - p) / n) for _, p, n in groups]
    rates.barh([f"{g}: {100 * p:.1f} %\n(n={n:,})" for g, p, n in groups], [100 * p for _, p, _ in groups],
               xerr=half, color=[GREY, GREEN], capsize=4)
    rates.set_xlabel("played the track again (% of listeners)")
    rates.set_ylabel("group")
    rates.set_title(f"Later plays, {lift['window_start']} to {lift['window_end']}", fontsize=10)
    low, high = lift["ci95_pp"]
    diff.errorbar([lift["lift_pp"]], [0], xerr=[[lift["lift_pp"] - low], [high - lift["lift_pp"]]], fmt="o",
                  color="black", capsize=4)
    diff.axvline(0, color=GREY, linewidth=1)
    diff.set_yticks([0], [day])
    diff.set_xlabel("lift, asked minus held out (percentage points)")
    diff.set_ylabel("batch day")
    diff.set_title(f"Lift {lift['lift_pp']:+.2f} pp (95 % interval {low:+.2f} to {high:+.2f})", fontsize=10)
    return _save(fig, path)


def summary_markdown(rows: list[tuple[str, str, str]]) -> str:
    """The summary as a Markdown table (the asset's metadata in the UI)."""
    return "| section | measure | value |\n|---|---|---|\n" + "".join(
        "| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |\n" for row in rows)


def _summary_html(rows: list[tuple[str, str, str]]) -> str:
    body, section = "", None
    for s, k, v in rows:
        if s != section:
            body += f'<tr><th colspan="2" class="section">{html.escape(s)}</th></tr>'
            section = s
        body += f'<tr><td class="measure">{html.escape(k)}</td><td>{html.escape(v)}</td></tr>'
    return f"<table>{body}</table>"


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('n/a' if v is None else str(v))}</td>" for v in row)
                   + "</tr>" for row in frame.iter_rows())
    return f"<table><tr>{head}</tr>{body}</table>"


def funnel_rates(program: Program, funnel: pl.DataFrame) -> pl.DataFrame:
    """The funnel by channel and marketplace with each stage's rate of delivered; n/a where a channel has no
    such stage (a voice prompt is never opened)."""
    if not funnel.height:
        return funnel
    kinds = channel_kinds(program)
    out = []
    for channel in funnel["channel"].unique().sort().to_list():
        stages = stages_of(program, channel)
        part = funnel.filter(pl.col("channel") == channel)
        out.append(part.with_columns(
            *(pl.lit(None, pl.Int64).alias(s) for s in STAGES if s not in stages),
            *((pl.when(pl.col("delivered") > 0).then((100 * pl.col(s) / pl.col("delivered")).round(1))
               .otherwise(None) if s in stages else pl.lit(None, pl.Float64)).alias(f"{s} %") for s in STAGES[1:]),
            pl.lit(kinds.get(channel, "?")).alias("type")))
    return pl.concat(out).select("channel", "type", "marketplace", *STAGES, *(f"{s} %" for s in STAGES[1:]))


def write_report(folder: Path, title: str, program: Program, m: DayMetrics, scored: pl.DataFrame,
                 answers: pl.DataFrame, moves: pl.DataFrame) -> Path:
    """Write report.html and its charts into `folder`, replacing an earlier report of the day whole."""
    stage = folder.parent / f"_staging.{folder.name}.{uuid.uuid4().hex[:8]}"
    stage.mkdir(parents=True)
    try:
        funnel_chart(program, m.funnel, stage / "funnel.png")
        score_chart(program, scored, stage / "scores.png")
        feedback_chart(answers, stage / "feedback.png")
        moves_chart(moves, stage / "playlist_moves.png")
        lift_chart(folder.name, m.lift, stage / "lift.png")
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:24px auto;padding:0 16px;color:#1d1d1f}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ddd;padding:4px 8px;text-align:right}}
th.section{{text-align:left;background:#f4f4f4}}td.measure{{text-align:left}}
img{{max-width:100%}}</style></head><body><h1>{html.escape(title)}</h1>
<h2>Summary</h2>{_summary_html(m.rows)}
<h2>Funnel, per channel</h2><img src="funnel.png" alt="funnel per channel">{_table(funnel_rates(program, m.funnel))}
<h2>Scores</h2><img src="scores.png" alt="score distribution">
<h2>Holdout lift</h2><img src="lift.png" alt="holdout lift"><p>{html.escape(lift_text(m.lift))}</p>
<h2>Feedback</h2><img src="feedback.png" alt="feedback by genre and marketplace">
<h2>Playlists</h2><img src="playlist_moves.png" alt="playlist moves">{_table(moves) if moves.height else "<p>No moves.</p>"}
</body></html>"""
        (stage / "report.html").write_text(page)
        old = folder.parent / f"_staging.{folder.name}.old.{uuid.uuid4().hex[:8]}"
        if folder.exists():
            os.rename(folder, old)
        os.rename(stage, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return folder / "report.html"
