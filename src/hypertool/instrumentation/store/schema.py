"""Schema of the embedded trace store, its forward migrations, and safe connection handling.

The schema version lives in ``PRAGMA user_version``. :data:`MIGRATIONS` is applied in order,
from the file's version to :data:`SCHEMA_VERSION`, in one transaction: a crash half-way leaves
the previous version intact. Migrations are append-only; never edit a released one.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

APPLICATION_ID = 0x48545452
"""``PRAGMA application_id`` of a hypertool trace store ("HTTR")."""

_COMPLETION_START = "langfuse.observation.completion_start_time"  # semconv.COMPLETION_START_TIME
# Its value, a JSON-quoted ISO time inside the metadata JSON, as SQLite's time functions read it
# (CASE, since only it promises not to parse metadata that is not JSON).
_FIRST_TOKEN = (
    "CASE WHEN json_valid(metadata) THEN "
    f"""trim(json_extract(metadata, '$."{_COMPLETION_START}"'), '"') END"""
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the initial schema. Large text columns come last, so scans that aggregate numbers
    # never read their overflow pages.
    (
        """
        CREATE TABLE observations (
            span_id TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            parent_id TEXT,
            type TEXT NOT NULL,
            name TEXT NOT NULL,
            persona TEXT,
            chatmode TEXT,
            workflow TEXT,
            stage TEXT,
            model TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            total_tokens INTEGER,
            usage_estimated INTEGER,
            cost_usd REAL,
            start_ns INTEGER NOT NULL,
            end_ns INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('success', 'error')),
            error TEXT,
            input TEXT,
            output TEXT,
            metadata TEXT
        )
        """,
        "CREATE INDEX observations_trace ON observations (trace_id, start_ns)",
        # Reports read this index alone, never the wide table rows (10x less to scan).
        """
        CREATE INDEX observations_report ON observations (
            type, start_ns, persona, model, chatmode, workflow, trace_id, end_ns,
            input_tokens, output_tokens, total_tokens, cost_usd, status
        )
        """,
        """
        CREATE TABLE traces (
            trace_id TEXT PRIMARY KEY,
            name TEXT,
            persona TEXT,
            chatmode TEXT,
            workflow TEXT,
            start_ns INTEGER NOT NULL,
            end_ns INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('success', 'error')),
            error TEXT,
            root_seen INTEGER NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX traces_start ON traces (start_ns)",
    ),
    # 2: budgets (usage of one persona since a date) and `hypertool traces --persona`.
    (
        "CREATE INDEX observations_persona "
        "ON observations (persona, type, start_ns, total_tokens, cost_usd)",
    ),
    # 3: the web UI. When a stream's first token came, in a column of its own (it was only in
    # the metadata JSON, behind the prompt's overflow pages), filled for the rows stored before,
    # and a small index of streamed generations alone; the traces a persona worked in, read
    # from an index instead of the wide rows.
    (
        "ALTER TABLE observations ADD COLUMN completion_start_ns INTEGER",
        # Whole seconds and milliseconds apart: julianday()'s double loses microseconds.
        f"""
        UPDATE observations SET completion_start_ns = (
            CAST(strftime('%s', {_FIRST_TOKEN}) AS INTEGER) * 1000
            + CAST(round(strftime('%f', {_FIRST_TOKEN}) * 1000) AS INTEGER) % 1000
        ) * 1000000
        WHERE type = 'generation' AND metadata LIKE '%"{_COMPLETION_START}"%'
            AND ({_FIRST_TOKEN}) IS NOT NULL
        """,
        """
        CREATE INDEX observations_streamed
        ON observations (type, start_ns, persona, model, completion_start_ns)
        WHERE completion_start_ns IS NOT NULL
        """,
        "CREATE INDEX observations_persona_trace ON observations (persona, trace_id)",
    ),
    # 4: Langfuse's tracing environment and release of each trace (`--environment`,
    # `--release`). Kept per trace: every span of a trace comes from one integration, and
    # reports filter generations through the small traces table, not the wide rows.
    (
        "ALTER TABLE traces ADD COLUMN environment TEXT",
        "ALTER TABLE traces ADD COLUMN release TEXT",
        "CREATE INDEX traces_environment ON traces (environment, release, trace_id)",
    ),
    # 5: budgets shared by processes: what each writer stored per persona and UTC day,
    # updated in the same transaction as the rows, so a process reading the store can tell
    # its own usage from the others' in one snapshot.
    (
        """
        CREATE TABLE writer_usage (
            writer TEXT NOT NULL,
            persona TEXT NOT NULL,
            day_ns INTEGER NOT NULL,
            tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            calls INTEGER NOT NULL,
            PRIMARY KEY (writer, persona, day_ns)
        ) WITHOUT ROWID
        """,
    ),
    # 6: quality and prompts: the managed prompt each generation was made from, scores, and
    # the versions of local prompts (numbered 1, 2, 3… per name as their text changes).
    (
        "ALTER TABLE observations ADD COLUMN prompt_name TEXT",
        "ALTER TABLE observations ADD COLUMN prompt_version INTEGER",
        # `hypertool prompts` reads this index alone (generations made from a prompt only).
        """
        CREATE INDEX observations_prompt ON observations (
            prompt_name, prompt_version, persona, start_ns, end_ns, span_id, parent_id,
            trace_id, total_tokens, cost_usd, status
        ) WHERE type = 'generation' AND prompt_name IS NOT NULL
        """,
        """
        CREATE TABLE scores (
            score_id TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            observation_id TEXT,
            name TEXT NOT NULL,
            data_type TEXT NOT NULL
                CHECK (data_type IN ('NUMERIC', 'BOOLEAN', 'CATEGORICAL', 'TEXT')),
            value REAL,
            string_value TEXT,
            persona TEXT,
            chatmode TEXT,
            workflow TEXT,
            stage TEXT,
            created_ns INTEGER NOT NULL,
            comment TEXT,
            metadata TEXT
        )
        """,
        "CREATE INDEX scores_observation ON scores (observation_id)",
        "CREATE INDEX scores_trace ON scores (trace_id)",
        "CREATE INDEX scores_created ON scores (created_ns, name, persona)",
        """
        CREATE TABLE prompt_versions (
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            type TEXT NOT NULL CHECK (type IN ('text', 'chat')),
            prompt TEXT NOT NULL,
            config TEXT,
            digest TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            PRIMARY KEY (name, version)
        )
        """,
    ),
    # 7: score means by model read each scored observation's model from this index alone,
    # not from the wide rows (`hypertool report --by model`, the UI's Generations page).
    ("CREATE INDEX observations_span_model ON observations (span_id, model)",),
)

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this code writes."""

# Attempts after the busy handler (PRAGMA busy_timeout) gave up: WAL returns SQLITE_BUSY
# without waiting in a few cases (a snapshot gone stale, recovery after a crash).
_RETRY_DELAYS_S = (0.05, 0.2, 0.5)
_MMAP_BYTES = 256 * 1024 * 1024


class StoreError(RuntimeError):
    """The trace store cannot be used; the message names the file and what to do."""


class StoreLockedError(StoreError):
    """Another connection held the store's lock for longer than the busy timeout."""


def is_busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / "busy" errors, which are worth retrying."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def store_error(path: Path, exc: BaseException) -> StoreError:
    """A :class:`StoreError` naming ``path`` that explains ``exc``."""
    if isinstance(exc, StoreError):
        return exc
    if is_busy(exc):
        return StoreLockedError(
            f"{path}: the trace store is locked by another connection and stayed locked; "
            "the batch was not written"
        )
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return StoreError(
            f"{path}: not a readable hypertool trace store ({exc}); the file may be corrupt: "
            "move it aside and a new store is created on next use"
        )
    if isinstance(exc, OSError):
        return StoreError(f"{path}: cannot use the trace store: {exc.strerror or exc}")
    return StoreError(f"{path}: trace store error: {exc}")


def with_retry(path: Path, operation: Callable[[], T], busy_timeout_s: float) -> T:
    """Run ``operation``, retrying a few times while the database is busy.

    SQLite's busy handler already waited up to ``busy_timeout_s`` inside a failed attempt;
    when it did, the lock is held for long and the attempt is not repeated (a write on a
    database locked for good fails in about ``busy_timeout_s``). Quick "busy" answers, which
    WAL gives without waiting (a stale snapshot, recovery), are retried with backoff.

    Raises:
        StoreError: the database stayed locked, or any other SQLite error (naming ``path``).

    """
    for delay in (*_RETRY_DELAYS_S, None):
        started = time.monotonic()
        try:
            return operation()
        except sqlite3.Error as exc:
            waited = time.monotonic() - started
            if delay is None or not is_busy(exc) or waited >= busy_timeout_s * 0.8:
                raise store_error(path, exc) from exc
        time.sleep(delay * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


def in_transaction(connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work`` in a write transaction taken up front (no lock upgrade, no deadlock)."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise
    return result


def _create_file(path: Path) -> None:
    """Create an empty store file readable by its owner only (prompts are private)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # another process created it first
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _check_ours(connection: sqlite3.Connection, path: Path) -> int:
    """The file's schema version, after making sure it is a trace store (or empty).

    Only reads: a database that is not ours is refused before anything changes it (its
    journal mode included).

    Raises:
        StoreError: Another application's SQLite database, or a newer schema.
        sqlite3.Error: The file is not a readable SQLite database.

    """
    # One statement, so one snapshot: another process may be creating the store meanwhile.
    application, version, tables = connection.execute(
        "SELECT (SELECT application_id FROM pragma_application_id()), "
        "(SELECT user_version FROM pragma_user_version()), "
        "(SELECT count(*) FROM sqlite_schema)"
    ).fetchone()
    if application != APPLICATION_ID and (application != 0 or version != 0 or tables):
        raise StoreError(f"{path}: an SQLite database, but not a hypertool trace store")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {version} is newer than this hypertool understands "
            f"({SCHEMA_VERSION}); upgrade hypertool-instrumentation"
        )
    return int(version)


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    if _check_ours(connection, path) == SCHEMA_VERSION:
        return

    def apply(conn: sqlite3.Connection) -> None:
        current = _check_ours(conn, path)  # another process may have migrated meanwhile
        if current == 0:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    in_transaction(connection, apply)


def connect(path: Path, *, create: bool, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open the store at ``path`` to write (WAL, ``synchronous=NORMAL``), migrating it forward.

    Another application's database is recognised before anything is changed in it.

    Raises:
        StoreError: the file is missing (and ``create`` is False), corrupt, not a trace store,
            from a newer version, or locked beyond the retries.

    """
    try:
        if not path.exists():
            if not create:
                raise StoreError(f"{path}: no trace store here yet")
            _create_file(path)
        connection = sqlite3.connect(
            path,
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except (OSError, sqlite3.Error) as exc:
        raise store_error(path, exc) from exc
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        patience = busy_timeout_ms / 1000
        with_retry(path, lambda: _check_ours(connection, path), patience)
        with_retry(
            path, lambda: connection.execute("PRAGMA journal_mode = WAL").fetchone(), patience
        )
        connection.execute("PRAGMA synchronous = NORMAL")
        # Reads of a large store scan indexes; mapping the file spares copying every page.
        connection.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
        with_retry(path, lambda: _migrate(connection, path), patience)
    except BaseException as exc:
        connection.close()
        if isinstance(exc, sqlite3.Error):
            raise store_error(path, exc) from exc
        raise
    return connection


def connect_read_only(path: Path, *, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open the store at ``path`` for reading only (SQLite ``mode=ro``, ``query_only``).

    A store written by an older version is first migrated forward by a short read-write
    connection, as its next writer would; the connection returned never writes.

    Raises:
        StoreError: the file is missing, corrupt, not a trace store, from a newer version,
            or from an older one that cannot be migrated here.

    """
    if not path.exists():
        raise StoreError(f"{path}: no trace store here yet")

    def open_ro() -> sqlite3.Connection:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        return sqlite3.connect(
            uri,
            uri=True,
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
        )

    try:
        connection = open_ro()
    except (OSError, sqlite3.Error) as exc:
        raise store_error(path, exc) from exc
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        connection.execute("PRAGMA query_only = ON")
        connection.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
        application, version = (
            int(connection.execute(f"PRAGMA {pragma}").fetchone()[0])
            for pragma in ("application_id", "user_version")
        )
        if application != APPLICATION_ID or version == 0:
            raise StoreError(f"{path}: not a hypertool trace store")
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: schema version {version} is newer than this hypertool understands "
                f"({SCHEMA_VERSION}); upgrade hypertool-instrumentation"
            )
    except BaseException as exc:
        connection.close()
        if isinstance(exc, sqlite3.Error):
            raise store_error(path, exc) from exc
        raise
    if version == SCHEMA_VERSION:
        return connection
    connection.close()
    try:
        connect(path, create=False, busy_timeout_ms=busy_timeout_ms).close()
    except StoreError as exc:
        raise StoreError(
            f"{path}: written by an older hypertool (schema {version}, this one reads "
            f"{SCHEMA_VERSION}) and it could not be migrated: {exc}"
        ) from exc
    return connect_read_only(path, busy_timeout_ms=busy_timeout_ms)
