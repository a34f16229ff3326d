"""A tiny generated warehouse and an isolated data home for the tests that run the graph; the test tiers.

Isolation: the session starts (pytest_configure, before any test module is imported) on a data home of its
own in a fresh temporary folder: MUSIC_FEEDBACK_HOME and DAGSTER_HOME point there, and every other
MUSIC_FEEDBACK_* setting of the developer's shell is unset (the warehouse, the programs folder, key and
password files, the bench's and the simulator's homes, and the stores and services they name), so no test
reads ./data, which the Makefile exports and `make run` fills. A test that needs a setting sets its own
(`data_home`, monkeypatch). When the session ends it puts the environment back and deletes the folder.

Tiers (the markers in setup.cfg): `unit` (no server, no browser, no whole-day graph, fast: `make test-fast`),
`integration` (starts a server, or is slow), `graph` (the whole daily graph, a whole day or several days).
A module's `pytestmark` gives its tests' tier; a test's own mark, or a mark on the parameter it runs with,
overrides it: the closest mark wins, and it is the only tier mark `-m` sees. A test with no tier mark runs as
`integration` (never in the fast tier, still in `make test`), and the run's summary names its module. A
`unit` test that asks for a server fixture, or opens a listening TCP socket, fails saying so.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
import yaml

from music_feedback.programs.loader import BUILTIN_DIR
from music_feedback.warehouse.generator import WarehouseSpec, generate

pytest_plugins = ["music_feedback_tests.servers.fixtures", "music_feedback_tests.model_fixtures",
                  "music_feedback_tests.aws_fixtures"]

BATCH_DAY = date(2026, 11, 23)
SMALL = WarehouseSpec(listeners=8_000, tracks=400, plays_per_day=16_000, outcomes=3_000, days=2, end_date=BATCH_DAY)

# What the session keeps of the developer's MUSIC_FEEDBACK_* settings: where tools are installed, not data.
KEEP_VARS = frozenset({"MUSIC_FEEDBACK_DYNAMODB_LOCAL_DIR"})
_ISOLATION = pytest.StashKey[tuple[Path, dict[str, str]]]()


def _settings() -> list[str]:
    return [k for k in os.environ if k.startswith("MUSIC_FEEDBACK_") or k == "DAGSTER_HOME"]


def pytest_configure(config):
    root = Path(tempfile.mkdtemp(prefix="music-feedback-tests-"))
    saved = {k: os.environ[k] for k in _settings()}
    for k in saved.keys() - KEEP_VARS:
        del os.environ[k]
    home = root / "home"
    (home / "dagster_home").mkdir(parents=True)
    os.environ["MUSIC_FEEDBACK_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    config.stash[_ISOLATION] = (root, saved)
    config.pluginmanager.register(_FixtureGuard(), "music-feedback-fixture-guard")


def pytest_unconfigure(config):
    if _ISOLATION not in config.stash:
        return
    root, saved = config.stash[_ISOLATION]
    for k in _settings():
        del os.environ[k]
    os.environ.update(saved)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def small_warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    generate(path, SMALL, progress=False)
    return path


@pytest.fixture
def data_home(tmp_path, monkeypatch, small_warehouse):
    """MUSIC_FEEDBACK_HOME on a fresh folder, reading the shared small warehouse."""
    monkeypatch.setenv("MUSIC_FEEDBACK_HOME", str(tmp_path))
    monkeypatch.setenv("MUSIC_FEEDBACK_WAREHOUSE", str(small_warehouse))
    monkeypatch.delenv("MUSIC_FEEDBACK_ENV", raising=False)
    monkeypatch.delenv("MUSIC_FEEDBACK_PROGRAM", raising=False)
    monkeypatch.delenv("MUSIC_FEEDBACK_PROGRAMS_DIR", raising=False)
    return tmp_path


# --- tiers --------------------------------------------------------------------------------------------------

TIERS = ("unit", "integration", "graph")
DEFAULT_TIER = "integration"
# The fixtures that start a server (servers/fixtures.py, aws_fixtures.py): never for a unit test.
SERVER_FIXTURES = frozenset({"moto_endpoint", "moto_url", "dynamodb_local_endpoint", "serve",
                             "postgres_server", "postgres_warehouse"})
TIER = pytest.StashKey[str]()
_UNTIERED = pytest.StashKey[list[str]]()
_unit_item = None  # the unit test being set up or run, for the fixture guard


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config, items):
    """Give each test exactly one tier mark, its closest one (else DEFAULT_TIER), so that -m sees that one."""
    untiered, marked_parents = [], set()
    for item in items:
        found = [(node, mark) for node, mark in item.iter_markers_with_node() if mark.name in TIERS]
        tier = found[0][1].name if found else DEFAULT_TIER
        if not found:
            untiered.append(item.nodeid)
        marked_parents.update(node for node, _ in found if node is not item)
        item.own_markers[:] = [m for m in item.own_markers if m.name not in TIERS]
        item.add_marker(tier)
        item.stash[TIER] = tier
    for node in marked_parents:
        node.own_markers[:] = [m for m in node.own_markers if m.name not in TIERS]
    config.stash[_UNTIERED] = untiered


def pytest_ignore_collect(collection_path, config):
    """With -m naming one tier other than DEFAULT_TIER, a test module that never writes that tier's mark has
    no test of it: it is not imported (the other tiers' modules import moto, boto3, Playwright, ...)."""
    tier = (config.getoption("markexpr", None) or "").strip()
    if tier in TIERS and tier != DEFAULT_TIER and collection_path.name.startswith("test_") \
            and collection_path.suffix == ".py" and f"mark.{tier}" not in collection_path.read_text():
        return True
    return None


def pytest_terminal_summary(terminalreporter, config):
    untiered = config.stash.get(_UNTIERED, [])
    if untiered:
        modules = ", ".join(sorted({nodeid.split("::")[0] for nodeid in untiered}))
        terminalreporter.write_line(f"{len(untiered)} tests have no tier mark (unit, integration or graph) "
                                    f"and ran as {DEFAULT_TIER}: {modules}", yellow=True)


class UnitTestServerError(OSError):
    pass


@contextmanager
def _no_server(item):
    """A unit test opens no listening TCP socket (uvicorn, moto, aiosmtpd and the stand-ins all do)."""
    global _unit_item
    if item.stash.get(TIER, None) != "unit":
        yield
        return
    servers = sorted(set(item.fixturenames) & SERVER_FIXTURES)
    if servers:
        pytest.fail(f"{item.nodeid} is marked unit but uses {', '.join(servers)}, which starts a server: "
                    f"mark it integration", pytrace=False)
    opened, listen = [], socket.socket.listen

    def refuse(sock, *args):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            opened.append(sock.getsockname())
            raise UnitTestServerError(f"{item.nodeid} is marked unit: it may not listen on {opened[-1]}")
        return listen(sock, *args)

    socket.socket.listen, _unit_item = refuse, item
    try:
        yield
    finally:
        socket.socket.listen, _unit_item = listen, None
        if opened:
            pytest.fail(f"{item.nodeid} is marked unit but started a server (listening on {opened[0]}): "
                        f"mark it integration", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    with _no_server(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    with _no_server(item):
        return (yield)


class _FixtureGuard:
    """A server fixture asked for by name (request.getfixturevalue) in a unit test. A plugin, not a conftest
    hook: the session-scoped fixtures are set up through the session's hooks, which skip this conftest's."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_fixture_setup(self, fixturedef, request):
        if _unit_item is not None and fixturedef.argname in SERVER_FIXTURES:
            pytest.fail(f"{_unit_item.nodeid} is marked unit but uses {fixturedef.argname}, which starts a "
                        f"server: mark it (or its parameter) integration", pytrace=False)


def edited_program_file(tmp_path: Path, edit) -> Path:
    """The shipped program's YAML with `edit(raw)` applied to its parsed mapping, written under tmp_path."""
    raw = yaml.safe_load((BUILTIN_DIR / "music-feedback.yaml").read_text())
    edit(raw)
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
