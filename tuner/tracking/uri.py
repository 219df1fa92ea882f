"""Checking an MLflow tracking URI up front, so that a bad one stops the tool before any trial runs."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tuner.core.errors import UserError
from tuner.core.places import DB_DEFAULT_PORTS, PROBE_TIMEOUT_S, check_sqlite_file, check_tcp, sqlite_file

_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_KNOWN_SCHEMES = (*_SQL_SCHEMES, "http", "https", "databricks", "databricks-uc")
_URI_FIX = ("pass --mlflow-uri sqlite:///<dir>/mlflow.db or the http(s)://host:port of an MLflow server, "
            "or --no-mlflow to run without tracking")


def check_tracking_uri(uri: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Check that MLflow can use ``uri``, so that a bad one stops the tool before any trial runs.

    sqlite: the database's directory is created if missing and must be writable (no network,
    milliseconds). http(s): the server must answer ``<uri>/health`` within ``timeout_s``.
    postgresql/mysql/mssql: the host must accept a TCP connection within ``timeout_s``.

    Args:
        uri: MLflow tracking URI.
        timeout_s: How long to wait for a server to answer.

    Raises:
        UserError: The URI cannot be used; the message names the problem and the fix.
    """
    parsed = urllib.parse.urlparse(uri)
    # SQLAlchemy URIs name their driver after a "+": postgresql+psycopg2://...
    scheme = parsed.scheme.split("+", 1)[0].lower()
    if not uri.strip():
        raise UserError("the MLflow tracking URI is empty", _URI_FIX)
    if scheme in ("", "file") or (len(scheme) == 1 and uri[1:2] == ":"):  # "" / file: / C:\...
        raise UserError(
            f"tracking URI {uri!r} is a file store, which MLflow {_mlflow_version()} refuses",
            f"use a database store instead, e.g. --mlflow-uri sqlite:///{_suggest_db(uri)}",
        )
    if scheme not in _KNOWN_SCHEMES:
        raise UserError(f"tracking URI {uri!r} has an unknown scheme {parsed.scheme!r}", _URI_FIX)
    if scheme == "sqlite":
        check_sqlite_uri(uri)
    elif scheme in ("http", "https"):
        _check_http(uri, timeout_s)
    elif scheme in DB_DEFAULT_PORTS:
        _check_tcp(parsed, DB_DEFAULT_PORTS[scheme], timeout_s)


def _mlflow_version() -> str:
    try:
        from importlib.metadata import version

        return version("mlflow")
    except Exception:  # noqa: BLE001  (only used in a message)
        return "3"


def _suggest_db(uri: str) -> str:
    path = urllib.parse.urlparse(uri).path if uri.startswith("file:") else uri
    return str(Path(path or ".").resolve() / "mlflow.db")


def check_sqlite_uri(uri: str) -> None:
    """Check that the sqlite file can be written, or created with its folder (creating nothing).

    Raises:
        UserError: When it cannot be (or the URI names an in-memory database).
    """
    path = sqlite_file(uri)
    if path is None:
        raise UserError(
            f"tracking URI {uri!r} is an in-memory sqlite database, which keeps nothing",
            "pass a file, e.g. --mlflow-uri sqlite:///out/mlflow.db",
        )
    check_sqlite_file(path, "MLflow database", "pass a --mlflow-uri sqlite:///<path> in a writable folder")


def _check_http(uri: str, timeout_s: float) -> None:
    """Check that the server answers a GET of ``/health`` (any HTTP status counts as an answer)."""
    url = uri.rstrip("/") + "/health"
    request = urllib.request.Request(url, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):  # noqa: S310  (scheme checked)
            return
    except urllib.error.HTTPError:
        # 401/403/404: something answers (auth proxy, older server); MLflow will say more.
        return
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"MLflow tracking server {uri} does not answer ({reason})",
            "start it (mlflow server --backend-store-uri sqlite:///mlflow.db --workers 1 --port <port>) "
            "or pass --mlflow-uri sqlite:///<dir>/mlflow.db, or --no-mlflow to run without tracking",
        ) from exc


def _check_tcp(parsed: urllib.parse.ParseResult, default_port: int, timeout_s: float) -> None:
    """Check that the database host accepts a TCP connection (drivers and credentials are MLflow's)."""
    host = parsed.hostname or "localhost"
    try:
        port = parsed.port or default_port
    except ValueError as exc:
        raise UserError(f"tracking URI {parsed.scheme}://{parsed.netloc} has a bad port ({exc})", _URI_FIX) from None
    check_tcp(host, port, f"the database of tracking URI {parsed.scheme}://{host}",
              "start the database, pass --mlflow-uri sqlite:///<dir>/mlflow.db, or --no-mlflow to run without tracking",
              timeout_s)


__all__ = ["check_sqlite_uri", "check_tracking_uri"]
