"""Tests for program configuration: the shipped program, load errors that name file and key, program
discovery through the environment, and the schedule parser."""
from __future__ import annotations

import copy
import re

import pydantic
import pytest
import yaml

from music_feedback.programs.loader import BUILTIN_DIR, ProgramConfigError, load_program, load_programs
from music_feedback.programs.model import Program, cron_fields
from music_feedback.settings import PROGRAM_VAR, PROGRAMS_DIR_VAR

pytestmark = pytest.mark.unit

SHIPPED = BUILTIN_DIR / "music-feedback.yaml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    monkeypatch.delenv(PROGRAMS_DIR_VAR, raising=False)
    monkeypatch.delenv(PROGRAM_VAR, raising=False)


@pytest.fixture
def raw() -> dict:
    """The shipped program as a plain mapping, to modify and write elsewhere."""
    return yaml.safe_load(SHIPPED.read_text())


def write(path, data) -> str:
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def load_error(tmp_path, data) -> str:
    path = write(tmp_path / "program.yaml", data)
    with pytest.raises(ProgramConfigError) as err:
        load_program(path)
    message = str(err.value)
    assert str(path) in message
    return message


# ---------------------------------------------------------------- the shipped program

def test_shipped_program_loads_with_typed_fields():
    programs = load_programs()
    assert [p.program_id for p in programs] == ["music-feedback"]
    (p,) = programs
    assert isinstance(p, Program)
    assert p.program_name == "Music Track Feedback"
    assert p.slug == "music_feedback"
    assert p.enabled is True
    assert p.candidate_ttl_days == 14
    assert p.marketplaces == ["US", "UK", "DE", "FR", "JP", "IN"]
    assert p.batch_schedule == "cron(0 2 * * ? *)"
    assert cron_fields(p.batch_schedule) == (0, 2)
    assert p.scoring.batch_size == 2000
    assert p.scoring.propensity_weight == 0.5
    assert p.partitions_start_date == "2026-11-01" and p.first_batch_day.isoformat() == "2026-11-01"


def test_shipped_program_connector_models_filters_channels():
    (p,) = load_programs()
    assert p.connector.connector_id == "redshift-music-streams"
    assert p.connector.type == "redshift"
    assert p.connector.config.table == "track_plays"
    assert p.connector.config.cluster == "music-analytics"
    assert p.model("propensity").model_id == "feedback-propensity-v3"
    assert p.model("affinity").model_id == "music-affinity-v2"
    assert p.model("affinity").features == ["genre", "artist_popularity", "listening_frequency"]
    assert [f.kind for f in p.ordered_filters()] == ["trust", "eligibility", "engagement", "frequency-cap"]
    assert [f.order for f in p.ordered_filters()] == [1, 2, 3, 4]
    assert p.ordered_filters()[3].parameters == {"maxRequestsPerWeek": 2}
    assert [c.channel_id for c in p.enabled_channels()] == ["email", "voice-assistant"]


def test_program_is_frozen():
    (p,) = load_programs()
    with pytest.raises(pydantic.ValidationError):
        p.candidate_ttl_days = 1


def test_load_program_equals_load_programs():
    assert load_program(SHIPPED) == load_programs()[0]


# ---------------------------------------------------------------- load errors

def test_unknown_top_level_key(tmp_path, raw):
    raw["bogus"] = 1
    message = load_error(tmp_path, raw)
    assert re.search(r"^\s+bogus: unknown key", message, re.M)


@pytest.mark.parametrize("where, path", [
    (lambda r: r["filterChain"][0], "filterChain[0].bogus"),
    (lambda r: r["scoring"], "scoring.bogus"),
    (lambda r: r["dataConnectors"][0]["config"], "dataConnectors[0].config.bogus"),
    (lambda r: r["scoringModels"][1], "scoringModels[1].bogus"),
])
def test_unknown_nested_key(tmp_path, raw, where, path):
    where(raw)["bogus"] = True
    message = load_error(tmp_path, raw)
    assert f"{path}: unknown key" in message


@pytest.mark.parametrize("change, key", [
    (lambda r: r.update(candidateTTLDays=-1), "candidateTTLDays"),
    (lambda r: r.update(candidateTTLDays=366), "candidateTTLDays"),
    (lambda r: r["scoring"].update(batchSize=0), "scoring.batchSize"),
    (lambda r: r["scoring"].update(propensityWeight=1.5), "scoring.propensityWeight"),
    (lambda r: r.update(programId="Music Feedback"), "programId"),
    (lambda r: r.update(partitionsStartDate="1 Jan 2026"), "partitionsStartDate"),
    (lambda r: r.update(partitionsStartDate="2026-02-30"), "partitionsStartDate"),
    (lambda r: r["filterChain"][0].update(type="magic"), "filterChain[0].type"),
    (lambda r: r["scoringModels"][0].update(features=["nope"]), "scoringModels[0].features"),
    (lambda r: r["dataConnectors"][0]["config"].update(query="SELECT * FROM track_plays"),
     "dataConnectors[0].config.query"),
    (lambda r: r.pop("channels"), "channels"),
])
def test_invalid_value_names_key(tmp_path, raw, change, key):
    change(raw)
    message = load_error(tmp_path, raw)
    assert f"  {key}: " in message


def test_bad_send_time(tmp_path, raw):
    raw["channels"][0]["config"]["sendTime"] = "25:00"
    message = load_error(tmp_path, raw)
    assert "channels[0]" in message and "sendTime" in message


def test_channel_config_error_names_full_key_path(tmp_path, raw):
    """The config keys of a channel sit under `config`: the key path must say so."""
    raw["channels"][0]["config"]["sendTime"] = "25:00"
    assert "channels[0].config.sendTime" in load_error(tmp_path, raw)
    raw["channels"][0]["config"]["sendTime"] = "10:00"
    raw["channels"][0]["config"]["bogus"] = 1
    assert "channels[0].config.bogus: unknown key" in load_error(tmp_path, raw)



@pytest.mark.parametrize("send_time", ["9:00", "10h00", "24:00", "10:60", "1000", "10:00:00", " 10:00"])
def test_send_time_not_hh_mm_is_refused(tmp_path, raw, send_time):
    raw["channels"][0]["config"]["sendTime"] = send_time
    message = load_error(tmp_path, raw)
    assert "channels[0].config.sendTime: " in message and "HH:MM" in message and repr(send_time) in message


@pytest.mark.parametrize("change, words", [
    (lambda r: r.update(marketplaceTimeZones={"JP": "Asia/Tokio"}),
     ["marketplaceTimeZones: ", "marketplace JP", "'Asia/Tokio'"]),
    (lambda r: r.update(marketplaces=[*r["marketplaces"], "BR"]),
     ["marketplaceTimeZones: ", "marketplace BR", "set marketplaceTimeZones.BR"]),
    (lambda r: r["channels"][0]["config"].update(timezone="Mars/Olympus"),
     ["channels[0].config.timezone: ", "'Mars/Olympus'"]),
])
def test_unknown_time_zone_is_refused_naming_key_and_marketplace(tmp_path, raw, change, words):
    change(raw)
    message = load_error(tmp_path, raw)
    assert all(w in message for w in words), message


def test_a_new_marketplace_loads_with_its_zone(tmp_path, raw):
    raw.update(marketplaces=[*raw["marketplaces"], "BR"], marketplaceTimeZones={"BR": "America/Sao_Paulo"})
    program = load_program(write(tmp_path / "p.yaml", raw))
    assert program.time_zone("BR") == "America/Sao_Paulo" and program.time_zone("JP") == "Asia/Tokyo"


@pytest.mark.parametrize("cap", [0, -1, 1.5])
def test_weekly_cap_below_one_is_refused(tmp_path, raw, cap):
    raw["filterChain"][3]["parameters"]["maxRequestsPerWeek"] = cap
    message = load_error(tmp_path, raw)
    assert "filterChain[3].parameters: " in message and "maxRequestsPerWeek" in message and f"got {cap}" in message


def test_weekly_cap_of_one_loads(tmp_path, raw):
    raw["filterChain"][3]["parameters"]["maxRequestsPerWeek"] = 1
    assert load_program(write(tmp_path / "p.yaml", raw)).ordered_filters()[3].parameters["maxRequestsPerWeek"] == 1

@pytest.mark.parametrize("schedule", ["every day at 2", "cron(0 25 * * ? *)", "cron(61 2 * * ? *)",
                                      "*/5 * * * *", "0 2 * *"])
def test_bad_batch_schedule(tmp_path, raw, schedule):
    raw["batchSchedule"] = schedule
    message = load_error(tmp_path, raw)
    assert "batchSchedule" in message and schedule in message


def test_model_role_and_consistency_errors(tmp_path, raw):
    bad = copy.deepcopy(raw)
    bad["scoringModels"][0]["modelId"] = "feedback-v3"
    assert "cannot tell the role of model 'feedback-v3'" in load_error(tmp_path, bad)
    bad = copy.deepcopy(raw)
    bad["scoringModels"][0]["modelId"] = "second-affinity"
    assert "one propensity and one affinity" in load_error(tmp_path, bad)
    bad = copy.deepcopy(raw)
    bad["filterChain"][1]["order"] = 1
    assert "filterChain orders must be distinct" in load_error(tmp_path, bad)
    bad = copy.deepcopy(raw)
    bad["filterChain"][3]["filterId"] = "trust"
    bad["filterChain"][3]["rule"] = "frequency-cap"
    assert "filterIds must be distinct" in load_error(tmp_path, bad)


def test_explicit_role_wins(tmp_path, raw):
    raw["scoringModels"][0]["modelId"] = "answer-model"
    raw["scoringModels"][0]["role"] = "propensity"
    program = load_program(write(tmp_path / "p.yaml", raw))
    assert program.model("propensity").model_id == "answer-model"


def test_not_yaml(tmp_path):
    assert "not valid YAML" in load_error(tmp_path, "programId: [unclosed\n  - : :")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", ""])
def test_not_a_mapping(tmp_path, text):
    assert "expected a mapping" in load_error(tmp_path, text)


def test_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(ProgramConfigError, match=r"absent\.yaml does not exist"):
        load_program(path)


def test_errors_are_value_errors(tmp_path):
    with pytest.raises(ValueError):
        load_program(tmp_path / "absent.yaml")


# ---------------------------------------------------------------- discovery

@pytest.fixture
def second_program(tmp_path, raw, monkeypatch):
    folder = tmp_path / "programs"
    folder.mkdir()
    podcast = copy.deepcopy(raw)
    podcast.update(programId="podcast-feedback", programName="Podcast Feedback", candidateTTLDays=7)
    write(folder / "podcast.yaml", podcast)
    (folder / "notes.txt").write_text("not a program")
    monkeypatch.setenv(PROGRAMS_DIR_VAR, str(folder))
    return folder


def test_programs_dir_adds_a_program(second_program):
    programs = {p.program_id: p for p in load_programs()}
    assert set(programs) == {"music-feedback", "podcast-feedback"}
    assert programs["podcast-feedback"].candidate_ttl_days == 7
    assert programs["music-feedback"].candidate_ttl_days == 14


def test_program_var_selects_one(second_program, monkeypatch):
    monkeypatch.setenv(PROGRAM_VAR, "podcast-feedback")
    assert [p.program_id for p in load_programs()] == ["podcast-feedback"]
    monkeypatch.setenv(PROGRAM_VAR, "music-feedback")
    assert [p.program_id for p in load_programs()] == ["music-feedback"]


def test_program_var_unknown_names_it(second_program, monkeypatch):
    monkeypatch.setenv(PROGRAM_VAR, "video-feedback")
    known = r"known: \['music-feedback', 'podcast-feedback'\]"
    with pytest.raises(ProgramConfigError, match=rf"video-feedback.*{known}"):
        load_programs()


def test_disabled_program_is_not_loaded(second_program, raw):
    raw.update(programId="paused-feedback", enabled=False)
    write(second_program / "paused.yaml", raw)
    assert {p.program_id for p in load_programs()} == {"music-feedback", "podcast-feedback"}


def test_duplicate_program_id(second_program, raw):
    write(second_program / "copy.yaml", raw)  # programId music-feedback, like the shipped one
    with pytest.raises(ProgramConfigError, match=r"'music-feedback' is defined twice"):
        load_programs()


def test_duplicate_program_id_names_both_files(second_program, raw):
    """The copy may sort before or after the shipped file: the message must name both to be actionable."""
    write(second_program / "copy.yaml", raw)
    with pytest.raises(ProgramConfigError) as err:
        load_programs()
    assert str(SHIPPED.resolve()) in str(err.value)
    assert str((second_program / "copy.yaml").resolve()) in str(err.value)


def test_bad_file_in_programs_dir_is_named(second_program):
    write(second_program / "broken.yaml", "programId: [")
    with pytest.raises(ProgramConfigError, match=r"broken\.yaml: not valid YAML"):
        load_programs()


def test_programs_dir_must_be_a_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(PROGRAMS_DIR_VAR, str(tmp_path / "missing"))
    with pytest.raises(ProgramConfigError, match=rf"{PROGRAMS_DIR_VAR}=.*missing is not a folder"):
        load_programs()


# ---------------------------------------------------------------- cron_fields

@pytest.mark.parametrize("expr, expected", [
    ("cron(0 2 * * ? *)", (0, 2)),
    ("cron(30 23 * * ? *)", (30, 23)),
    ("  cron(5 0 * * ? *)  ", (5, 0)),
    ("15 4 * * *", (15, 4)),
    ("59 23 * * *", (59, 23)),
])
def test_cron_fields(expr, expected):
    assert cron_fields(expr) == expected


@pytest.mark.parametrize("expr", ["", "daily", "cron()", "cron(0 2 * *)", "0 2 * *", "0 2 * * ? * *",
                                  "*/15 * * * *", "0 */2 * * *", "cron(0 24 * * ? *)", "60 1 * * *",
                                  "-1 2 * * *"])
def test_cron_fields_rejects(expr):
    with pytest.raises(ValueError, match="batchSchedule"):
        cron_fields(expr)


@pytest.mark.parametrize("expr", ["cron(0 2 1 * ? *)", "cron(0 2 ? * MON *)", "0 2 * * 1", "0 2 15 * *",
                                  "0 2 * 6 *"])
def test_cron_fields_rejects_schedules_that_are_not_daily(expr):
    """cron_fields gives (minute, hour) of a *daily* schedule: a weekly or monthly one is not daily."""
    with pytest.raises(ValueError, match="daily"):
        cron_fields(expr)
