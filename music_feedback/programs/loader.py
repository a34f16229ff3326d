"""Find and load program files; every error names the file and the key."""
from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from music_feedback.programs.model import Program
from music_feedback.settings import PROGRAM_VAR, PROGRAMS_DIR_VAR

BUILTIN_DIR = Path(__file__).parent


class ProgramConfigError(ValueError):
    """A program file that cannot be used; the message says which file and key."""


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


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
        return Program.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = "unknown key (not allowed)" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"  {_loc(err['loc'])}: {msg}")
        raise ProgramConfigError(f"{path}: invalid program configuration:\n" + "\n".join(problems)) from None


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
    for path in program_files():
        program = load_program(path)
        if program.program_id in programs:
            raise ProgramConfigError(f"{path}: programId {program.program_id!r} is defined twice")
        programs[program.program_id] = program
    selected = os.environ.get(PROGRAM_VAR)
    if selected:
        if selected not in programs:
            raise ProgramConfigError(
                f"{PROGRAM_VAR}={selected!r} matches no program file; known: {sorted(programs)}")
        return [programs[selected]]
    return [p for p in programs.values() if p.enabled]
