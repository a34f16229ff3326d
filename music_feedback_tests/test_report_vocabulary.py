"""One report vocabulary: the score bands, thresholds and currency come from the program's configuration, so
the batch's printout, the metrics sink and the daily report say the same thing."""
from __future__ import annotations

import polars as pl
import pytest
import yaml

from music_feedback.programs.loader import BUILTIN_DIR, ProgramConfigError, load_program
from music_feedback.programs.model import ScoreBands
from music_feedback.scoring.combine import score_distribution

pytestmark = pytest.mark.unit

SHIPPED = BUILTIN_DIR / "music-feedback.yaml"


def program_with(tmp_path, **metrics):
    raw = yaml.safe_load(SHIPPED.read_text())
    raw["metrics"] = {**raw.get("metrics", {}), **metrics}
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_defaults_are_the_bands_the_batch_always_printed():
    program = load_program(SHIPPED)
    assert program.metrics.score_bands == ScoreBands(high=0.7, medium=0.4)
    assert program.metrics.currency == "USD"


def test_configured_bands_count_the_batch(tmp_path):
    program = load_program(program_with(tmp_path, scoreBands={"high": 0.6, "medium": 0.3}, currency="EUR"))
    scores = pl.Series([0.1, 0.35, 0.65, 0.75])
    assert score_distribution(scores, program.metrics.score_bands) == {"high": 0.5, "medium": 0.25, "low": 0.25}
    assert score_distribution(scores) == {"high": 0.25, "medium": 0.25, "low": 0.5}  # the defaults differ
    assert program.metrics.currency == "EUR"


def test_the_batch_printout_names_the_band_edges(data_home):
    from music_feedback.runner import BatchReport, summary
    shares = {"high": 0.3, "medium": 0.5, "low": 0.2}
    report = BatchReport("music-feedback", "2026-11-23", True, 1.0,
                         assets={"scored_candidates": {"score_distribution": shares}})
    assert "  score bands: high (>= 0.70) 30%, medium (0.40 to 0.70) 50%, low (< 0.40) 20%" in summary(report)


@pytest.mark.parametrize("metrics, key", [
    ({"scoreBands": {"high": 0.4, "medium": 0.5}}, "metrics.scoreBands"),
    ({"scoreBands": {"high": 1.2}}, "metrics.scoreBands.high"),
    ({"scoreBands": {"top": 0.9}}, "metrics.scoreBands.top"),
    ({"currency": "dollars"}, "metrics.currency"),
])
def test_bad_bands_or_currency_are_refused_naming_file_and_key(tmp_path, metrics, key):
    path = program_with(tmp_path, **metrics)
    with pytest.raises(ProgramConfigError) as err:
        load_program(path)
    assert str(path) in str(err.value) and f"  {key}" in str(err.value)


# ---------------------------------------------------------------- the report's charts

EMAIL, VOICE = "email", "voice-assistant"
FUNNEL = pl.DataFrame({"channel": [EMAIL, EMAIL, VOICE], "marketplace": ["US", "DE", "US"],
                       "delivered": [800, 400, 300], "opened": [240, 120, 0], "opened_human": [200, 100, 0],
                       "clicked": [150, 70, 0], "submitted": [120, 60, 200]})


def bars(ax) -> dict[str, float]:
    """A horizontal bar chart's bars by label."""
    return {t.get_text(): p.get_width() for t, p in zip(ax.get_yticklabels(), ax.patches)}


def test_one_funnel_per_channel(tmp_path):
    from music_feedback.metrics.report import funnel_chart
    program = load_program(SHIPPED)
    email, voice = funnel_chart(program, FUNNEL, tmp_path / "funnel.png").axes
    assert EMAIL in email.get_title() and VOICE in voice.get_title()
    assert bars(email) == {"delivered": 1200, "opened": 360, "opened (human)": 300, "clicked": 220, "submitted": 180}
    assert bars(voice) == {"delivered": 300, "submitted": 200}  # no opens or clicks, and not added to email's


def test_every_chart_labels_both_axes_with_a_unit(tmp_path):
    from music_feedback.metrics import report
    program = load_program(SHIPPED)
    answers = pl.DataFrame({"genre": ["pop", "rock"], "marketplace": ["US", "DE"], "rating": [1, -1]})
    moves = pl.DataFrame({"genre": ["pop"], "action": ["enter"]})
    lift = {"status": "measured", "window_start": "2026-11-24", "window_end": "2026-11-30", "treated_rate": 0.3,
            "holdout_rate": 0.2, "treated": 200, "held_out": 100, "lift_pp": 10.0, "ci95_pp": [-0.09, 20.09]}
    figures = [report.funnel_chart(program, FUNNEL, tmp_path / "f.png"),
               report.funnel_chart(program, FUNNEL.clear(), tmp_path / "f0.png"),
               report.score_chart(program, pl.DataFrame({"score": [0.2, 0.5, 0.9]}), tmp_path / "s.png"),
               report.feedback_chart(answers, tmp_path / "fb.png"), report.moves_chart(moves, tmp_path / "m.png"),
               report.lift_chart("2026-11-22", lift, tmp_path / "l.png"),
               report.lift_chart("2026-11-22", {"status": "waiting", "detail": "later"}, tmp_path / "l0.png")]
    for fig in figures:
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()
    counted = [ax for fig in figures for ax in fig.axes if "count" in ax.get_xlabel() + ax.get_ylabel()]
    assert len(counted) >= 6  # funnels, scores, feedback by genre and by marketplace, playlist moves


def test_the_score_chart_draws_the_programs_bands_and_the_email_min_score(tmp_path):
    from music_feedback.metrics.report import score_chart
    raw = yaml.safe_load(SHIPPED.read_text())
    raw["metrics"] = {"scoreBands": {"high": 0.65, "medium": 0.35}}
    next(c for c in raw["channels"] if c["type"] == "email")["config"]["minScore"] = 0.55
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    (ax,) = score_chart(load_program(path), pl.DataFrame({"score": [0.2, 0.5]}), tmp_path / "s.png").axes
    drawn = {line.get_label(): line.get_xdata()[0] for line in ax.get_lines()}
    assert drawn == {"high score from 0.65": 0.65, "medium score from 0.35": 0.35, "email minScore 0.55": 0.55}


# ---------------------------------------------------------------- the metrics run

@pytest.mark.integration
def test_the_days_metrics_speak_the_batchs_vocabulary(data_home):
    """High score at the program's band (0.7), one funnel per channel, a summary table, cost in its currency."""
    import time

    from dagster import instance_for_test

    from music_feedback import settings
    from music_feedback.feedback import Submission
    from music_feedback.metrics.sink import SQLiteMetricsSink
    from music_feedback.programs.loader import load_programs
    from music_feedback.resources import feedback_store
    from music_feedback_tools.simulate.day import run_job
    from music_feedback.definitions import build_definitions
    from music_feedback.store.base import CANDIDATE_SCHEMA

    program, day, now = load_programs()[0], "2026-11-23", time.time()
    schema = {**CANDIDATE_SCHEMA, "voice_enabled": pl.Boolean}
    scores = [0.62, 0.65, 0.68, 0.72, 0.8, 0.9, 0.3, 0.5]  # 3 of 8 at >= 0.7; 5 of 8 at >= 0.6
    scored = pl.DataFrame({"score": scores}).with_columns(
        *(pl.lit(None, t).alias(c) for c, t in schema.items() if c != "score")).select(list(schema)).cast(schema)
    path = settings.io_root() / program.slug / "scored_candidates" / f"{day}.parquet"
    path.parent.mkdir(parents=True)
    scored.write_parquet(path)
    store = feedback_store()
    for lid in range(1, 16):  # 10 emails: 4 opened, 2 clicked, 2 answered; 5 voice prompts, all answered
        channel = EMAIL if lid <= 10 else VOICE
        row = {"listener_id": lid, "track_id": 7, "marketplace": "US", "genre": "pop", "track_name": "t",
               "artist_id": 1, "score": 0.8, "campaign": "c"}
        store.record_contact(program.program_id, day, channel, row, "sent", now)
        detail = {"batch_date": day, "listener_id": lid, "track_id": 7, "channel": channel, "likely_machine": False}
        for kind, upto in (("open", 4), ("click", 2)):
            if lid <= upto:
                store.record_event(program.program_id, kind, detail, now)
        if lid <= 2 or lid > 10:
            store.submit(Submission(program.program_id, lid, 7, 1, channel, day, f"vocab-{lid}", now))
    with instance_for_test() as instance:
        result = run_job(build_definitions(), f"{program.slug}_metrics", day, instance)
    assert result["success"], result["error"]
    summary = result["meta"]["daily_metrics"]["summary"]
    assert "| Processing | score band high (>= 0.70) | 37.5 % of scored |" in summary
    assert score_distribution(pl.Series(scores), program.metrics.score_bands)["high"] == 0.375  # the batch's count
    assert "| Delivery: email | clicked | 2 (20.0 % of delivered) |" in summary
    assert "| Delivery: email | submitted | 2 (20.0 % of delivered) |" in summary
    assert "| Delivery: voice-assistant | submitted | 5 (100.0 % of delivered) |" in summary
    assert "| Business | cost | 0.01 USD |" in summary and "| Business | cost per feedback | 0.0020 USD |" in summary
    assert "{" not in summary.split("![funnel]")[0]  # no dict reprs
    sunk = {(m["name"], m["dimensions"].get("Channel"), m["dimensions"].get("Band")): m
            for m in SQLiteMetricsSink(path=str(data_home / "metrics.sqlite")).read(program.program_id, day)}
    assert sunk[("HighScoreRate", None, None)]["value"] == 37.5
    assert sunk[("ScoreBandShare", None, "medium")]["value"] == 50.0
    assert ("OpenedRate", VOICE, None) not in sunk and sunk[("Submitted", VOICE, None)]["value"] == 5
    assert sunk[("CostPerFeedback", None, None)]["dimensions"]["Currency"] == "USD"
    html = (data_home / "reports" / program.program_id / day / "report.html").read_text()
    assert "<td class=\"measure\">score band high (&gt;= 0.70)</td><td>37.5 % of scored</td>" in html
