"""A throw-away PostgreSQL server on loopback (Debian's ``postgresql`` binaries), for tests and benchmarks.

``initdb`` a cluster in a temp folder, ``pg_ctl start`` it on a free loopback port, create a
database, yield its SQLAlchemy URL; stop the server and delete the cluster afterwards.
PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user (the
Debian package creates it), or to ``nobody`` where there is no such user.

Binaries unpacked elsewhere (``experiments/pg_bundle.sh``'s, on the GPU machine) are found through
``TUNER_PG_BIN`` (their folder) and ``TUNER_PG_LIB`` (the shared libraries they need).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def pg_bin() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``/``createdb``, None when PostgreSQL is not installed."""
    if os.environ.get("TUNER_PG_BIN"):
        return Path(os.environ["TUNER_PG_BIN"])
    # Debian keeps the server binaries out of PATH, one folder per major version.
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                      key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found and (Path(found).parent / "createdb").exists() else None


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres_server(bin_dir: Path) -> Iterator[str]:
    """Run a PostgreSQL server for the duration of the block.

    Args:
        bin_dir: Where its binaries are (:func:`pg_bin`).

    Yields:
        ``postgresql://tuner@127.0.0.1:<port>/tuner``.
    """
    as_root = os.geteuid() == 0
    owner = "postgres" if _user_exists("postgres") else "nobody"
    env = dict(os.environ)
    if os.environ.get("TUNER_PG_LIB"):
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [os.environ["TUNER_PG_LIB"],
                                                               os.environ.get("LD_LIBRARY_PATH")]))
    base = Path(tempfile.mkdtemp(prefix="tuner-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if as_root:
        shutil.chown(base, owner)
        shutil.chown(sock, owner)
        os.chmod(base, 0o755)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(bin_dir / args[0]), *args[1:]]
        if as_root:
            cmd = ["runuser", "-u", owner, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=base, env=env)
        if done.returncode != 0:
            log = (base / "server.log").read_text() if (base / "server.log").exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()} {log[-2000:]}")
        return done

    port = _free_port()
    try:
        run("initdb", "-D", str(data), "-U", "tuner", "--auth=trust", "-E", "UTF8")
        # fsync off: a throw-away cluster; durability is not what the tests measure.
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c max_connections=200 -c fsync=off"
        run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(base / "server.log"), "-w", "-t", "60", "start")
        try:
            run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "tuner", "tuner")
            yield f"postgresql://tuner@127.0.0.1:{port}/tuner"
        finally:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)
