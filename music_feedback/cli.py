"""`music-feedback`: seed the warehouse, run the batch, explain decisions, purge the store, benchmark."""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from contextlib import nullcontext
from datetime import date, timedelta
from pathlib import Path

from music_feedback import settings
from music_feedback.aws.cli import add_aws_commands
from music_feedback.serving.model_cli import add_model_commands
from music_feedback.serving.model_cli import serve as model_serve


def _program(program_id: str | None):
    # lazy: programs.loader: ~1.1 s of `--help` (~30 ms)
    from music_feedback.programs.loader import load_programs
    programs = load_programs()
    if not programs:
        raise SystemExit("no enabled program found: enable one (enabled: true) or set MUSIC_FEEDBACK_PROGRAM")
    if program_id is None:
        return programs[0]
    for p in programs:
        if p.program_id == program_id:
            return p
    raise SystemExit(f"no program '{program_id}'; known: {[p.program_id for p in programs]}")


def _spec(args):
    # lazy: warehouse.generator (duckdb, numpy): ~0.7 s of `--help` (~30 ms)
    from music_feedback.warehouse.generator import WarehouseSpec
    base = WarehouseSpec()
    s = args.scale
    if s <= 0:
        raise ValueError(f"--scale must be greater than 0, got {s}")

    def size(given, default, floor=1):
        return given if given is not None else max(int(default * s), floor)

    spec = WarehouseSpec(
        listeners=size(args.listeners, base.listeners, 100), tracks=size(args.tracks, base.tracks, 200),
        plays_per_day=size(args.plays_per_day, base.plays_per_day, 100), days=args.days,
        end_date=args.end_date or base.end_date, seed=args.seed, outcomes=size(args.outcomes, base.outcomes, 2000),
        program_ids=tuple(args.program_id or base.program_ids))
    for flag, value in (("--listeners", spec.listeners), ("--tracks", spec.tracks), ("--days", spec.days),
                        ("--plays-per-day", spec.plays_per_day), ("--outcomes", spec.outcomes)):
        if value < 1:
            raise ValueError(f"{flag} must be at least 1, got {value}")
    return spec


def cmd_seed(args) -> int:
    # lazy: warehouse.generator: ~0.7 s of `--help` (~30 ms)
    from music_feedback.warehouse.generator import generate
    path = Path(args.path or settings.warehouse_path())
    if path.exists() and not args.force:
        print(f"{path} already exists; pass --force to replace it")
        return 0
    spec = _spec(args)
    print(f"generating {path} (listeners {spec.listeners:,}, plays/day {spec.plays_per_day:,}, "
          f"days {spec.start_date}..{spec.end_date}, seed {spec.seed})")
    counts = generate(path, spec)
    print("  " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    return 0


def ensure_warehouse() -> dict[str, str]:
    # lazy: duckdb_warehouse: ~0.6 s of `--help` (~30 ms)
    from music_feedback.warehouse.duckdb_warehouse import DuckDBWarehouse

    # lazy: warehouse.generator: ~0.7 s of `--help` (~30 ms)
    from music_feedback.warehouse.generator import WarehouseSpec, generate
    path = settings.warehouse_path()
    if not path.exists():
        if settings.warehouse_configured():
            # Fabricating data at a mistyped path would look like a real run: refuse, write nothing.
            raise ValueError(f"the warehouse {path} set by {settings.WAREHOUSE_VAR} does not exist: fix the "
                             f"variable, or unset it to use the embedded demo warehouse")
        print(f"no warehouse at {path}: generating the default demo one (about 20 s)")
        generate(path, WarehouseSpec())
    return DuckDBWarehouse(path=str(path)).meta()


def _aws_ready(program) -> dict[str, str]:
    """On AWS, every adapter is checked before anything is written; returns the warehouse's metadata."""
    # lazy: preflight imports boto3: ~0.3 s of `--help` (~30 ms)
    from music_feedback.aws.preflight import preflight

    # lazy: resources: ~1.5 s of `--help` (~30 ms)
    from music_feedback.resources import get_resources
    resources = get_resources()
    preflight(resources, [program])
    return resources["warehouse"].meta()


def _definitions():
    """The definitions, imported with the collector off and their objects then frozen: importing them makes
    ~1M long-lived objects, and the full passes over them cost ~0.4 s of a run's start."""
    gc.disable()
    try:
        # lazy: the definitions: ~2-4 s, only for a run
        from music_feedback.definitions import defs
    finally:
        gc.freeze()
        gc.enable()
    return defs


def cmd_run(args) -> int:
    """The day's runs, launched from the code location (as the UI launches them) unless --in-process."""

    # lazy: runner (dagster): ~1.5 s of `--help` (~30 ms)
    from music_feedback import runner

    # lazy: launch (dagster): ~0.5 s of `--help` (~30 ms)
    from music_feedback.launch import DagsterServer

    # lazy: gx_worker: ~16 ms of `--help` (~30 ms)
    from music_feedback.quality import gx_worker
    inst, server = runner.instance(), None
    if not args.in_process:  # first: the webserver loads the code location on the other core meanwhile
        server = DagsterServer(inst, settings.data_home() / "logs" / "dagster_server.log").start()
    else:
        gx_worker.start()  # first: it imports GX on the other core while the definitions load
    with server or nullcontext():
        defs = _definitions()
        program = _program(args.program)
        meta = ensure_warehouse() if settings.get_env() == "local" else _aws_ready(program)
        day = args.date or runner.latest_complete_day(meta)
        runner.check_batch_day(program, day, meta)
        with runner.launching_from(server) if server else nullcontext():
            return _run_day(args, defs, program, day, inst)


def _run_day(args, defs, program, day, inst) -> int:

    # lazy: runner (dagster): ~1.5 s of `--help` (~30 ms)
    from music_feedback import runner

    # lazy: gx_worker: ~16 ms of `--help` (~30 ms)
    from music_feedback.quality import gx_worker
    trained = runner.ensure_models(defs, program, inst, force=args.retrain, day=day)
    if trained:
        print(f"trained the {program.program_id} models in {trained:.1f}s")
    if not args.no_email:  # the whole day: the same jobs the schedules run, and simulated listeners
        # a tool, not the product: imported only by its command
        # lazy: a tool, not the product: only its command imports it (test_layout)
        from music_feedback_tools.simulate.day import funnel_counts, run_day
        day_report = run_day(defs, program, day, inst, echo=lambda line: print(line, flush=True))
        print("steps (s): " + ", ".join(f"{k} {v}" for k, v in day_report.steps.items()))
        if args.report_json:
            funnel = funnel_counts(program, day_report) if day_report.success else {}
            Path(args.report_json).write_text(json.dumps({"success": day_report.success, "steps": day_report.steps,
                                                          "failure": day_report.failure, "funnel": funnel}))
        return 0 if day_report.success else 1
    report = runner.run_batch(defs, program, day, inst)
    if gx_worker.current() is not None:
        report.gx_worker_peak_rss_mb = gx_worker.current().peak_rss_mb()
    print(runner.summary(report, program.metrics.score_bands))
    if args.report_json:
        Path(args.report_json).write_text(json.dumps(report.__dict__, default=str))
    return 0 if report.success else 1


def cmd_simulate(args) -> int:

    # lazy: gx_worker: ~16 ms of `--help` (~30 ms)
    from music_feedback.quality import gx_worker
    gx_worker.start()
    defs = _definitions()
    # lazy: runner (dagster): ~1.5 s of `--help` (~30 ms)
    from music_feedback import runner

    # a tool, not the product: imported only by its command
    # lazy: a tool, not the product: only its command imports it (test_layout)
    from music_feedback_tools.simulate.day import run_day
    program = _program(args.program)
    meta = ensure_warehouse() if settings.get_env() == "local" else _aws_ready(program)
    last = runner.latest_complete_day(meta)
    days = [last - timedelta(days=args.days - 1 - i) for i in range(args.days)]
    first = date.fromisoformat(meta["start_date"]) if meta.get("start_date") else days[0]
    if days[0] < first:
        raise ValueError(f"the warehouse holds plays for {first}..{last}, {(last - first).days + 1} day(s), not "
                         f"{args.days}: regenerate it with `music-feedback warehouse seed --force --days {args.days}`")
    inst = runner.instance()
    trained = runner.ensure_models(defs, program, inst, day=days[-1])
    if trained:
        print(f"trained the {program.program_id} models in {trained:.1f}s")
    for day in days:
        runner.check_batch_day(program, day, meta)
        print(f"=== {day} ===", flush=True)
        report = run_day(defs, program, day, inst, echo=lambda line: print(line, flush=True))
        print("steps (s): " + ", ".join(f"{k} {v}" for k, v in report.steps.items()))
        if not report.success:
            return 1
    return 0


def cmd_why(args) -> int:
    # lazy: clock: ~7 ms of `--help` (~30 ms)
    from music_feedback.clock import Clock

    # lazy: explain: ~0.8 s of `--help` (~30 ms)
    from music_feedback.explain import explain

    # lazy: policy.gate: ~0.7 s of `--help` (~30 ms)
    from music_feedback.policy.gate import ContactGate

    # lazy: resources: ~1.5 s of `--help` (~30 ms)
    from music_feedback.resources import get_resources
    program = _program(args.program)
    resources = get_resources()  # the IO manager of the adapter set: a folder, or S3 on AWS
    gate = ContactGate(program, resources["warehouse"], resources["feedback_store"])
    for line in explain(resources["io_manager"], resources["candidate_store"], program, args.listener,
                        args.track, args.date, gate, Clock.from_env().now()):
        print(line)
    return 0


def cmd_purge(args) -> int:
    # lazy: resources: ~1.5 s of `--help` (~30 ms)
    from music_feedback.resources import get_resources
    print(f"purged {get_resources()['candidate_store'].purge_expired()} expired candidate row(s)")
    return 0


def cmd_create_table(args) -> int:
    # lazy: botocore.exceptions: ~8 ms of `--help` (~30 ms)
    from botocore.exceptions import BotoCoreError, ClientError
    if args.feedback:
        # lazy: the DynamoDB feedback store imports boto3: ~0.3 s of `--help` (~30 ms)
        from music_feedback.feedback.dynamodb import DynamoDBFeedbackStore
        feedback = DynamoDBFeedbackStore.from_env()
        if args.table:
            feedback = feedback.model_copy(update={"table_name": args.table})
        where = feedback.endpoint_url or f"AWS {feedback.region}"
        try:
            created = bool(feedback.create_tables())
        except (BotoCoreError, ClientError) as exc:
            raise RuntimeError(f"could not create table {feedback.table_name} on {where}: {exc}") from None
        print(f"{'created' if created else 'found'} table {feedback.table_name} ({where}) with ByListener, "
              "ByProgram and Outbox")
        return 0
    # lazy: the DynamoDB candidate store imports boto3: ~0.3 s of `--help` (~30 ms)
    from music_feedback.store.dynamodb import DynamoDBCandidateStore
    store = DynamoDBCandidateStore.from_env()
    if args.table:
        store = store.model_copy(update={"table_name": args.table})
    where = store.endpoint_url or f"AWS {store.region}"
    try:
        created = store.create_table()
    except (BotoCoreError, ClientError) as exc:
        raise RuntimeError(f"could not create table {store.table_name} on {where}: {exc}") from None
    print(f"{'created' if created else 'found'} table {store.table_name} ({where}) with GSI1, GSI2 and TTL on 'ttl'")
    return 0


def cmd_serve(args) -> int:
    # lazy: service.server (uvicorn): ~0.3 s of `--help` (~30 ms)
    from music_feedback.service.server import serve
    serve(args.host, args.port, args.workers, args.log_level)
    return 0


def cmd_model_serve(args) -> int:
    return model_serve(args)


def cmd_bench(args) -> int:
    if args.limit:
        # a tool, not the product: imported only by its command
        # lazy: a tool, not the product: only its command imports it (test_layout)
        from music_feedback_tools.bench.limit import main as limit
        if not args.date or not args.limit_out:
            raise ValueError("bench --limit needs --date and --limit-out")
        limit(_program(args.program), args.date, str(settings.data_home() / "limit_candidates.sqlite"),
              args.limit_out)
        return 0
    if args.scale <= 0:
        raise ValueError(f"--scale must be greater than 0, got {args.scale}")
    # a tool, not the product: imported only by its command
    # lazy: a tool, not the product: only its command imports it (test_layout)
    from music_feedback_tools.bench import bench
    return bench(_program(args.program), args)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="music-feedback", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    wh = sub.add_parser("warehouse", help="the embedded DuckDB warehouse").add_subparsers(dest="action", required=True)
    seed = wh.add_parser("seed", help="generate a deterministic warehouse (default size: the seed's daily volumes)")
    seed.add_argument("--path", help="where to write it (default: $MUSIC_FEEDBACK_HOME/warehouse.duckdb)")
    seed.add_argument("--scale", type=float, default=1.0, help="multiply the default sizes (e.g. 0.01 for tests)")
    seed.add_argument("--listeners", type=int)
    seed.add_argument("--tracks", type=int)
    seed.add_argument("--plays-per-day", type=int, help="listener+track completions of new tracks per day")
    seed.add_argument("--outcomes", type=int, help="rows of past request outcomes to train on")
    seed.add_argument("--days", type=int, default=2)
    seed.add_argument("--end-date", type=date.fromisoformat, help="last day of plays (default: yesterday, UTC)")
    seed.add_argument("--seed", type=int, default=7)
    seed.add_argument("--program-id", action="append",
                      help="a program whose history to generate (repeat for several; default music-feedback)")
    seed.add_argument("--force", action="store_true", help="replace an existing warehouse")
    seed.set_defaults(func=cmd_seed)
    run = sub.add_parser("run", help="materialize the daily batch (default: the latest complete day) and summarise")
    run.add_argument("--program")
    run.add_argument("--date", type=date.fromisoformat, help="batch day D (processes D's plays)")
    run.add_argument("--retrain", action="store_true", help="retrain the models first")
    run.add_argument("--in-process", action="store_true",
                     help="execute the runs in this process instead of launching them from the code location "
                          "(no webserver to start; the UI's Overview timeline and Re-execute then leave them out)")
    run.add_argument("--report-json", help=argparse.SUPPRESS)
    run.add_argument("--no-email", "--batch-only", dest="no_email", action="store_true",
                     help="run only the batch, not the rest of the day (export, email, listeners, playlists, metrics)")
    run.set_defaults(func=cmd_run)
    sim = sub.add_parser("simulate", help="run N consecutive whole days (batch, export, email, listeners, "
                                          "playlists, metrics), each seeing the days before")
    sim.add_argument("--days", type=int, default=2, help="how many days, ending with the warehouse's last (default 2)")
    sim.add_argument("--program")
    sim.set_defaults(func=cmd_simulate)
    why = sub.add_parser("why", help="why was a listener (not) asked about a track on a day")
    why.add_argument("--listener", type=int, required=True)
    why.add_argument("--track", type=int, required=True)
    why.add_argument("--date", type=date.fromisoformat, required=True)
    why.add_argument("--program")
    why.set_defaults(func=cmd_why)
    store = sub.add_parser("store", help="the candidate store").add_subparsers(dest="action", required=True)
    store.add_parser("purge", help="delete expired candidates").set_defaults(func=cmd_purge)
    create = store.add_parser("create-table", help="create the DynamoDB candidate table, its indexes and TTL "
                                                   "(MUSIC_FEEDBACK_DYNAMODB_TABLE, MUSIC_FEEDBACK_DYNAMODB_ENDPOINT)")
    create.add_argument("--table", help="table name (default: MUSIC_FEEDBACK_DYNAMODB_TABLE or music-feedback-candidates; "
                                        "with --feedback, MUSIC_FEEDBACK_FEEDBACK_TABLE or music-feedback-feedback)")
    create.add_argument("--feedback", action="store_true", help="create the feedback table (ledger, answers, outbox)")
    create.set_defaults(func=cmd_create_table)
    serve = sub.add_parser("serve", help="run the HTTP service (serving API, health, metrics)")
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1, or MUSIC_FEEDBACK_SERVICE_HOST)")
    serve.add_argument("--port", type=int, help="port (default 8080, or MUSIC_FEEDBACK_SERVICE_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (default 1, or MUSIC_FEEDBACK_SERVICE_WORKERS)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=cmd_serve)


    add_model_commands(sub, cmd_model_serve)
    add_aws_commands(sub, _program, ensure_warehouse)
    bench = sub.add_parser("bench", help="run the default-scale day through Dagster and print figures")
    bench.add_argument("--program")
    bench.add_argument("--scale", type=float, default=1.0,
                       help="also run the day at this multiple of the default scale (e.g. 4), for the growth figures")
    bench.add_argument("--limit", action="store_true",
                       help="the same work as the batch in one plain process, no Dagster (the bench's comparison)")
    bench.add_argument("--date", type=date.fromisoformat, help=argparse.SUPPRESS)
    bench.add_argument("--limit-out", help=argparse.SUPPRESS)
    bench.set_defaults(func=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # lazy: programs.loader: ~1.1 s of `--help` (~30 ms)
    from music_feedback.programs.loader import ProgramConfigError

    # lazy: run_guard (dagster): ~0.5 s of `--help` (~30 ms)
    from music_feedback.run_guard import RunInProgressError

    # lazy: warehouse.port (polars): ~0.6 s of `--help` (~30 ms)
    from music_feedback.warehouse.port import WarehouseError
    try:
        return args.func(args)
    except (ProgramConfigError, WarehouseError, RunInProgressError, NotImplementedError, ValueError,
            RuntimeError) as exc:  # PreflightError and the adapters' configuration errors among them
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run_main() -> None:
    """The console entry point. A finished `run` exits without tearing the interpreter down: freeing
    millions of objects and Dagster's threads took over a second, and everything is already written."""
    code = main()
    command = sys.argv[1:2]
    if command == ["run"] or (command == ["bench"] and "--limit" in sys.argv):  # the bench compares both alike
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    run_main()
