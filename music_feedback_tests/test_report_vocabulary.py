"""One report vocabulary: the score bands, thresholds and currency come from the program's configuration, so the
batch's printout, the metrics sink and the daily report say the same thing."""
from __future__ import annotations

import polars as pl
import pytest
import yaml

from music_feedback.programs.loader import BUILTIN_DIR, ProgramConfigError, load_program
from music_feedback.programs.model import ScoreBands
from music_feedback.scoring.combine import score_distribution

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
