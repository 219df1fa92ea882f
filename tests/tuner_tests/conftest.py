"""A real PostgreSQL server for the tests of many workers on one study.

The fixture runs Debian's ``postgresql`` binaries (``apt-get install postgresql``) through
:mod:`tests.pg_server`: a throw-away cluster on a free loopback port, stopped and deleted at the
end of the session. Skipped, with the reason, only where the binaries or the driver are absent.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg_server import pg_bin, postgres_server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a database on a PostgreSQL server started for this test session."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is missing: pip install -e '.[postgres]'")
    bin_dir = pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    with postgres_server(bin_dir) as url:
        yield url
