"""The administration guide (docs/, except docs/dev/) against the program it documents.

* Every `parsec-server` command shown (in code blocks, inline code, `docker compose ... run
  parsec-server ...`, `docker run IMAGE ...`, systemd `ExecStart=`) names existing subcommands and
  options, as `parsec-server <command> --help` lists them.
* Every `docker compose` command uses parsec-server.docker.yaml and names services it defines; every
  `deploy/*.sh` option exists in the script.
* The exit code table is the `Exit` enum; every setting is documented; every PARSEC_* name is real.
* Output samples marked `<!-- output: ... -->` are what the program prints. When they drift (e.g.
  a new migration), regenerate them:
  `PARSEC_UPDATE_DOCS=1 pytest tests/deploy/test_admin_docs.py -k output_samples`.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import (
    COMPOSE_FILE,
    DEPLOY,
    DOCKERFILE,
    DOCS,
    ENV_TEMPLATES,
    REPO,
    cli_command,
    cli_envvars,
    load_compose,
)

PAGES = sorted(p for p in DOCS.rglob("*.md") if "dev" not in p.relative_to(DOCS).parts[:-1])
SERVICES = load_compose()["services"]
PARSEC_SERVICES = {n for n, s in SERVICES.items() if "build" in s}
SHELL_LANGS = {"", "sh", "bash", "shell", "console"}
PLACEHOLDER = re.compile(r"[<\[{]|^[A-Z][A-Z_]*$|^\.\.\.$")


# --- reading the pages ----------------------------------------------------------------------------


@dataclass
class Block:
    page: Path
    line: int  # line of the opening fence (1-based)
    lang: str
    indent: str
    body: list[str]  # lines without the indentation
    label: str | None  # from a `<!-- output: LABEL -->` line just before the fence


def code_blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(\w*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2)
        label = None
        if i > 0:
            lm = re.match(r"^\s*<!--\s*output:\s*(.+?)\s*-->\s*$", lines[i - 1])
            label = lm.group(1) if lm else None
        j = i + 1
        while not re.match(rf"^{indent}```\s*$", lines[j]):
            j += 1
        body = [
            ln[len(indent) :] if ln.startswith(indent) else ln.lstrip() for ln in lines[i + 1 : j]
        ]
        blocks.append(Block(page, i + 1, lang, indent, body, label))
        i = j + 1
    return blocks


def prose(page: Path) -> str:
    """The page without its fenced blocks (same line count)."""
    out, fence = [], None
    for line in page.read_text().splitlines():
        m = re.match(r"^(\s*)```", line)
        if fence is None and m:
            fence = m.group(1)
            out.append("")
        elif fence is not None and re.match(rf"^{fence}```\s*$", line):
            fence = None
            out.append("")
        else:
            out.append("" if fence is not None else line)
    return "\n".join(out)


def inline_codes(page: Path) -> list[tuple[int, str]]:
    text = prose(page)
    found = []
    for m in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
        found.append((text.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split())))
    return found


def split_commands(script: str) -> list[str]:
    """Shell lines: continuations joined, comments and prompts dropped, split on ; && || |."""
    joined = re.sub(r"\\\n\s*", " ", script)
    out: list[str] = []
    for line in joined.splitlines():
        line = line.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        cur, quote, i = "", None, 0
        while i < len(line):
            c = line[i]
            if quote:
                quote = None if c == quote else quote
                cur += c
            elif c in "'\"":
                quote = c
                cur += c
            elif c == "#" and (not cur or cur[-1].isspace()):
                break
            elif line.startswith(("&&", "||"), i) or c in ";|":
                out.append(cur)
                cur = ""
                i += 2 if line.startswith(("&&", "||"), i) else 1
                continue
            else:
                cur += c
            i += 1
        out.append(cur)
    return [c.strip() for c in out if c.strip()]


# --- recognising invocations ----------------------------------------------------------------------


@dataclass
class Invocation:
    where: str  # page:line
    text: str
    kind: str  # parsec | compose | docker-run | script
    argv: list[str]

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


COMPOSE_GLOBAL_VALUE = {
    "-f",
    "--file",
    "-p",
    "--project-name",
    "--profile",
    "--env-file",
    "--project-directory",
}
COMPOSE_SUBCOMMANDS = {
    "build",
    "config",
    "cp",
    "create",
    "down",
    "exec",
    "images",
    "kill",
    "logs",
    "ls",
    "pause",
    "port",
    "ps",
    "pull",
    "restart",
    "rm",
    "run",
    "start",
    "stop",
    "top",
    "unpause",
    "up",
    "version",
    "wait",
}
COMPOSE_VALUE = {
    "-e",
    "--env",
    "-v",
    "--volume",
    "-p",
    "--publish",
    "--name",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--entrypoint",
    "-l",
    "--label",
    "--tail",
    "--scale",
    "-t",
    "--timeout",
    "--since",
    "--until",
    "--index",
    "--wait-timeout",
    "--pull",
    "--cap-add",
    "--cap-drop",
}
DOCKER_RUN_VALUE = {
    "-e",
    "--env",
    "--env-file",
    "-v",
    "--volume",
    "-p",
    "--publish",
    "--name",
    "--network",
    "--net",
    "-u",
    "--user",
    "-w",
    "--workdir",
    "--entrypoint",
    "--mount",
    "-l",
    "--label",
    "--restart",
    "-m",
    "--memory",
    "--cpus",
    "--health-cmd",
}


def _invocations_in(where: str, command: str) -> list[Invocation]:
    try:
        tokens = shlex.split(command)
    except ValueError:
        return []
    if not tokens:
        return []
    if tokens[:2] == ["docker", "compose"]:
        return [Invocation(where, command, "compose", tokens[2:])]
    if tokens[:2] == ["docker", "run"]:
        return [Invocation(where, command, "docker-run", tokens[2:])]
    if re.fullmatch(r"(\./)?deploy/[\w-]+\.sh", tokens[0]):
        return [Invocation(where, command, "script", tokens)]
    starts = [0] if Path(tokens[0]).name == "parsec-server" else []
    starts += [
        i + 1
        for i, t in enumerate(tokens[:-1])
        if t == "--" and Path(tokens[i + 1]).name == "parsec-server"
    ]
    if (
        tokens[0].startswith("ExecStart=")
        and Path(tokens[0].split("=", 1)[1]).name == "parsec-server"
    ):
        return [Invocation(where, command, "parsec", tokens[1:])]
    if starts:
        return [Invocation(where, command, "parsec", tokens[starts[0] + 1 :])]
    return []


def all_invocations() -> list[Invocation]:
    found: list[Invocation] = []
    for page in PAGES:
        rel = page.relative_to(REPO)
        for block in code_blocks(page):
            if block.label is not None:
                continue
            if block.lang in SHELL_LANGS:
                for cmd in split_commands("\n".join(block.body)):
                    found += _invocations_in(f"{rel}:{block.line}", cmd)
            elif block.lang == "ini":
                for n, line in enumerate(block.body, start=block.line + 1):
                    if line.startswith("ExecStart="):
                        found += _invocations_in(f"{rel}:{n}", line)
        for lineno, code in inline_codes(page):
            first = code.split()[0] if code.split() else ""
            if first in {"parsec-server", "docker"} or first.startswith("deploy/"):
                found += _invocations_in(f"{rel}:{lineno}", code)
            elif first in cli_command(()).subcommands:  # `migrate --to NNNN` in prose
                found += _invocations_in(f"{rel}:{lineno}", f"parsec-server {code}")
    return found


INVOCATIONS = all_invocations()


def _check_parsec_args(args: list[str]) -> str | None:
    """None if `parsec-server *args` uses existing subcommands and options, else what is wrong."""
    cmd = cli_command(())
    rest = list(args)
    while rest and not rest[0].startswith("-") and cmd.subcommands:
        word = rest[0]
        if PLACEHOLDER.search(word):
            return None  # `parsec-server <command> --help`: nothing more to check
        if word not in cmd.subcommands:
            return f"no subcommand {word!r} in `parsec-server {' '.join(cmd.path)}`"
        cmd = cli_command((*cmd.path, rest.pop(0)))
    for token in rest:
        if token == "--":
            break
        if token.startswith("-") and not re.match(r"^-\d", token):
            name = token.split("=", 1)[0]
            if name not in cmd.options:
                return f"`parsec-server {' '.join(cmd.path)}` has no option {name}"
    return None


def _split_options(tokens: list[str], value_options: set[str]) -> tuple[list[str], list[str]]:
    """(options with their values, the rest) for a docker-like command line."""
    opts, i = [], 0
    while i < len(tokens) and tokens[i].startswith("-"):
        opts.append(tokens[i])
        if tokens[i] in value_options:
            i += 1
            opts.append(tokens[i])
        i += 1
    return opts, tokens[i:]


def _check_compose(inv: Invocation) -> str | None:
    glob, rest = _split_options(inv.argv, COMPOSE_GLOBAL_VALUE)
    files = [glob[i + 1] for i, t in enumerate(glob) if t in {"-f", "--file"}]
    if files != [COMPOSE_FILE.name]:
        return f"must use `docker compose -f {COMPOSE_FILE.name}` (the commands operators copy)"
    if not rest:
        return None  # the prefix alone, named in prose
    if rest[0] not in COMPOSE_SUBCOMMANDS:
        return f"unknown docker compose subcommand {rest[:1]}"
    sub, tail = rest[0], rest[1:]
    args = _split_options(tail, COMPOSE_VALUE)[1]
    if sub in {"run", "exec"}:
        if not args:
            return f"`{sub}` needs a service"
        service, command = args[0], args[1:]
        if PLACEHOLDER.search(service):
            return None
        if service not in SERVICES:
            return f"no service {service!r} in {COMPOSE_FILE.name}"
        if sub == "exec":
            if command[:1] != ["parsec-server"]:
                return None
            command = command[1:]
        if service in PARSEC_SERVICES and command:
            return _check_parsec_args(command)
        return None
    if sub == "cp":
        refs = [a.split(":", 1)[0] for a in args if ":" in a and not a.startswith(("/", "."))]
        bad = [r for r in refs if r not in SERVICES]
        return f"no service {bad[0]!r}" if bad else None
    bad = [a for a in args if a not in SERVICES and not PLACEHOLDER.search(a)]
    return f"no service {bad[0]!r} in {COMPOSE_FILE.name}" if bad else None


def _check_docker_run(inv: Invocation) -> str | None:
    if not inv.argv:
        return None  # `docker run` named in prose
    rest = _split_options(inv.argv, DOCKER_RUN_VALUE)[1]
    if not rest:
        return "docker run without an image"
    image, args = rest[0], rest[1:]
    if not image.startswith("parsec-server"):
        return None
    return _check_parsec_args(args) if args else None


def _script_options(script: Path) -> set[str]:
    return set(
        re.findall(r"^\s*(--?[\w-]+)(?:=\*)?(?:\|[^)]*)?\)", script.read_text(), flags=re.M)
    ) | set(re.findall(r"\|(--?[\w-]+)\)", script.read_text()))


def _check_script(inv: Invocation) -> str | None:
    script = REPO / inv.argv[0].removeprefix("./")
    if not script.is_file():
        return f"{inv.argv[0]} does not exist"
    known = _script_options(script)
    bad = [
        t.split("=", 1)[0]
        for t in inv.argv[1:]
        if t.startswith("-") and t.split("=", 1)[0] not in known
    ]
    return f"{inv.argv[0]} has no option {bad[0]}" if bad else None


CHECKS = {
    "parsec": lambda inv: _check_parsec_args(inv.argv),
    "compose": _check_compose,
    "docker-run": _check_docker_run,
    "script": _check_script,
}


def test_the_docs_show_commands() -> None:
    kinds = {inv.kind for inv in INVOCATIONS}
    assert kinds == set(CHECKS), kinds
    shown = {" ".join(inv.argv[:2]) for inv in INVOCATIONS if inv.kind == "parsec"}
    assert {"migrate --dry-run", "backup --output"} <= shown


@pytest.mark.parametrize("inv", INVOCATIONS, ids=str)
def test_command_exists_with_the_options_shown(inv: Invocation) -> None:
    problem = CHECKS[inv.kind](inv)
    assert problem is None, f"{inv}\n  -> {problem}"


def test_the_guide_commands_appear_verbatim() -> None:
    texts = {" ".join(shlex.split(inv.text)) for inv in INVOCATIONS if inv.kind == "compose"}
    prefix = f"docker compose -f {COMPOSE_FILE.name}"
    for command in (
        "run parsec-server migrate --dry-run",
        "run parsec-server migrate",
        "restart parsec-server",
    ):
        assert f"{prefix} {command}" in texts, command


def test_inline_options_exist() -> None:
    """An option named alone in prose (`--lock-timeout`) is an option of some command or script."""
    from deploy_support import all_cli_commands

    known = set().union(*(c.options for c in all_cli_commands()))
    for script in DEPLOY.glob("*.sh"):
        known |= _script_options(script)
    known |= {"--init", "--scale", "--rm"}  # docker's own, used in the guide's prose
    for page in PAGES:
        for line, code in inline_codes(page):
            m = re.fullmatch(r"(--[a-z][\w-]*)(?:[ =]\S+)?", code)
            if m:
                assert m.group(1) in known, f"{page.relative_to(REPO)}:{line}: {code}"


# --- exit codes, settings, names ------------------------------------------------------------------


def test_exit_code_table_is_the_exit_enum() -> None:
    from parsec_server.exit_codes import Exit

    text = (DOCS / "cli.md").read_text()
    section = text.split("## Exit codes", 1)[1]
    rows = re.findall(r"^\|\s*(\d+)\s*\|\s*([A-Z_]+)\s*\|\s*(.+?)\s*\|\s*$", section, flags=re.M)
    assert {(int(code), name) for code, name, _ in rows} == {(int(e), e.name) for e in Exit}
    assert len(rows) == len(Exit), "one row per code"
    assert all(len(meaning) > 10 for *_, meaning in rows)


def _documented_option_envvars() -> set[str]:
    import click

    from parsec_server.cli.main import cli

    found: set[str] = set()

    def walk(cmd: click.Command) -> None:
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden and isinstance(p.envvar, str):
                found.add(p.envvar)
        for sub in getattr(cmd, "commands", {}).values():
            walk(sub)

    walk(cli)
    return {e for e in found if e.startswith("PARSEC_")}


def test_every_setting_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = sorted(e for e in _documented_option_envvars() if f"`{e}`" not in text)
    assert not missing, f"undocumented in docs/configuration.md: {missing}"


def _read_somewhere(name: str) -> bool:
    for path in [*(REPO / "src").rglob("*.py"), *DEPLOY.glob("*"), COMPOSE_FILE, DOCKERFILE]:
        if path.is_file() and name in path.read_text(errors="replace"):
            return True
    return False


def test_every_parsec_variable_named_exists() -> None:
    """A PARSEC_* name in the docs, the env templates, the compose file or the Dockerfile is a
    setting of parsec-server or a variable that configuration.md lists and some file reads."""
    settings = cli_envvars()
    other = (DOCS / "configuration.md").read_text().split("## Other variables", 1)[1]
    sources = [*PAGES, *ENV_TEMPLATES.glob("*.template"), COMPOSE_FILE, DOCKERFILE]
    for path in sources:
        for name in sorted(
            set(re.findall(r"PARSEC_[A-Z][A-Z0-9_]*[A-Z0-9](?:_\*)?", path.read_text()))
        ):
            if name in settings:
                continue
            if name.endswith("_*"):
                assert any(e.startswith(name[:-1]) for e in settings), (
                    f"{path.relative_to(REPO)}: {name}"
                )
                continue
            if name == "PARSEC_BACKUP_DIR":
                continue  # migrate --backup-dir: test_dockerfile.test_backup_dir_is_read_by_migrate
            assert f"`{name}`" in other and _read_somewhere(name), (
                f"{path.relative_to(REPO)}: {name}"
            )


# --- pages and links ------------------------------------------------------------------------------


def _anchor(heading: str) -> str:
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_links_between_pages_resolve() -> None:
    for page in PAGES:
        for line, target in [
            (prose(page).count("\n", 0, m.start()) + 1, m.group(1))
            for m in re.finditer(r"\]\(([^)\s]+)\)", prose(page))
        ]:
            if re.match(r"^[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            assert dest.is_file(), f"{page.relative_to(REPO)}:{line}: broken link {target}"
            if anchor:
                headings = re.findall(r"^#+\s+(.+)$", dest.read_text(), flags=re.M)
                assert anchor in {_anchor(h) for h in headings}, (
                    f"{page.relative_to(REPO)}:{line}: no #{anchor}"
                )


def test_the_index_links_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    for page in PAGES:
        if page.name != "index.md":
            assert f"]({page.relative_to(DOCS).as_posix()})" in index, page.name


def test_the_topics_of_the_guide_are_covered() -> None:
    names = {p.name for p in PAGES}
    assert {
        "install-docker.md",
        "install.md",
        "organizations.md",
        "upgrade.md",
        "backup-restore.md",
        "rollback.md",
        "scaling.md",
        "cli.md",
        "configuration.md",
    } <= names


def test_every_migration_can_be_reverted() -> None:
    """rollback.md says our migrations all have down scripts (`migrate --to` relies on them)."""
    from parsec_server.storage.migrations.source import discover

    for m in discover(None):
        assert m.down is not None, (
            f"{m.filename} has no down script: fix docs/rollback.md or add one"
        )


# --- output samples -------------------------------------------------------------------------------

SHOWN_DB_URL = (
    "postgresql://parsec:***@postgres:5432/parsec"  # PARSEC_DB of db.env, as migrate shows it
)
SHOWN_BACKUP_DIR = "/var/lib/parsec-server/backups"  # PARSEC_BACKUP_DIR of the image


def _normalise(text: str) -> str:
    text = re.sub(r"\(\d+(?:\.\d+)? (?:ms|s)\b", "(<duration>", text)
    text = re.sub(r"pre-migrate-\d{8}T\d{6}Z", "pre-migrate-<time>", text)
    text = re.sub(r"\(\d+(?:\.\d+)? MB\)", "(<size> MB)", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _parsec(*args: str, db: str, backups: Path) -> subprocess.CompletedProcess[str]:
    """stdout and stderr interleaved, as `docker compose run` shows them (unbuffered image)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    env.update(PARSEC_DB=db, PARSEC_BACKUP_DIR=str(backups), PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "parsec_server.cli.main", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )


def test_upgrade_output_samples_are_what_migrate_prints(empty_db_url: str, tmp_path: Path) -> None:
    """upgrade.md shows an upgrade: all but the last migration applied, then --dry-run, migrate."""
    from parsec_server.storage.migrations import engine
    from parsec_server.storage.migrations.source import discover

    migrations = discover(None)
    backups = tmp_path / "backups"
    if len(migrations) >= 2:
        res = _parsec(
            "migrate", "--to", f"{migrations[-2].index:04d}", db=empty_db_url, backups=backups
        )
        assert res.returncode == 0, res.stdout
    real: dict[str, str] = {}
    for label, args in (("migrate --dry-run", ["migrate", "--dry-run"]), ("migrate", ["migrate"])):
        res = _parsec(*args, db=empty_db_url, backups=backups)
        assert res.returncode == 0, res.stdout
        real[label] = res.stdout.replace(engine.redact_url(empty_db_url), SHOWN_DB_URL).replace(
            str(backups), SHOWN_BACKUP_DIR
        )

    page = DOCS / "upgrade.md"
    blocks = [b for b in code_blocks(page) if b.label]
    assert sorted(b.label or "" for b in blocks) == sorted(real)
    if os.environ.get("PARSEC_UPDATE_DOCS") == "1":
        lines = page.read_text().splitlines()
        for b in sorted(blocks, key=lambda b: -b.line):
            new = [
                b.indent + ln if ln else "" for ln in real[b.label or ""].rstrip("\n").splitlines()
            ]
            lines[b.line : b.line + len(b.body)] = new
        page.write_text("\n".join(lines) + "\n")
        return
    for b in blocks:
        assert _normalise("\n".join(b.body)) == _normalise(real[b.label or ""]), (
            f"docs/upgrade.md:{b.line}: the `{b.label}` sample is stale; regenerate it with "
            "PARSEC_UPDATE_DOCS=1 pytest tests/deploy/test_admin_docs.py -k output_samples"
        )


# --- the administration API examples, against a running server ------------------------------------


def _start_server(db_url: str, token: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARSEC_")}
    env.update(
        PARSEC_DB=db_url,
        PARSEC_ADMINISTRATION_TOKEN=token,
        PARSEC_PORT=str(port),
        PARSEC_HOST="127.0.0.1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "parsec_server.cli.main", "run"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail("server did not start")


def test_organization_examples_work_against_the_server(
    db_url: str, generated_env: Path, tmp_path: Path
) -> None:
    """organizations.md's commands, run as written (port changed) from a directory holding the
    env files deploy/generate-env.sh wrote, against a server using that administration token."""
    from deploy_support import read_env_file

    from parsec_server.embedded_pg import free_tcp_port

    workdir = tmp_path / "deployment"
    (workdir / "deploy").mkdir(parents=True)
    (workdir / "deploy" / "env").symlink_to(generated_env)
    token = read_env_file(generated_env / "admin-token.env")["PARSEC_ADMINISTRATION_TOKEN"]
    port = free_tcp_port()
    blocks = [b for b in code_blocks(DOCS / "organizations.md") if b.lang == "sh"]
    commands = [c for b in blocks for c in split_commands("\n".join(b.body))]
    preamble = [c for c in commands if c.startswith(". ")]
    assert preamble == [". deploy/env/admin-token.env"]
    calls = [
        c.replace("127.0.0.1:6777", f"127.0.0.1:{port}") for c in commands if c.startswith("curl ")
    ]
    assert len(calls) >= 5

    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
    }  # no token: it comes from the env file
    proc = _start_server(db_url, token, port, tmp_path / "server.log")
    try:
        outputs = []
        for call in calls:
            res = subprocess.run(
                ["sh", "-ec", f"{preamble[0]}\n{call}"],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert res.returncode == 0, f"{call}\n{res.stdout}{res.stderr}"
            outputs.append(res.stdout)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    import json

    created = json.loads(outputs[0])
    (sample,) = [b for b in code_blocks(DOCS / "organizations.md") if b.lang == "json"]
    shown = json.loads("\n".join(sample.body))
    assert set(created) == set(shown)
    payload = re.compile(r"p=[A-Za-z0-9_-]+")
    for key in shown:
        expected = payload.sub("p=<token>", shown[key]).replace(
            "127.0.0.1:6777", f"127.0.0.1:{port}"
        )
        assert payload.sub("p=<token>", created[key]) == expected, key
    assert json.loads(outputs[1])["is_bootstrapped"] is False
    assert json.loads(outputs[2]) == {}
    assert "organization_id" in outputs[4].splitlines()[0]
