"""The results store: round trip, filters, concurrent writers, corrupt and foreign files, read-only opening and
the check an output database gets before a long run."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from vitzoo.errors import ConfigError, VitzooError
from vitzoo.measure.store import ResultStore, default_db_path, environment, validate_output_db

ENV = {"host": "h", "torch": "2.x", "threads": 2}


def test_default_path_honours_env_and_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("VITZOO_DB", str(tmp_path / "x.sqlite"))
    assert default_db_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("VITZOO_DB")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_db_path() == tmp_path / "cache" / "vitzoo" / "results.sqlite"
    store = ResultStore()  # creates the parent folder
    assert store.path == default_db_path() and store.path.exists()


def test_round_trip_and_columns(tmp_path):
    store = ResultStore(tmp_path / "sub" / "r.sqlite")
    a = store.add("bench", "vit-b16", {"img_per_s": 41.5, "batch_size": 16, "bad": float("nan")}, ENV)
    b = store.add("flops", "vit-b16.orig-in21k-ft-in1k-384", {"gmacs": 49.3}, ENV)
    c = store.add("eval", "bit-r50x1", {"top1": 80.4}, {**ENV, "host": "other"})
    assert (a, b, c) == (1, 2, 3) and len(store) == 3
    df = store.query()
    assert list(df.columns[:4]) == ["id", "created", "kind", "model"]
    assert list(df.columns[4:7]) == ["img_per_s", "batch_size", "bad"]
    assert [c for c in df.columns if c.startswith("env_")] == ["env_host", "env_torch", "env_threads"]
    assert df["env_host"].tolist() == ["h", "h", "other"]
    assert df.loc[0, "created"].endswith("Z")
    assert df.loc[0, "bad"] is None or df["bad"].isna()[0]  # NaN stored as JSON null
    assert store.query(kind="bench")["model"].tolist() == ["vit-b16"]
    assert store.query(model="vit-*")["id"].tolist() == [1, 2]
    assert store.query(model="*.orig-*")["gmacs"].tolist() == [49.3]
    assert store.query(kind="eval", model="vit-*").empty
    assert list(ResultStore(store.path).query()["id"]) == [1, 2, 3]  # reopening keeps everything


def test_default_environment_is_recorded(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    store.add("flops", "testing", {"gmacs": 0.001})
    env = environment()
    row = store.query().iloc[0]
    assert row["env_torch"] == env["torch"] and row["env_device"] == "cpu" and row["env_threads"] >= 1


def test_bad_arguments_are_user_errors(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    with pytest.raises(ConfigError, match="kind"):
        store.add("speed", "vit-b16", {}, ENV)
    with pytest.raises(ConfigError, match="model"):
        store.add("bench", "", {}, ENV)
    with pytest.raises(ConfigError, match="kind"):
        store.query(kind="nope")


def _write_many(path: str, worker: int, n: int) -> None:
    store = ResultStore(path)
    for i in range(n):
        store.add("bench", f"m{worker}", {"i": i}, ENV)


def test_concurrent_processes_lose_nothing(tmp_path):
    path = str(tmp_path / "r.sqlite")  # the schema is created by the racing writers themselves
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=_write_many, args=(path, w, 25)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    df = ResultStore(path).query()
    assert len(df) == 100 and df["id"].is_unique
    for w in range(4):
        assert sorted(df[df["model"] == f"m{w}"]["i"]) == list(range(25))


def test_concurrent_threads_lose_nothing(tmp_path):
    path = str(tmp_path / "r.sqlite")
    threads = [threading.Thread(target=_write_many, args=(path, w, 20)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ResultStore(path)) == 120


def test_garbage_file_is_refused_and_untouched(tmp_path):
    path = tmp_path / "r.sqlite"
    path.write_bytes(b"this is my thesis, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(VitzooError, match="not a vitzoo results database"):
        ResultStore(path)
    assert path.read_bytes() == before


def test_corrupt_sqlite_file_is_refused_and_untouched(tmp_path):
    path = tmp_path / "r.sqlite"
    store = ResultStore(path)
    for i in range(50):
        store.add("bench", "m", {"i": i, "pad": "x" * 200}, ENV)
    with sqlite3.connect(path) as conn:  # fold the WAL back so the damage lands in the main file
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode = DELETE")
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # smash the schema page, keep the SQLite magic
    path.write_bytes(bytes(data))
    with pytest.raises(VitzooError, match="corrupt"):
        ResultStore(path).query()
    assert path.read_bytes() == bytes(data)


def test_foreign_sqlite_database_is_refused_and_untouched(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE songs (title TEXT)")
        conn.execute("INSERT INTO songs VALUES ('x')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(VitzooError, match="another program"):
        ResultStore(path)
    assert path.read_bytes() == before


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultStore(path)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(VitzooError, match="newer vitzoo"):
        ResultStore(path)


def test_directory_path_is_refused(tmp_path):
    with pytest.raises(VitzooError, match="directory"):
        ResultStore(Path(tmp_path))


def _files(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` and its bytes (None for folders): what a read-only command must not change."""
    return {str(p.relative_to(root)): (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def _corrupt_store(path: Path) -> bytes:
    """A vitzoo store with rows whose middle pages are garbage (the SQLite header and schema page intact)."""
    store = ResultStore(path)
    for i in range(100):
        store.add("flops", f"m{i}", {"pad": "x" * 300}, ENV)
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 6000] = b"\x5a" * 6000
    path.write_bytes(bytes(data))
    return bytes(data)


def test_read_only_never_creates_files(tmp_path):
    before = _files(tmp_path)
    for missing in (tmp_path / "typo.sqllite", tmp_path / "no" / "such" / "dir" / "r.sqlite"):
        with pytest.raises(VitzooError, match="no results database at"):
            ResultStore(missing, readonly=True)
    assert _files(tmp_path) == before
    path = tmp_path / "r.sqlite"
    ResultStore(path).add("bench", "vit-b16", {"img_per_s": 1.0}, ENV)
    before = _files(tmp_path)
    store = ResultStore(path, readonly=True)
    assert [r["model"] for r in store.records()] == ["vit-b16"] and len(store) == 1
    assert _files(tmp_path) == before  # not even SQLite's -wal/-shm side files
    with pytest.raises(VitzooError, match="read-only"):
        store.add("bench", "x", {}, ENV)


def test_read_only_sees_rows_of_an_active_writer(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultStore(path).add("bench", "a", {}, ENV)
    writer = sqlite3.connect(path, isolation_level=None)  # holds the WAL open, as a running bench does
    writer.execute("INSERT INTO results (created, kind, model, metrics, env) VALUES ('t', 'bench', 'b', '{}', '{}')")
    try:
        assert [r["model"] for r in ResultStore(path, readonly=True).records()] == ["a", "b"]
    finally:
        writer.close()


def test_empty_file_reads_as_an_empty_store(tmp_path):
    path = tmp_path / "r.sqlite"
    path.touch()
    assert ResultStore(path, readonly=True).records() == [] and path.read_bytes() == b""


@pytest.mark.parametrize("readonly", [False, True])
def test_damaged_pages_are_refused_before_appending(tmp_path, readonly):
    path = tmp_path / "r.sqlite"
    data = _corrupt_store(path)
    with pytest.raises(VitzooError, match="corrupt"):
        ResultStore(path, readonly=readonly)
    assert path.read_bytes() == data


def test_validate_output_db_checks_and_creates_nothing(tmp_path):
    good = tmp_path / "good.sqlite"
    ResultStore(good).add("eval", "m", {}, ENV)
    notes = tmp_path / "notes.sqlite"
    notes.write_text("my notes")
    corrupt = tmp_path / "corrupt.sqlite"
    _corrupt_store(corrupt)
    (tmp_path / "folder").mkdir()
    before = _files(tmp_path)
    assert validate_output_db(good) == good
    assert validate_output_db(tmp_path / "new" / "deep" / "r.sqlite") == tmp_path / "new" / "deep" / "r.sqlite"
    for bad, message in [
        (notes, "not a vitzoo results database"),
        (corrupt, "corrupt"),
        (tmp_path / "folder", "is a directory"),
        (notes / "r.sqlite", "is not a directory"),
    ]:
        with pytest.raises(VitzooError, match=message):
            validate_output_db(bad)
    assert _files(tmp_path) == before


def test_rows_written_before_the_contention_fields_still_read(tmp_path):
    path = tmp_path / "r.sqlite"
    store = ResultStore(path)
    store.add("bench", "old", {"img_per_s": 5.0, "batch_size": 1}, ENV)  # as an earlier vitzoo stored it
    store.add("bench", "new", {"img_per_s": 6.0, "batch_size": 1, "contended": True, "load_start": 3.1}, ENV)
    df = ResultStore(path, readonly=True).query(kind="bench")
    assert df["model"].tolist() == ["old", "new"] and df["contended"].tolist()[1] is True


def test_a_full_disk_is_not_called_corrupt_and_loses_nothing(tmp_path, monkeypatch):
    """SQLite's own SQLITE_FULL (the file capped at its current pages, as a full disk would): one line saying the
    disk is full, and every row already there is kept."""
    path = tmp_path / "results.sqlite"
    store = ResultStore(path)
    for i in range(3):
        store.add("bench", f"m{i}", {"img_per_s": float(i)})
    connect = sqlite3.connect

    def full(*args, **kwargs):
        conn = connect(*args, **kwargs)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(sqlite3, "connect", full)
    with pytest.raises(VitzooError, match=r"the disk is full; free some space") as e:
        store.add("bench", "big", {"blob": "x" * 200_000})
    assert "corrupt" not in str(e.value)
    monkeypatch.undo()
    assert list(ResultStore(path, readonly=True).query()["model"]) == ["m0", "m1", "m2"]
