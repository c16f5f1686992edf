"""Migration 0003 (block.organization, block ids unique per organization) on a database where the
cross-realm hole was used: one block id registered in two realms of one organization. `migrate`
refuses with one line naming the count and the fix, changes nothing, and applies once the operator
kept the newest row of each id (docs/upgrade.md, "Block ids in two realms")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from upgrade_support import build_database, execute, history, migrate, ok, query, value

from parsec_server.exit_codes import Exit

# Every block of the fixtures, registered again (later) in another realm of its organization.
_DUPLICATE = """
INSERT INTO block (realm, block_id, author, key_index, size, created_on)
SELECT other.id, b.block_id, b.author, b.key_index, b.size, b.created_on + interval '1 second'
FROM block b JOIN realm r ON r.id = b.realm
JOIN LATERAL (
    SELECT o.id FROM realm o WHERE o.organization = r.organization AND o.id <> r.id
    ORDER BY o.id LIMIT 1
) other ON TRUE
"""

# The fix of docs/upgrade.md: keep the newest row of each id.
_KEEP_NEWEST = """
DELETE FROM block b USING realm r, block b2, realm r2
WHERE r.id = b.realm AND r2.id = b2.realm AND r2.organization = r.organization
    AND b2.block_id = b.block_id AND (b2.created_on, b2.id) > (b.created_on, b.id)
"""


def test_block_id_in_two_realms_refuses_then_applies(
    new_db: Callable[[], str], releases_dir: Path
) -> None:
    url = new_db()
    build_database(url, 2, releases_dir)
    blocks = value(url, "SELECT count(*) FROM block")
    assert blocks > 0
    execute(url, _DUPLICATE)
    dup_rows = value(url, "SELECT count(*) FROM block") - blocks
    assert dup_rows > 0
    before = history(url)

    refused = migrate(url, "--no-backup")
    assert refused.returncode == Exit.MIGRATION_FAILED, refused.stderr
    assert f"{dup_rows} block id(s) are registered in more than one realm" in refused.stderr
    assert "docs/upgrade.md" in refused.stderr and "Traceback" not in refused.stderr
    assert history(url) == before
    assert not query(
        url,
        "SELECT 1 FROM information_schema.columns "
        "WHERE table_name = 'block' AND column_name = 'organization'",
    )

    execute(url, _KEEP_NEWEST)
    assert value(url, "SELECT count(*) FROM block") == blocks
    ok(migrate(url, "--no-backup"))
    assert "0003_block_organization" in history(url)
    assert not query(
        url,
        "SELECT 1 FROM block b JOIN realm r ON r.id = b.realm WHERE b.organization <> r.organization",
    )
