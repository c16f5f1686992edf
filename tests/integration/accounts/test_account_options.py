"""The account options of `run` (official names and PARSEC_* variables) become the server's
AccountConfig; a wrong value is a one-line usage error."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from parsec_server.cli.run import _account_config, run_cmd
from parsec_server.config import AccountConfig

_VARIABLES = (
    "PARSEC_ACCOUNT_CONFIG",
    "PARSEC_VALIDATION_EMAIL_RATE_LIMIT",
    "PARSEC_FAKE_ACCOUNT_PASSWORD_ALGORITHM_SEED",
)


def _parse(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """`run`'s parameters as click parses them from `args` and the environment `env`."""
    with pytest.MonkeyPatch.context() as mp:
        for name in _VARIABLES:
            mp.delenv(name, raising=False)
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        return dict(run_cmd.make_context("run", args).params)


def test_defaults() -> None:
    config = _account_config(_parse([]), "token")
    assert config.mode == "DISABLED"
    assert (config.validation_email_cooldown, config.validation_email_max_per_hour) == (60, 3)
    assert len(config.fake_password_algorithm_seed) == 32


def test_options_and_variables() -> None:
    opts = _parse(
        [
            "--account-config",
            "ENABLED_WITH_VAULT",
            "--validation-email-rate-limit",
            "10",
            "5",
            "--fake-account-password-algorithm-seed",
            "s3cr3t",
        ]
    )
    config = _account_config(opts, "token")
    assert config == AccountConfig(
        mode="ENABLED_WITH_VAULT",
        validation_email_cooldown=10,
        validation_email_max_per_hour=5,
        fake_password_algorithm_seed=config.fake_password_algorithm_seed,
    )
    # The seed does not depend on the administration token once given; negative limits are 0.
    assert _account_config(opts, "other").fake_password_algorithm_seed == (
        config.fake_password_algorithm_seed
    )
    env = {
        "PARSEC_ACCOUNT_CONFIG": "ENABLED_WITHOUT_VAULT",
        "PARSEC_VALIDATION_EMAIL_RATE_LIMIT": "-1 0",
        "PARSEC_FAKE_ACCOUNT_PASSWORD_ALGORITHM_SEED": "s3cr3t",
    }
    from_env = _account_config(_parse([], env), "token")
    assert from_env.mode == "ENABLED_WITHOUT_VAULT"
    assert (from_env.validation_email_cooldown, from_env.validation_email_max_per_hour) == (0, 0)
    assert from_env.fake_password_algorithm_seed == config.fake_password_algorithm_seed


def test_bad_value_is_a_usage_error() -> None:
    res = CliRunner().invoke(run_cmd, ["--account-config", "MAYBE"])
    assert res.exit_code == 2
    assert "Invalid value for '--account-config'" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(run_cmd, ["--validation-email-rate-limit", "ten", "3"])
    assert res.exit_code == 2
    assert "Traceback" not in res.output
