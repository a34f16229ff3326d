"""Contact policy (opt-out, trust, weekly cap) holds whatever a program's filter chain says."""
from __future__ import annotations

import warnings

import polars as pl
import pytest
import yaml

from music_feedback.defs.batch.checks import guard_expectations
from music_feedback.filters import build_chain
from music_feedback.filters.opt_out import OptOutFilter
from music_feedback.policy import ContactPolicy, policy_violations
from music_feedback.programs.loader import BUILTIN_DIR, ContactPolicyWarning, load_program
from music_feedback.quality.expectations import Between, InSet

pytestmark = pytest.mark.unit


def _program_file(tmp_path, mutate) -> str:
    raw = yaml.safe_load((BUILTIN_DIR / "music-feedback.yaml").read_text())
    mutate(raw)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _disable(*ids):
    def mutate(raw):
        for f in raw["filterChain"]:
            if f["filterId"] in ids:
                f["enabled"] = False
    return mutate


def test_disabling_policy_filters_warns_and_keeps_the_policy(tmp_path):
    path = _program_file(tmp_path, _disable("trust", "eligibility", "frequency-cap", "engagement"))
    with pytest.warns(ContactPolicyWarning) as caught:
        program = load_program(path)
    text = " ".join(str(w.message) for w in caught)
    assert "opted-out listeners are still removed" in text and "weekly cap still applies" in text
    assert "bots" in text and "engagement" not in text
    chain = build_chain(program.filter_chain)
    enabled = {f.kind: f.enabled for f in chain}
    assert enabled == {"trust": True, "opt-out": True, "engagement": False, "frequency-cap": True}
    assert isinstance(next(f for f in chain if f.kind == "opt-out"), OptOutFilter)


def test_missing_policy_filters_are_added(tmp_path):
    path = _program_file(tmp_path, lambda raw: raw.update(filterChain=[
        f for f in raw["filterChain"] if f["filterId"] == "engagement"]))
    with pytest.warns(ContactPolicyWarning):
        program = load_program(path)
    assert [f.kind for f in build_chain(program.filter_chain)] == ["trust", "opt-out", "engagement",
                                                                    "frequency-cap"]


def test_shipped_program_loads_without_policy_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContactPolicyWarning)
        load_program(BUILTIN_DIR / "music-feedback.yaml")


def test_guard_holds_every_policy_whatever_the_chain():
    expectations = guard_expectations(ContactPolicy(max_bot_score=0.7, max_requests_per_week=2))
    assert InSet("opted_out", (False,)) in expectations and InSet("is_authentic", (True,)) in expectations
    assert Between("requests_in_week", 0, 2) in expectations


def test_policy_violations_read_signals_and_count_todays_sends():
    signals = pl.DataFrame({"listener_id": [1, 2, 3, 4, 5], "opted_out": [False, True, False, False, False],
                            "bot_score": [0.1, 0.1, 0.9, 0.1, 0.1],
                            "is_authentic": [True, True, True, False, True],
                            "prior_requests": [1, 0, 0, 0, 0]})
    pairs = pl.DataFrame({"listener_id": [1, 2, 3, 4, 5, 6, 5], "track_id": [10, 10, 10, 10, 10, 10, 11]})
    got = policy_violations(pairs, signals, ContactPolicy(), pl.DataFrame({"listener_id": [5], "requests": [1]}))
    reasons = {(r["listener_id"], r["track_id"]): r["reason"] for r in got.iter_rows(named=True)}
    assert reasons == {(2, 10): "opted_out", (3, 10): "bot_activity", (4, 10): "not_authentic",
                       (6, 10): "unknown_listener", (5, 11): "over_weekly_cap"}  # (5, 10) comes first: room for it
