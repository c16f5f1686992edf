"""Fixtures of the compatibility suite: the server under test comes from the environment
(set by scripts/compat.sh), every test gets its own organization.

Outside the compat venv (no `parsec._parsec`, e.g. `pytest tests` in the dev venv) the suite's
files are not collected at all.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

HAVE_PARSEC = importlib.util.find_spec("parsec") is not None and (
    importlib.util.find_spec("parsec._parsec") is not None
)

if not HAVE_PARSEC:
    collect_ignore_glob = ["*.py"]

    def pytest_report_header(config: pytest.Config) -> str:
        return "tests/compat not collected: needs parsec-cloud 3.9.3; run scripts/compat.sh"

else:
    import httpx
    import parsec._parsec as p
    from client import AdminClient, AuthenticatedClient, Org, bootstrap_org
    from mail_support import Mailbox

    @pytest.fixture(scope="session")
    def server_url() -> str:
        url = os.environ.get("PARSEC_COMPAT_URL")
        if not url:
            pytest.exit("PARSEC_COMPAT_URL is not set; run: scripts/compat.sh reference|ours", 2)
        return url.rstrip("/")

    @pytest.fixture(scope="session")
    def target() -> str:
        """`reference` (official server) or `ours`: for the rare test that must tell them apart."""
        return os.environ.get("PARSEC_COMPAT_TARGET", "reference")

    @pytest.fixture(scope="session")
    def http(server_url: str) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=server_url, timeout=15.0) as client:
            yield client

    @pytest.fixture(scope="session")
    def admin(http: httpx.Client) -> AdminClient:
        token = os.environ.get("PARSEC_COMPAT_ADMIN_TOKEN")
        if not token:
            pytest.exit(
                "PARSEC_COMPAT_ADMIN_TOKEN is not set; run: scripts/compat.sh reference|ours", 2
            )
        return AdminClient(http, token)

    @pytest.fixture
    def org(http: httpx.Client, admin: AdminClient) -> Org:
        """A fresh bootstrapped organization whose first user, alice, is ADMIN."""
        return bootstrap_org(http, admin)

    @pytest.fixture(scope="session")
    def mailbox() -> Mailbox:
        """E-mails the server under test sent, as the loopback SMTP server of scripts/compat.sh
        received them (both servers send there); skips the test when the run has no SMTP server."""
        maildir = os.environ.get("PARSEC_COMPAT_MAILDIR")
        if not maildir:
            pytest.skip("no loopback SMTP server in this run (scripts/compat.sh sets one up)")
        return Mailbox(Path(maildir))

    @pytest.fixture
    def alice(org: Org) -> AuthenticatedClient:
        return org.alice

    @pytest.fixture
    def bob(alice: AuthenticatedClient) -> AuthenticatedClient:
        """A STANDARD user created by alice."""
        return alice.create_user("bob", p.UserProfile.STANDARD)

    @pytest.fixture
    def mallory(alice: AuthenticatedClient) -> AuthenticatedClient:
        """An OUTSIDER user created by alice."""
        return alice.create_user("mallory", p.UserProfile.OUTSIDER)
