"""Client side of the adoption round trip, run with the official client library (`.venv-compat`
python, parsec-cloud 3.9.3), never collected by pytest (no `test_` prefix):

    python adoption_driver.py fill  SERVER_URL ADMIN_TOKEN STATE.json   # on the official server
    python adoption_driver.py status SERVER_URL ADMIN_TOKEN STATE.json  # official, restarted
    python adoption_driver.py check SERVER_URL ADMIN_TOKEN STATE.json   # on ours, after adoption

`status` records again how the server answers each device: the official server caches an
organization's state per process, so an organization expired by the administration API still
answers its devices until the server restarts; a restarted official server (and ours) refuses
them (460), which is what the check then expects.

The data and the checks are those of the hand-back's driver (handback_driver.py: every profile,
revoked and frozen users, a second device, profile update, shares/unshare, key rotations, renames,
an archived realm, shamir, pending user and device invitations, an expired organization, what
every device saw), with 350 vlobs of 3 versions (1,050+ versions) so that the adoption moves a
realistic realm, plus the TOS of the organization and a user's acceptance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import handback_driver as base

base.VLOBS = 350


def main() -> int:
    action, url, token, state_path = sys.argv[1:5]
    path = Path(state_path)
    with httpx.Client(base_url=url.rstrip("/"), timeout=60.0) as http:
        admin = base.AdminClient(http, token)
        if action == "fill":
            state: dict[str, Any] = base.fill(http, admin)
            path.write_text(json.dumps(state))
            return 0
        state = json.loads(path.read_text())
        if action == "status":
            devices = state["devices"]
            state["status"] = {
                k: base.status_of(base.AuthenticatedClient(http, base.load_device(v)))
                for k, v in devices.items()
            }
            other = base.AuthenticatedClient(http, base.load_device(state["other_device"]))
            state["other_status"] = base.status_of(other)
            path.write_text(json.dumps(state))
            return 0
        problems = base.check(http, admin, state)
        for problem in problems:
            print(problem)
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
