"""deploy/generate-env.sh and the env file templates."""

from __future__ import annotations

import re
import stat
import subprocess
from pathlib import Path

import pytest
from deploy_support import DEPLOY, ENV_TEMPLATES, cli_envvars, read_env_file

SCRIPT = DEPLOY / "generate-env.sh"
ENV_NAMES = sorted(p.name.removesuffix(".template") for p in ENV_TEMPLATES.glob("*.env.template"))


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def _all(directory: Path) -> dict[str, dict[str, str]]:
    return {name: read_env_file(directory / name) for name in ENV_NAMES}


def test_writes_every_env_file_privately_without_placeholders(generated_env: Path) -> None:
    assert sorted(p.name for p in generated_env.iterdir()) == ENV_NAMES
    for name in ENV_NAMES:
        path = generated_env / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        text = path.read_text()
        assert not re.search(r"@[A-Z_]+@", text), name
        for key, value in read_env_file(path).items():
            # `$` would be interpolated and ` #` cut by Compose; keep values literal everywhere.
            assert (
                "$" not in value and "#" not in value and "'" not in value and '"' not in value
            ), (name, key)


def test_values_are_consistent_and_usable_by_parsec_server(generated_env: Path) -> None:
    from parsec_server.cli.options import DbUrl, parse_blockstore

    env = _all(generated_env)
    db = env["db.env"]
    assert DbUrl().convert(db["PARSEC_DB"], None, None) == db["PARSEC_DB"]
    assert db["PARSEC_DB"] == (
        f"postgresql://{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}@postgres:5432/{db['POSTGRES_DB']}"
    )
    assert re.fullmatch(r"[0-9a-f]{48}", db["POSTGRES_PASSWORD"])
    s3 = env["s3.env"]
    store = parse_blockstore((s3["PARSEC_BLOCKSTORE"],))
    assert (store.s3_key, store.s3_secret, store.s3_bucket) == (
        s3["MINIO_ROOT_USER"],
        s3["MINIO_ROOT_PASSWORD"],
        s3["S3_BUCKET"],
    )
    assert (
        len(s3["MINIO_ROOT_PASSWORD"]) >= 8 and len(s3["MINIO_ROOT_USER"]) >= 3
    )  # MinIO's minimums
    assert re.fullmatch(r"[0-9a-f]{64}", env["admin-token.env"]["PARSEC_ADMINISTRATION_TOKEN"])
    assert env["server.env"]["PARSEC_SERVER_ADDR"] == "parsec3://localhost:6777?no_ssl=true"
    secrets = [
        db["POSTGRES_PASSWORD"],
        s3["MINIO_ROOT_PASSWORD"],
        env["admin-token.env"]["PARSEC_ADMINISTRATION_TOKEN"],
    ]
    assert len(set(secrets)) == 3


def test_two_runs_never_share_secrets(tmp_path: Path) -> None:
    assert _generate("--dir", str(tmp_path / "a")).returncode == 0
    assert _generate("--dir", str(tmp_path / "b")).returncode == 0
    a, b = _all(tmp_path / "a"), _all(tmp_path / "b")
    assert a["db.env"]["POSTGRES_PASSWORD"] != b["db.env"]["POSTGRES_PASSWORD"]
    assert a["admin-token.env"] != b["admin-token.env"]


def test_existing_files_are_kept_unless_forced(generated_env: Path) -> None:
    before = _all(generated_env)
    (generated_env / "server.env").write_text("PARSEC_SERVER_ADDR=parsec3://edited.example.com\n")
    res = _generate("--dir", str(generated_env))
    assert res.returncode == 0
    assert [line.split()[0] for line in res.stdout.splitlines()] == ["kept"] * len(ENV_NAMES)
    assert _all(generated_env)["db.env"] == before["db.env"]
    assert read_env_file(generated_env / "server.env") == {
        "PARSEC_SERVER_ADDR": "parsec3://edited.example.com"
    }

    res = _generate("--dir", str(generated_env), "--force")
    assert res.returncode == 0
    after = _all(generated_env)
    assert after["db.env"]["POSTGRES_PASSWORD"] != before["db.env"]["POSTGRES_PASSWORD"]
    assert after["server.env"]["PARSEC_SERVER_ADDR"].startswith("parsec3://localhost")


def test_server_address_is_written_as_given(tmp_path: Path) -> None:
    addr = "parsec3://parsec.example.com:8443?a=1&b=|2"
    assert _generate("--dir", str(tmp_path), "--server-addr", addr).returncode == 0
    assert read_env_file(tmp_path / "server.env")["PARSEC_SERVER_ADDR"] == addr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--server-addr", "https://parsec.example.com"], "parsec3://"),
        (["--bogus"], "unknown argument"),
        (["--dir"], "--dir needs a value"),
    ],
)
def test_bad_arguments_are_refused_without_writing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    res = (
        _generate(*args) if args == ["--dir"] else _generate("--dir", str(tmp_path / "out"), *args)
    )
    assert res.returncode == 2
    assert message in res.stderr
    assert res.stderr.count("\n") <= 3, "a short error, not the whole help"
    assert not (tmp_path / "out").exists()


def test_help_exits_zero() -> None:
    res = _generate("--help")
    assert res.returncode == 0 and "--server-addr" in res.stderr


def test_every_parsec_variable_in_the_templates_is_read_by_parsec_server() -> None:
    """Commented-out examples included: an operator uncommenting one must get a real setting."""
    known = cli_envvars()
    for template in ENV_TEMPLATES.glob("*.env.template"):
        for name in re.findall(r"^#?\s*(PARSEC_\w+)=", template.read_text(), flags=re.M):
            assert name in known, f"{template.name}: {name} is not a parsec-server setting"


def test_generated_files_are_not_versioned() -> None:
    ignore = (ENV_TEMPLATES / ".gitignore").read_text().split()
    assert "*.env" in ignore
    res = subprocess.run(
        ["git", "check-ignore", "-q", str(ENV_TEMPLATES / "db.env")],
        cwd=DEPLOY,
        capture_output=True,
    )
    if res.returncode == 128:  # not inside a git work tree (e.g. a release tarball)
        pytest.skip("not a git work tree")
    assert res.returncode == 0, "deploy/env/db.env would be committed"
    res = subprocess.run(
        ["git", "check-ignore", "-q", str(ENV_TEMPLATES / "db.env.template")],
        cwd=DEPLOY,
        capture_output=True,
    )
    assert res.returncode == 1, "the templates must stay versioned"
