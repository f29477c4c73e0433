"""The Dockerfile read as its stages, for the tests (no Docker engine here to build it).

Only what this repo's Dockerfile uses: ``FROM <image> AS <name>``, one instruction per
logical line (backslash continuations joined), comments dropped.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
# Where both images keep their virtualenv (the install script's VENV argument).
IMAGE_VENV = "/usr/local/vpcnet"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, COPY, ENV, ...
    arguments: str


@dataclass(frozen=True)
class Stage:
    name: str
    base: str  # the FROM image, or the name of an earlier stage
    instructions: list[Instruction] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]

    def copies(self) -> list[tuple[list[str], str]]:
        """``COPY`` from the build context (not ``--from``): (sources, destination)."""
        out = []
        for args in self.arguments("COPY"):
            if args.startswith("--from="):
                continue
            *sources, destination = args.split()
            out.append((sources, destination))
        return out


def logical_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


@cache
def stages() -> dict[str, Stage]:
    """The named stages in file order (dicts keep insertion order: the last is the default)."""
    out: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical_lines(DOCKERFILE.read_text()):
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            match = re.fullmatch(r"(\S+) AS (\S+)", arguments.strip())
            assert match, f"every stage is named: {line}"
            current = Stage(match.group(2), match.group(1))
            out[current.name] = current
        elif current is not None:
            current.instructions.append(Instruction(keyword.upper(), arguments.strip()))
    return out


def lineage(name: str) -> list[Stage]:
    """The stage and every stage it is built FROM, nearest first."""
    chain = []
    all_stages = stages()
    while name in all_stages:
        chain.append(all_stages[name])
        name = all_stages[name].base
    return chain


def context_allowlist() -> set[str]:
    """What ``.dockerignore`` lets into the build context (it ignores ``*`` first)."""
    lines = [line for line in DOCKERIGNORE.read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines[0] == "*", "an allowlist"
    return {line[1:].rstrip("/") for line in lines if line.startswith("!")}


def venv_source(target: str) -> Stage:
    """The build stage whose virtualenv the ``target`` image copies in."""
    for stage in lineage(target):
        for args in stage.arguments("COPY"):
            parts = args.split()
            if parts[0].startswith("--from=") and parts[1:] == [IMAGE_VENV, IMAGE_VENV]:
                return stages()[parts[0].removeprefix("--from=")]
    raise AssertionError(f"{target} copies no {IMAGE_VENV} from a build stage")


def install_command(build_stage: Stage) -> list[str]:
    """The stage's ``RUN bash scripts/install-image.sh <role> <venv>``, as argv."""
    (run,) = [args for args in build_stage.arguments("RUN") if "install-image.sh" in args]
    argv = run.split()
    assert argv[:2] == ["bash", "scripts/install-image.sh"] and len(argv) == 4, run
    return argv


def context_copies(build_stage: Stage) -> list[tuple[list[str], str]]:
    """Every build-context COPY of the stage and the stages under it, in build order."""
    return [c for stage in reversed(lineage(build_stage.name)) for c in stage.copies()]


def materialize_context(build_stage: Stage, workdir: Path) -> None:
    """Copy into ``workdir`` what the stage's COPY lines put in its WORKDIR, skipping what
    ``.dockerignore`` keeps out of the context (byte code, build leftovers)."""
    for sources, destination in context_copies(build_stage):
        for src in sources:
            origin = REPO / src

            def skip(directory: str, names: list[str], top: Path = origin) -> set[str]:
                return {n for n in names if n == "__pycache__" or n.endswith((".pyc", ".egg-info"))
                        or (n == "build" and Path(directory) == top)}

            target = workdir / destination / origin.name if destination.endswith("/") else (
                workdir / destination)
            target.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=skip)
            else:
                shutil.copy2(origin, target)
