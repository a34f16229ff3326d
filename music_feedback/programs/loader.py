"""Find and load program files; every error names the file and the key."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import yaml
from pydantic import ValidationError

from music_feedback.filters.chain import build_chain, policy_warnings
from music_feedback.filters.sql import SqlChain, require_sql
from music_feedback.programs.model import Program
from music_feedback.settings import PROGRAM_VAR, PROGRAMS_DIR_VAR

BUILTIN_DIR = Path(__file__).parent


class ProgramConfigError(ValueError):
    """A program file that cannot be used; the message says which file and key."""


class ContactPolicyWarning(UserWarning):
    """A program disabled a filter that contact policy keeps on."""


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _top_alias(loc: tuple) -> tuple:
    """A default checked at load is reported under its field name; the file's key is the alias."""
    field = Program.model_fields.get(loc[0]) if loc and isinstance(loc[0], str) else None
    return (field.alias, *loc[1:]) if field is not None and field.alias else loc


def _config_error(path: Path, exc: ValidationError, prefix: tuple = ()) -> ProgramConfigError:
    problems = []
    for err in exc.errors():
        msg = "unknown key (not allowed)" if err["type"] == "extra_forbidden" else err["msg"]
        loc = tuple(err["loc"]) if prefix else _top_alias(tuple(err["loc"]))
        problems.append(f"  {_loc(prefix + loc)}: {msg}")
    return ProgramConfigError(f"{path}: invalid program configuration:\n" + "\n".join(problems))


def load_program(path: Path | str) -> Program:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ProgramConfigError(f"program file {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ProgramConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ProgramConfigError(f"{path}: expected a mapping of program settings at the top level")
    try:
        program = Program.model_validate(raw)
        for i, channel in enumerate(program.channels):
            try:
                channel.typed_config()
            except ValidationError as exc:
                raise _config_error(path, exc, ("channels", i, "config")) from None
    except ValidationError as exc:
        raise _config_error(path, exc) from None
    try:
        for flt in build_chain(program.filter_chain):  # the chain runs in the warehouse: refuse what SQL cannot say
            require_sql(flt, SqlChain(tuple(program.marketplaces)))
    except ValueError as exc:
        raise ProgramConfigError(f"{path}: invalid program configuration:\n  {exc}") from None
    for message in policy_warnings(program.filter_chain):
        warnings.warn(f"{path.name}: {message}", ContactPolicyWarning, stacklevel=2)
    return program


def program_files() -> list[Path]:
    """Built-in programs plus any in $MUSIC_FEEDBACK_PROGRAMS_DIR."""
    dirs = [BUILTIN_DIR]
    extra = os.environ.get(PROGRAMS_DIR_VAR)
    if extra:
        if not Path(extra).is_dir():
            raise ProgramConfigError(f"{PROGRAMS_DIR_VAR}={extra} is not a folder")
        dirs.append(Path(extra))
    return sorted({p.resolve() for d in dirs for p in d.glob("*.yaml")})


def load_programs() -> list[Program]:
    """Every enabled program found, or only $MUSIC_FEEDBACK_PROGRAM if set."""
    programs: dict[str, Program] = {}
    sources: dict[str, Path] = {}
    for path in program_files():
        program = load_program(path)
        if program.program_id in programs:
            raise ProgramConfigError(f"programId {program.program_id!r} is defined twice: in "
                                     f"{sources[program.program_id]} and {path}; rename one")
        programs[program.program_id], sources[program.program_id] = program, path
    selected = os.environ.get(PROGRAM_VAR)
    if selected:
        if selected not in programs:
            raise ProgramConfigError(
                f"{PROGRAM_VAR}={selected!r} matches no program file; known: {sorted(programs)}")
        return [programs[selected]]
    return [p for p in programs.values() if p.enabled]
