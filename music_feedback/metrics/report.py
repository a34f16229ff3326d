"""The daily report: an HTML page with PNG charts (the funnel, the score distribution, feedback by genre and
marketplace, playlist moves). Written to a staging folder and renamed into place, so a report folder that
exists is complete."""
from __future__ import annotations

import html
import os
import shutil
import uuid
from pathlib import Path

import polars as pl

FUNNEL = ("delivered", "opened", "opened_human", "clicked", "submitted")
GREEN, GREY = "#1db954", "#9aa0a6"


class _Pyplot:
    """matplotlib.pyplot on first use: the evening report needs it, the other jobs should not pay its
    ~0.5 s import and memory in every process that loads the definitions."""

    def __getattr__(self, name):
        import matplotlib
        matplotlib.use("Agg")  # files only, no display
        import matplotlib.pyplot
        return getattr(matplotlib.pyplot, name)


plt = _Pyplot()


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def funnel_chart(funnel: pl.DataFrame, path: Path) -> None:
    totals = [int(funnel[c].sum()) if funnel.height else 0 for c in FUNNEL]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    bars = ax.barh(["delivered", "opened", "opened (human)", "clicked", "submitted"][::-1], totals[::-1], color=GREEN)
    ax.bar_label(bars, labels=[f"{t:,}" for t in totals[::-1]], padding=3, fontsize=8)
    ax.set_title("Requests of the day: the funnel")
    ax.margins(x=0.15)
    _save(fig, path)


def score_chart(scored: pl.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    if scored.height:
        ax.hist(scored["score"].to_numpy(), bins=40, range=(0, 1), color=GREEN)
        ax.axvline(0.6, color="black", linestyle="--", linewidth=1, label="email threshold 0.6")
        ax.legend(fontsize=8)
    ax.set_title("Score distribution of the day's candidates")
    ax.set_xlabel("combined score")
    _save(fig, path)


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
    _save(fig, path)


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
    ax.set_title("Playlist moves of the day, by genre")
    _save(fig, path)


def _table(frame: pl.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.iter_rows())
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(folder: Path, title: str, summary: dict, funnel: pl.DataFrame, scored: pl.DataFrame,
                 answers: pl.DataFrame, moves: pl.DataFrame) -> Path:
    """Write report.html and its charts into `folder`, replacing an earlier report of the day whole."""
    stage = folder.parent / f"_staging.{folder.name}.{uuid.uuid4().hex[:8]}"
    stage.mkdir(parents=True)
    try:
        funnel_chart(funnel, stage / "funnel.png")
        score_chart(scored, stage / "scores.png")
        feedback_chart(answers, stage / "feedback.png")
        moves_chart(moves, stage / "playlist_moves.png")
        rates = funnel.with_columns(
            *(pl.when(pl.col("delivered") > 0).then((100 * pl.col(c) / pl.col("delivered")).round(1))
              .otherwise(None).alias(f"{c} %") for c in FUNNEL[1:])) if funnel.height else funnel
        items = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in summary.items())
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:24px auto;padding:0 16px;color:#1d1d1f}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ddd;padding:4px 8px;text-align:right}}
img{{max-width:100%}}</style></head><body><h1>{html.escape(title)}</h1><ul>{items}</ul>
<h2>Funnel</h2><img src="funnel.png" alt="funnel">{_table(rates)}
<h2>Scores</h2><img src="scores.png" alt="score distribution">
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
