"""Contact policy (opt-out, trust, weekly cap) holds whatever a program's filter chain says."""
from __future__ import annotations

from datetime import date

import warnings

import duckdb
import polars as pl
import pytest

from music_feedback.policy.guard import GUARD_STATS, guard_sql
from music_feedback.warehouse.queries import listeners_between
from music_feedback.filters import build_chain
from music_feedback.filters.opt_out import OptOutFilter
from music_feedback.policy import ContactPolicy, policy_violations
from music_feedback.programs.loader import BUILTIN_DIR, ContactPolicyWarning, load_program
from music_feedback_tests.conftest import edited_program_file

pytestmark = pytest.mark.unit


def _disable(*ids):
    def mutate(raw):
        for f in raw["filterChain"]:
            if f["filterId"] in ids:
                f["enabled"] = False
    return mutate


def test_disabling_policy_filters_warns_and_keeps_the_policy(tmp_path):
    path = edited_program_file(tmp_path, _disable("trust", "eligibility", "frequency-cap", "engagement"))
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
    path = edited_program_file(tmp_path, lambda raw: raw.update(filterChain=[
        f for f in raw["filterChain"] if f["filterId"] == "engagement"]))
    with pytest.warns(ContactPolicyWarning):
        program = load_program(path)
    assert [f.kind for f in build_chain(program.filter_chain)] == ["trust", "opt-out", "engagement",
                                                                    "frequency-cap"]


def test_shipped_program_loads_without_policy_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ContactPolicyWarning)
        load_program(BUILTIN_DIR / "music-feedback.yaml")


def test_guard_counts_every_policy_whatever_the_chain():
    """The filter's guard, in the warehouse: the kept pairs against signals read afresh and the program's own
    ledger; each kind of violation is counted, and a clean day counts none."""
    con = duckdb.connect()
    con.execute("CREATE TABLE listeners (listener_id BIGINT, opted_out BOOLEAN, bot_score DOUBLE, is_authentic BOOLEAN)")
    con.execute("INSERT INTO listeners VALUES (1, FALSE, 0.1, TRUE), (2, TRUE, 0.1, TRUE), (3, FALSE, 0.9, TRUE), "
                "(4, FALSE, 0.1, FALSE), (5, FALSE, 0.1, TRUE), (7, FALSE, 0.1, TRUE)")
    con.execute("CREATE TABLE feedback_requests (program_id VARCHAR, listener_id BIGINT, requested_at TIMESTAMP)")
    con.execute("INSERT INTO feedback_requests VALUES ('p', 1, TIMESTAMP '2026-11-20 10:00:00')")
    con.execute("CREATE TABLE own_contacts AS SELECT 5::BIGINT AS listener_id, 1::BIGINT AS requests")
    con.execute("CREATE TABLE own_suppressed AS SELECT 7::BIGINT AS listener_id")
    policy, day = ContactPolicy(max_bot_score=0.7, max_requests_per_week=2), date(2026, 11, 23)

    def guard(pairs):
        con.register("kept", pl.DataFrame(pairs, schema=["listener_id", "track_id"], orient="row"))
        return {k: int(v or 0) for k, v in con.sql(guard_sql("kept", policy, "p", day)).pl().row(0, named=True).items()}
    assert guard([(1, 10), (5, 10)]) == dict.fromkeys(GUARD_STATS, 0)
    got = guard([(1, 10), (1, 11), (2, 10), (3, 10), (4, 10), (5, 10), (5, 11), (6, 10), (7, 10)])
    # 1 has one prior request: its second pair is over; 5 has one of its own: its second is over; 6 is unknown
    assert got == {"null_keys": 0, "unknown_or_untrusted": 3, "opted_out": 3, "over_weekly_cap": 2}

    # A large day is judged a listener range at a time (warehouse_stages.filter_chain): the same counts.
    def in_range(lo, hi):
        sql = guard_sql(listeners_between("kept", lo, hi), policy, "p", day, listeners=(lo, hi))
        return con.sql(sql).pl().row(0, named=True)
    ranges = [in_range(1, 4), in_range(5, 9)]
    assert {k: sum(int(r[k] or 0) for r in ranges) for k in GUARD_STATS} == got


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
