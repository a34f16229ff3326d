"""A filter configuration the warehouse's SQL cannot hold is refused when the program loads, naming the
filter and the key; what it can hold becomes literals, quotes doubled."""
from __future__ import annotations

import pytest

from music_feedback.filters import chain as chain_module
from music_feedback.filters.base import CandidateFilter
from music_feedback.filters.sql import NotExpressible, SqlChain, chain_query, literal, require_sql
from music_feedback.filters.trust import TrustFilter
from music_feedback.programs.loader import ProgramConfigError, load_program
from music_feedback_tests.conftest import edited_program_file

pytestmark = pytest.mark.unit


def test_literals():
    assert literal("it's", "k") == "'it''s'" and literal(2, "k") == "2" and literal(0.5, "k") == "0.5"
    assert literal(True, "k") == "TRUE"
    for value in (float("inf"), float("nan"), [1], "a\x00b", 2**70):
        with pytest.raises(NotExpressible, match="^k: "):
            literal(value, "k")


def test_a_filter_without_sql_is_refused_at_load(tmp_path, monkeypatch):
    class Novelty(CandidateFilter):
        kind = "novelty"
        codes = ("not_novel",)
    monkeypatch.setitem(chain_module.REGISTRY, "novelty", Novelty)

    def add(raw):
        raw["filterChain"].append({"filterId": "novelty", "type": "business-rule", "order": 9})
    with pytest.raises(ProgramConfigError, match=r"filter 'novelty' \(novelty\): has no SQL definition"):
        load_program(edited_program_file(tmp_path, add))


def test_a_marketplace_sql_cannot_carry_is_refused_at_load(tmp_path):
    def edit(raw):
        raw["marketplaces"] = ["US", "U\tK"]
        raw["marketplaceTimeZones"] = {**raw.get("marketplaceTimeZones", {}), "U\tK": "Europe/London"}
    with pytest.raises(ProgramConfigError, match=r"filter 'eligibility': marketplace: 'U\\tK' holds a control"):
        load_program(edited_program_file(tmp_path, edit))


def test_a_parameter_is_checked_with_its_name():
    flt = TrustFilter("trust")
    flt.params["maxBotScore"] = float("inf")  # past validation, as a future filter's free-form value could be
    with pytest.raises(NotExpressible, match="filter 'trust': parameter maxBotScore: inf has no SQL literal"):
        require_sql(flt)


def test_the_cap_ranks_only_the_survivors_of_the_filters_before_it():
    sql = chain_query(chain_module.build_chain([]), "c0", SqlChain(("US",)))
    # policy adds trust and opt-out first and the cap last: the cap numbers only the pairs neither removed
    assert "ROW_NUMBER() OVER (PARTITION BY listener_id ORDER BY play_count DESC" in sql
    assert "WHERE COALESCE(reason_0, reason_1) IS NULL" in sql
    assert sql.count("ROW_NUMBER()") == 1
