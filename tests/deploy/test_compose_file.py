"""parsec-server.docker.yaml: schema, references between services, and agreement with the image."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from deploy_support import (
    COMPOSE_FILE,
    ENV_TEMPLATES,
    REPO,
    depends_on,
    dockerfile_stages,
    interpolate,
    load_compose,
    read_env_file,
    transitive_dependencies,
    unknown_options,
)

COMPOSE = load_compose()
SERVICES: dict[str, Any] = COMPOSE["services"]
_, STAGES = dockerfile_stages()
IMAGE_ENV = STAGES[-1].env()
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def _parsec_services() -> list[str]:
    """Services running the parsec-server image."""
    return [
        n for n, s in SERVICES.items() if "build" in s or "parsec-server" in str(s.get("image", ""))
    ]


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(exe), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_valid_against_the_compose_specification() -> None:
    res = _check_jsonschema(COMPOSE_FILE)
    assert res.returncode == 0, res.stdout + res.stderr


def test_schema_check_does_reject_an_unknown_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        COMPOSE_FILE.read_text().replace(
            "restart: unless-stopped", "restart_policy: unless-stopped"
        )
    )
    assert _check_jsonschema(bad).returncode != 0


def test_depends_on_names_defined_services_without_cycles() -> None:
    for name, svc in SERVICES.items():
        for dep, spec in depends_on(svc).items():
            assert dep in SERVICES, f"{name} depends on undefined service {dep!r}"
            assert dep != name
            assert spec.get("condition", "service_started") in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }
        assert name not in transitive_dependencies(SERVICES, name), (
            f"dependency cycle through {name}"
        )


def _has_healthcheck(name: str) -> bool:
    svc = SERVICES[name]
    hc = svc.get("healthcheck")
    if hc is not None:
        return not hc.get("disable", False) and bool(hc.get("test"))
    return name in _parsec_services() and STAGES[-1].last("HEALTHCHECK") is not None


def test_wait_conditions_can_be_met() -> None:
    """`service_healthy` needs a health check; `service_completed_successfully` a job that exits."""
    for name, svc in SERVICES.items():
        for dep, spec in depends_on(svc).items():
            if spec["condition"] == "service_healthy":
                assert _has_healthcheck(dep), (
                    f"{name} waits for {dep} to be healthy, which has no health check"
                )
            if spec["condition"] == "service_completed_successfully":
                assert SERVICES[dep].get("restart", "no") == "no", f"{dep} must be a one-shot job"


def test_server_waits_for_healthy_storage() -> None:
    deps = depends_on(SERVICES["parsec-server"])
    assert deps["postgres"]["condition"] == "service_healthy"
    assert any(SERVICES[d].get("restart") == "no" and d != "migrate" for d in deps), (
        "bucket creation job"
    )
    assert SERVICES["parsec-server"]["restart"] in {"unless-stopped", "always", "on-failure"}, (
        "until `migrate` is done `run` exits 7 and must be restarted"
    )


def test_run_parsec_server_never_starts_the_migrate_job() -> None:
    """`docker compose run parsec-server migrate --dry-run` starts each dependency of parsec-server:
    none may apply migrations, or the dry run would show an already migrated database."""
    for dep in transitive_dependencies(SERVICES, "parsec-server"):
        command = SERVICES[dep].get("command") or []
        assert not (dep in _parsec_services() and command[:1] == ["migrate"]), dep


def test_migrate_job_uses_the_server_image_and_configuration() -> None:
    job, server = SERVICES["migrate"], SERVICES["parsec-server"]
    assert job["command"][0] == "migrate"
    assert job["restart"] == "no"
    assert job["healthcheck"] == {"disable": True}
    assert depends_on(job)["postgres"]["condition"] == "service_healthy"
    for key in ("image", "env_file", "environment", "volumes"):
        assert job[key] == server[key], key


def test_parsec_commands_are_valid_for_this_release() -> None:
    for name in _parsec_services():
        command = SERVICES[name].get("command") or STAGES[-1].exec_form("CMD")
        assert isinstance(command, list)
        assert unknown_options(command) == [], (name, command)


def test_storage_services_keep_their_data_in_named_volumes() -> None:
    volumes = COMPOSE["volumes"]
    for name, target in (("postgres", "/var/lib/postgresql/data"), ("s3", "/data")):
        mounts = [v.split(":") for v in SERVICES[name]["volumes"]]
        assert any(t == target and src in volumes for src, t in mounts), (name, mounts)
        assert _has_healthcheck(name)


def test_postgres_health_check_uses_tcp() -> None:
    """During first initialisation the postgres image runs a socket-only server: pg_isready over the
    socket would report it ready, then the real server restarts."""
    test = " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    assert "pg_isready" in test and "-h 127.0.0.1" in test


def test_published_port_and_backup_volume_match_the_image() -> None:
    (port,) = SERVICES["parsec-server"]["ports"]
    assert interpolate(port, {}) == f"127.0.0.1:6777:{IMAGE_ENV['PARSEC_PORT']}"
    assert interpolate(port, {"PARSEC_PUBLISH": "6777"}) == f"6777:{IMAGE_ENV['PARSEC_PORT']}"
    backup_dir = IMAGE_ENV["PARSEC_BACKUP_DIR"]
    for name in _parsec_services():
        svc = SERVICES[name]
        assert svc["environment"]["PARSEC_BACKUP_DIR"] == backup_dir
        assert f"backups:{backup_dir}" in svc["volumes"]
        assert svc.get("init") is True, (
            "signals must reach parsec-server (and pg_dump children be reaped)"
        )


def test_images_are_pinned() -> None:
    for name, svc in SERVICES.items():
        image = interpolate(svc["image"], {})
        assert ":" in image and not image.endswith(":latest"), (name, image)
    assert interpolate(SERVICES["parsec-server"]["image"], {}) == f"parsec-server:{VERSION}"
    assert interpolate(SERVICES["parsec-server"]["build"]["args"]["VERSION"], {}) == VERSION
    assert (
        interpolate(
            SERVICES["parsec-server"]["image"], {"PARSEC_IMAGE": "r/p", "PARSEC_VERSION": "9"}
        )
        == "r/p:9"
    )


def test_env_files_come_from_templates() -> None:
    for name, svc in SERVICES.items():
        for ref in svc.get("env_file", []):
            path = Path(ref if isinstance(ref, str) else ref["path"])
            assert path.parent == Path("deploy/env"), (name, path)
            assert (ENV_TEMPLATES / f"{path.name}.template").is_file(), (name, path)
    templates = {p.name.removesuffix(".template") for p in ENV_TEMPLATES.glob("*.env.template")}
    used = {Path(r).name for s in SERVICES.values() for r in s.get("env_file", [])}
    assert templates == used


def test_bucket_job_creates_the_bucket_the_server_uses(generated_env: Path) -> None:
    from parsec_server.cli.options import parse_blockstore

    s3_env = read_env_file(generated_env / "s3.env")
    job = SERVICES["s3-bucket"]
    assert depends_on(job)["s3"]["condition"] == "service_healthy"
    script = interpolate(job["command"][0], {})
    assert "mc mb --ignore-existing" in script and "${S3_BUCKET}" in script
    assert "http://s3:9000" in script
    res = subprocess.run(["sh", "-n", "-c", script], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    store = parse_blockstore((s3_env["PARSEC_BLOCKSTORE"],))
    assert store.kind == "S3"
    assert store.s3_endpoint == "http://s3:9000"  # the `s3` service, on MinIO's port
    assert store.s3_bucket == s3_env["S3_BUCKET"]
    assert (store.s3_key, store.s3_secret) == (
        s3_env["MINIO_ROOT_USER"],
        s3_env["MINIO_ROOT_PASSWORD"],
    )


def test_postgres_service_is_the_one_parsec_db_names(generated_env: Path) -> None:
    db_env = read_env_file(generated_env / "db.env")
    m = re.fullmatch(r"postgresql://([^:]+):([^@]+)@([\w-]+):(\d+)/(\w+)", db_env["PARSEC_DB"])
    assert m, db_env["PARSEC_DB"]
    user, password, host, port, database = m.groups()
    assert host == "postgres" and host in SERVICES and port == "5432"
    assert (user, password, database) == (
        db_env["POSTGRES_USER"],
        db_env["POSTGRES_PASSWORD"],
        db_env["POSTGRES_DB"],
    )


@pytest.mark.parametrize("service", ["parsec-server", "migrate"])
def test_every_secret_the_server_requires_is_provided(service: str) -> None:
    provided: set[str] = set(IMAGE_ENV) | set(SERVICES[service].get("environment") or {})
    for ref in SERVICES[service]["env_file"]:
        provided |= set(read_env_file(ENV_TEMPLATES / f"{Path(ref).name}.template"))
    assert {
        "PARSEC_DB",
        "PARSEC_BLOCKSTORE",
        "PARSEC_ADMINISTRATION_TOKEN",
        "PARSEC_SERVER_ADDR",
    } <= provided


def test_administration_token_stays_out_of_command_lines() -> None:
    """The token reaches the server through its env file (or a file, PARSEC_ADMINISTRATION_TOKEN_FILE),
    never through `command:`, where every local user could read it in the process list (and `run`
    would log administration_token_on_command_line)."""
    for name in _parsec_services():
        svc = SERVICES[name]
        command = " ".join(svc.get("command") or [])
        assert "--administration-token" not in command or "--administration-token-file" in command
        env = svc.get("environment") or {}
        assert "PARSEC_ADMINISTRATION_TOKEN" not in env, "a literal token in the compose file"
    template = read_env_file(ENV_TEMPLATES / "admin-token.env.template")
    assert set(template) <= {"PARSEC_ADMINISTRATION_TOKEN", "PARSEC_ADMINISTRATION_TOKEN_FILE"}
