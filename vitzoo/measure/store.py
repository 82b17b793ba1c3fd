"""The results store: every bench, flops and eval result, appended to one embedded SQLite database.

One table, one row per result; the metrics and the environment fingerprint are JSON columns, so new metrics
need no migration. The file is recognised by ``PRAGMA application_id`` (``VTZ1``) and versioned by
``PRAGMA user_version``; a file that is not SQLite, is corrupt, or belongs to another program raises
``VitzooError`` and is left untouched (an existing store is checked with ``PRAGMA quick_check`` when opened).
WAL journaling and a busy timeout let several processes append at once without losing a row.

Every command opens its database through ``ResultStore``: ``readonly=True`` (``vitzoo results``) never creates
a file or folder and says "no results database at PATH" when there is none; ``validate_output_db`` checks,
creating nothing, that a long run will be able to store its result, so that it fails before the work and not
after. Metrics are JSON, so new metrics (e.g. bench's contention fields) need no schema change: older rows just
lack them.

Typed access is ``save``/``load`` (``vitzoo.measure.records.Record``: what the library's functions return and
every command writes); ``add``/``records``/``query`` are the raw rows underneath, as earlier releases had them.

>>> store = ResultStore("/tmp/results.sqlite")
>>> store.save(record(result))  # a BenchResult, FlopCount, GemmPeak, EvalMetrics, ... -> its row id
1
>>> store.load(kind="bench", model="vit-*")  # [Record(kind='bench', model='vit-b16', metrics=BenchResult(...))]
>>> store.query(kind="bench", model="vit-*")  # a pandas DataFrame: id, created, kind, model, metrics, env_*
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitzoo import settings
from vitzoo.errors import ConfigError, VitzooError
from vitzoo.files import cache_dir, nearest_existing, probe_folder
from vitzoo.measure.env import environment
from vitzoo.measure.records import Record, load_records, record

if TYPE_CHECKING:
    import pandas

__all__ = ["KINDS", "SCHEMA_VERSION", "Record", "ResultStore", "default_db_path", "environment", "record",
           "validate_output_db"]  # fmt: skip

KINDS = ("bench", "flops", "eval", "fewshot")  # the kind column (a GEMM peak is a "gemm-peak" bench row)
SCHEMA_VERSION = 1
APPLICATION_ID = int.from_bytes(b"VTZ1", "big")  # marks the file as a vitzoo store
BUSY_TIMEOUT_S = 60.0  # how long a writer waits for another one to finish
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,   -- UTC, ISO 8601
    kind TEXT NOT NULL,      -- bench | flops | eval | fewshot
    model TEXT NOT NULL,     -- arch, arch.tag or a file name
    metrics TEXT NOT NULL,   -- JSON object
    env TEXT NOT NULL        -- JSON object: vitzoo.measure.env.environment()
);
CREATE INDEX IF NOT EXISTS results_kind_model ON results (kind, model);
"""


def default_db_path() -> Path:
    """``$VITZOO_DB`` if set, else ``results.sqlite`` in vitzoo's folder (``vitzoo.files.cache_dir``)."""
    return settings.path("VITZOO_DB") or cache_dir() / "results.sqlite"


def _json_safe(value: Any) -> Any:
    """Plain JSON data: non-finite floats become None, numpy/torch scalars their Python value."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "item"):  # numpy / torch scalar
        return _json_safe(value.item())
    return str(value)


class ResultStore:
    """An append-only store of results in one SQLite file (created on first use, with its parent folder).

    ``readonly=True`` opens an existing store for reading only: a missing file raises ``VitzooError`` ("no
    results database at PATH") and nothing is ever created, not even SQLite's ``-wal``/``-shm`` side files.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, readonly: bool = False) -> None:
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self.readonly = readonly
        self._empty = False  # a zero-byte (or table-less, header-less) file opened read-only: no results
        self._check_file()
        if readonly:
            self._check_readable()
        else:
            folder = nearest_existing(self.path.parent)
            if not folder.is_dir():
                raise VitzooError(f"cannot create results database {self.path}: {folder} is not a directory")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise VitzooError(f"cannot create results database {self.path}: {e.strerror or e}") from None
            self._init_schema()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r}{', readonly=True' if self.readonly else ''})"

    # -- file checks and schema ------------------------------------------------------------------------

    def _check_file(self) -> None:
        """Refuse, before SQLite writes anything, a file that is not an SQLite database."""
        if self.path.is_dir():
            raise VitzooError(f"results database {self.path} is a directory, not a file")
        if self.readonly and not self.path.exists():
            raise VitzooError(f"no results database at {self.path} (`vitzoo bench`, `flops` and `eval` create one)")
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        try:
            with open(self.path, "rb") as f:
                head = f.read(len(_SQLITE_MAGIC))
        except OSError as e:
            raise VitzooError(f"cannot read results database {self.path}: {e.strerror}") from None
        if head != _SQLITE_MAGIC:
            raise VitzooError(
                f"{self.path} is not a vitzoo results database (not an SQLite file); "
                "choose another with --db or VITZOO_DB, it was left untouched"
            )

    def _check_readable(self) -> None:
        """Read-only open: our header (or an empty database), a schema this version reads, no corruption."""
        if self.path.stat().st_size == 0:
            self._empty = True
            return
        with self._connect() as conn:
            app_id, version = self._header(conn)
            self._check_header(conn, app_id, version)
            if app_id != APPLICATION_ID:  # an empty SQLite database: no results yet
                self._empty = True
                return
            self._quick_check(conn)

    def _quick_check(self, conn: sqlite3.Connection) -> None:
        """``PRAGMA quick_check`` (linear in the file size, milliseconds for a results store): refuse a damaged file
        before appending to it or reading it."""
        problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise VitzooError(
                f"results database {self.path} is corrupt ({problems[0]}); it was left untouched, "
                "choose another with --db or VITZOO_DB"
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            if self.readonly:  # no -wal/-shm files unless a writer has them open already (then they exist)
                active = Path(f"{self.path}-wal").exists()
                uri = f"{self.path.absolute().as_uri()}?mode=ro{'' if active else '&immutable=1'}"
                conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            else:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as e:
            raise VitzooError(f"cannot open results database {self.path}: {e}") from None
        try:
            yield conn
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                raise VitzooError(f"results database {self.path} stayed locked for {BUSY_TIMEOUT_S:.0f} s") from None
            raise VitzooError(_sqlite_problem(self.path, e)) from None
        finally:
            conn.close()

    def _init_schema(self) -> None:
        with self._connect() as conn:
            app_id, version = self._header(conn)
            if app_id == APPLICATION_ID and version == SCHEMA_VERSION:
                self._quick_check(conn)
                self._ensure_wal(conn)
                return
            if app_id not in (0, APPLICATION_ID):
                self._check_header(conn, app_id, version)
            conn.execute("BEGIN IMMEDIATE")  # one process creates the schema; the others wait, then re-check
            try:
                app_id, version = self._header(conn)
                self._check_header(conn, app_id, version)
                if app_id != APPLICATION_ID:
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            self._ensure_wal(conn)

    @staticmethod
    def _header(conn: sqlite3.Connection) -> tuple[int, int]:
        return conn.execute("PRAGMA application_id").fetchone()[0], conn.execute("PRAGMA user_version").fetchone()[0]

    def _check_header(self, conn: sqlite3.Connection, app_id: int, version: int) -> None:
        """Accept our own file (this version) or an empty database; refuse anything else."""
        if app_id == APPLICATION_ID:
            if version > SCHEMA_VERSION:
                raise VitzooError(
                    f"{self.path} was written by a newer vitzoo (store schema v{version}, this one reads "
                    f"v{SCHEMA_VERSION}); upgrade vitzoo or choose another --db"
                )
            return
        n_objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id != 0 or n_objects:
            raise VitzooError(
                f"{self.path} is an SQLite database of another program, not a vitzoo results store; "
                "choose another with --db or VITZOO_DB, it was left untouched"
            )

    @staticmethod
    def _ensure_wal(conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        for attempt in range(50):  # switching needs a moment alone with the file; retry if someone is writing
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError:
                time.sleep(0.05 * (attempt + 1))

    # -- public API ------------------------------------------------------------------------------------

    def add(self, kind: str, model: str, metrics: dict[str, Any], env: dict[str, Any] | None = None) -> int:
        """Append one result and return its row id. ``env`` defaults to ``environment()`` of this machine's CPU."""
        if kind not in KINDS:
            raise ConfigError(f"result kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if not isinstance(model, str) or not model:
            raise ConfigError(f"model must be a non-empty string, not {model!r}")
        if not isinstance(metrics, dict):
            raise ConfigError(f"metrics must be a dict, not {type(metrics).__name__}")
        if self.readonly:
            raise VitzooError(f"results database {self.path} was opened read-only")
        env = environment() if env is None else env
        created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        row = (created, kind, model, json.dumps(_json_safe(metrics)), json.dumps(_json_safe(env)))
        with self._connect() as conn:
            cur = conn.execute("INSERT INTO results (created, kind, model, metrics, env) VALUES (?, ?, ?, ?, ?)", row)
            return int(cur.lastrowid)

    def save(self, rec: Record) -> int:
        """Append a typed record (``vitzoo.measure.records.record(result)``) and return its row id; an empty
        ``env`` becomes this machine's (``environment()``)."""
        kind, model, metrics, env = rec.stored()
        return self.add(kind, model, metrics, env or None)

    def load(self, kind: str | None = None, model: str | None = None) -> list[Record]:
        """Matching results as typed records, oldest first (``kind="peak"``: the GEMM peaks; ``model`` a shell
        pattern as in ``records``). Rows of every release read: what a row lacks is None, what it has beyond
        its typed metrics is in ``Record.extra``."""
        return load_records(self.records, kind, model)

    def records(self, kind: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        """Matching results as dicts (id, created, kind, model, metrics, env), oldest first.

        ``model`` is a shell pattern (``vit-b*``, ``vit-b16``, ``*.augreg-*``), matched case-sensitively.
        """
        if kind is not None and kind not in KINDS:
            raise ConfigError(f"result kind must be one of {', '.join(KINDS)}, not {kind!r}")
        sql, args = "SELECT id, created, kind, model, metrics, env FROM results", []
        where = []
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if where:
            sql += " WHERE " + " AND ".join(where)
        if self._empty:
            return []
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY id", args).fetchall()
        out = []
        for id_, created, kind_, model_, metrics, env in rows:
            if model is not None and not fnmatch.fnmatchcase(model_, model):
                continue
            out.append(
                {"id": id_, "created": created, "kind": kind_, "model": model_, "metrics": json.loads(metrics),
                 "env": json.loads(env)}
            )  # fmt: skip
        return out

    def query(self, kind: str | None = None, model: str | None = None) -> pandas.DataFrame:
        """Matching results as a DataFrame: id, created, kind, model, the metrics, then ``env_*`` columns."""
        import pandas as pd

        flat = []
        for r in self.records(kind, model):
            row = {k: r[k] for k in ("id", "created", "kind", "model")}
            row.update({k: v for k, v in r["metrics"].items() if k not in row})
            row.update({f"env_{k}": v for k, v in r["env"].items()})
            flat.append(row)
        if not flat:
            return pd.DataFrame(columns=["id", "created", "kind", "model"])
        metric_cols: dict[str, None] = {}
        env_cols: dict[str, None] = {}
        for row in flat:
            for k in row:
                (env_cols if k.startswith("env_") else metric_cols)[k] = None
        return pd.DataFrame(flat, columns=[*metric_cols, *env_cols])

    def __len__(self) -> int:
        if self._empty:
            return 0
        with self._connect() as conn:
            return conn.execute("SELECT count(*) FROM results").fetchone()[0]


# SQLite's own name of an error -> what it says about the file (the rest are damage: "corrupt or unreadable")
_NOT_DAMAGE = {
    "SQLITE_FULL": "the disk is full; free some space and retry (the database was left as it was)",
    "SQLITE_READONLY": "it is read-only here; choose another with --db or VITZOO_DB",
    "SQLITE_CANTOPEN": "it cannot be opened (a missing or unwritable folder?)",
    "SQLITE_PERM": "permission denied",
}


def _sqlite_problem(path: Path, error: sqlite3.Error) -> str:
    """One line for an SQLite error: a full disk, a read-only file or an I/O error is not called corrupt."""
    name = getattr(error, "sqlite_errorname", "") or ""
    if name in _NOT_DAMAGE:
        return f"results database {path}: {_NOT_DAMAGE[name]} ({error})"
    if name.startswith("SQLITE_IOERR"):
        return f"results database {path}: the disk reported an I/O error ({error}); the database was left as it was"
    return f"results database {path} is corrupt or unreadable ({error}); it was left untouched"


def validate_output_db(path: str | os.PathLike | None = None) -> Path:
    """Check, before hours of work, that a result can be stored at ``path`` (default: ``default_db_path()``).

    An existing file must be a healthy vitzoo store (or an empty file) that this vitzoo can write; a new one
    must be creatable: its nearest existing folder writable, no file where a folder is needed. Creates nothing.
    Returns the path; raises ``VitzooError`` with one line saying what is wrong.
    """
    target = Path(path).expanduser() if path is not None else default_db_path()
    if target.exists() or target.is_dir():
        store = ResultStore(target, readonly=True)  # not a directory, SQLite, ours, readable, not corrupt
        if not os.access(target, os.W_OK):
            raise VitzooError(f"results database {target} is not writable")
        _probe_folder(target.parent, f"results database {target}")  # SQLite's -wal/-shm files go beside it
        return store.path
    parent = nearest_existing(target.parent)
    if not parent.is_dir():
        raise VitzooError(f"cannot create results database {target}: {parent} is not a directory")
    _probe_folder(parent, f"cannot create results database {target}")
    return target


def _probe_folder(folder: Path, what: str) -> None:
    """Raise unless a file can be created in ``folder`` (``vitzoo.files.probe_folder``: tried, since ``os.access``
    says yes to root even on /proc or a read-only mount)."""
    if why := probe_folder(folder):
        raise VitzooError(f"{what}: {folder} is not writable ({why})")
