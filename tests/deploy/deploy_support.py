"""Readers for the deployment files (Dockerfile, .dockerignore, compose, env files) and the CLI.

Each reader follows the rules of the tool that consumes the file (Docker's builder, Docker Compose's
env-file parser, click), closely enough for what our files use, so that the tests check the files as
those tools will see them.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_FILE = REPO / "parsec-server.docker.yaml"
DEPLOY = REPO / "deploy"
ENV_TEMPLATES = DEPLOY / "env"
DOCS = REPO / "docs"


# --- Dockerfile -----------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, ENV...
    args: str  # the rest of the instruction, continuation lines joined
    line: int  # 1-based line of the keyword


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        """ENV of this stage, later instructions winning (values as written, `${X}` unexpanded)."""
        out: dict[str, str] = {}
        for ins in self.all("ENV"):
            for token in shlex.split(ins.args):
                key, sep, value = token.partition("=")
                assert sep, f"line {ins.line}: legacy `ENV key value` form"
                out[key] = value
        return out

    def labels(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for ins in self.all("LABEL"):
            for token in shlex.split(ins.args):
                key, _, value = token.partition("=")
                out[key] = value
        return out

    def exec_form(self, keyword: str) -> list[str] | None:
        ins = self.last(keyword)
        if ins is None:
            return None
        value = json.loads(ins.args)
        assert isinstance(value, list), f"{keyword} must use the exec (JSON) form"
        return value


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    out: list[Instruction] = []
    current: list[str] = []
    start = 0
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by the builder
        if not current:
            start = n
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        text = " ".join(p for p in current if p)
        keyword, _, rest = text.partition(" ")
        out.append(Instruction(keyword.upper(), rest.strip(), start))
        current = []
    assert not current, "Dockerfile ends inside a continued instruction"
    return out


def dockerfile_stages(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """(ARG defaults declared before the first FROM, stages in order)."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in dockerfile_instructions(path):
        if ins.keyword == "FROM":
            parts = [p for p in ins.args.split() if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(parts[0], name))
        elif not stages:
            assert ins.keyword == "ARG", f"line {ins.line}: only ARG may come before FROM"
            key, _, value = ins.args.partition("=")
            global_args[key] = value
        else:
            stages[-1].instructions.append(ins)
    return global_args, stages


def expand_args(value: str, args: dict[str, str]) -> str:
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m.group(1) or m.group(2), m.group(0)), value
    )


# --- .dockerignore --------------------------------------------------------------------------------


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax (Go filepath.Match plus `**`) on slash-separated paths."""
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        pattern = re.sub(r"/+", "/", pattern)
        rules.append((negate, _ignore_regex(pattern)))
    return rules


def in_build_context(relpath: str, rules: list[tuple[bool, re.Pattern[str]]] | None = None) -> bool:
    """Whether `relpath` (a file, relative to the repo) is sent to the builder.

    As in Docker: the last matching rule wins, and a rule matching a parent directory matches the
    files below it.
    """
    rules = dockerignore_rules() if rules is None else rules
    parts = relpath.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, rx in rules:
        if any(rx.match(p) for p in prefixes):
            excluded = not negate
    return not excluded


# --- compose --------------------------------------------------------------------------------------


def load_compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    return doc


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {name: (spec or {"condition": "service_started"}) for name, spec in deps.items()}


def transitive_dependencies(services: dict[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep in depends_on(services[todo.pop()]):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$$`."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, default = m.group(1), m.group(2), m.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return re.sub(r"\$\$|\$\{(\w+)(?:(:-|-)([^}]*))?\}", sub, value)


# --- env files (Docker Compose rules) -------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines as Docker Compose reads them.

    Single-quoted values are literal; double-quoted values take backslash escapes; unquoted values
    end at ` #` (a comment) and are stripped. `$VAR` expansion is not done here: our files have no
    `$` (checked by the tests).
    """
    out: dict[str, str] = {}
    for n, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), (
            f"{path.name}:{n}: not KEY=VALUE"
        )
        if value.startswith("'"):
            end = value.index("'", 1)
            value = value[1:end]
        elif value.startswith('"'):
            m = re.match(r'"((?:[^"\\]|\\.)*)"', value)
            assert m, f"{path.name}:{n}: unterminated double quote"
            value = re.sub(
                r"\\(.)", lambda e: {"n": "\n", "t": "\t"}.get(e.group(1), e.group(1)), m.group(1)
            )
        else:
            value = re.split(r"\s+#", value, maxsplit=1)[0].strip()
        out[key] = value
    return out


# --- the parsec-server command line ---------------------------------------------------------------


@dataclass(frozen=True)
class CliCommand:
    path: tuple[str, ...]  # () for the top-level group
    options: frozenset[str]  # every option spelling its --help lists, e.g. --db, -H, --help
    subcommands: frozenset[str]
    help_text: str


def _click_command(path: tuple[str, ...]) -> Any:
    import click

    from parsec_server.cli.main import cli

    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    return cmd


@cache
def cli_command(path: tuple[str, ...]) -> CliCommand:
    """What `parsec-server <path...> --help` documents (run in-process with click's test runner)."""
    import click
    from click.testing import CliRunner

    from parsec_server.cli.main import cli

    result = CliRunner().invoke(
        cli, [*path, "--help"], prog_name="parsec-server", terminal_width=200
    )
    assert result.exit_code == 0, f"parsec-server {' '.join(path)} --help failed: {result.output}"
    text = result.output
    options: set[str] = set()
    in_options = False
    for line in text.splitlines():
        if re.match(r"^\S.*:\s*$", line):
            in_options = line.startswith("Options")
            continue
        # An option line starts (indented by 2) with its spellings: "  -H, --host TEXT  help..."
        m = (
            re.match(r"^ {1,4}((?:-{1,2}[\w-]+(?:\s*/\s*-{1,2}[\w-]+)?,?\s*)+)", line)
            if in_options
            else None
        )
        if m:
            options.update(re.findall(r"-{1,2}[\w-]+", m.group(1)))
    cmd = _click_command(path)
    subcommands = (
        {name for name, sub in cmd.commands.items() if not sub.hidden}
        if isinstance(cmd, click.Group)
        else set()
    )
    return CliCommand(path, frozenset(options), frozenset(subcommands), text)


def all_cli_commands() -> list[CliCommand]:
    out = []
    todo: list[tuple[str, ...]] = [()]
    while todo:
        cmd = cli_command(todo.pop())
        out.append(cmd)
        todo.extend((*cmd.path, sub) for sub in sorted(cmd.subcommands))
    return out


def cli_envvars() -> set[str]:
    """Every PARSEC_* variable some parsec-server command reads (from the click parameters)."""
    import click

    from parsec_server.cli.main import cli

    found: set[str] = set()

    def walk(cmd: click.Command) -> None:
        for p in cmd.params:
            env = getattr(p, "envvar", None)
            if isinstance(env, str):
                found.add(env)
            elif env:
                found.update(env)
        if isinstance(cmd, click.Group):
            for sub in cmd.commands.values():
                walk(sub)

    walk(cli)
    return found


def resolve_invocation(args: list[str]) -> tuple[CliCommand, list[str]]:
    """(the command `parsec-server *args` runs, the arguments left for it)."""
    cmd = cli_command(())
    rest = list(args)
    while rest and not rest[0].startswith("-") and cmd.subcommands:
        assert rest[0] in cmd.subcommands, (
            f"`parsec-server {' '.join(args)}`: {rest[0]!r} is not a subcommand of "
            f"`parsec-server {' '.join(cmd.path)}` (has: {', '.join(sorted(cmd.subcommands))})"
        )
        cmd = cli_command((*cmd.path, rest.pop(0)))
    return cmd, rest


def unknown_options(args: list[str]) -> list[str]:
    """Options in `parsec-server *args` that the resolved command's --help does not list."""
    cmd, rest = resolve_invocation(args)
    bad = []
    for token in rest:
        if token == "--":
            break
        if not token.startswith("-") or token == "-" or re.match(r"^-\d", token):
            continue
        name = token.split("=", 1)[0]
        if name not in cmd.options:
            bad.append(name)
    return bad


# A fixture that builds the environment of a compose container (see conftest.container_env).
ContainerEnv = Callable[..., dict[str, str]]
