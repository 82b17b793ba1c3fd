"""`vitzoo report` and `vitzoo results compare`, end to end.

A results database is filled by real CLI runs of the `testing` model (bench twice, flops, eval and few-shot on the
scikit-image test photos, tradeoff); the report of it is opened in headless Chromium (Debian's `chromium`, driven
by playwright; CI installs it) and checked as a reader would see it. `compare` is checked on databases with known
numbers, and on one written the way the first release with a results store wrote it.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import statistics

import pytest
from click.testing import CliRunner
from hubcache import add_file, make_testing_checkpoint
from test_evaluate import PHOTOS, photo

from vitzoo.cli import main
from vitzoo.measure.store import APPLICATION_ID, ResultStore
from vitzoo.report.build import page_of
from vitzoo.report.history import NOISE_FLOOR, Point, judge
from vitzoo.report.render import render

CHROMIUM = shutil.which("chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]  # fmt: skip
SECTIONS = ("environments", "benchmarks", "accuracy", "fewshot", "tradeoff", "history", "records")
TINY = ["--warmup", "0", "--iters", "2", "--rounds", "2", "--img-size", "32", "-b", "1,2"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """(folder, database) filled by real runs of the `testing` checkpoint (offline Hub cache) through the CLI.

    The photos are downscaled and the GEMM roofline is measured on one small shape: real runs, in seconds."""
    import huggingface_hub.constants as hf

    from vitzoo.measure import roofline

    root = tmp_path_factory.mktemp("report")
    for k in range(10):  # the checkpoint's 10 classes, 3 photos each
        (root / "photos" / f"c{k}").mkdir(parents=True)
        for j in range(3):
            photo(PHOTOS[(k + j) % len(PHOTOS)]).resize((40, 32)).save(root / "photos" / f"c{k}" / f"{j}.png")
    db = root / "results.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        add_file(root / "hf", "vitzoo/testing", "testing.npz", make_testing_checkpoint()[0])
        mp.setattr(hf, "HF_HUB_CACHE", str(root / "hf"))
        mp.setattr(hf, "HF_HUB_OFFLINE", True)
        mp.setattr(roofline, "vit_gemm_shapes", lambda: [(256, 256, 256)])
        for key, value in {"HF_HUB_CACHE": root / "hf", "HF_HUB_OFFLINE": "1", "VITZOO_CACHE": root / "vz"}.items():
            mp.setenv(key, str(value))
        for args in (["bench", "testing", *TINY], ["bench", "testing", *TINY], ["flops", "testing"],
                     ["eval", "testing", "--data", root / "photos", "-j", "0"],
                     ["fewshot", "testing", "--data", root / "photos", "-j", "0", "--shots", "1,2"]):  # fmt: skip
            result = run(*args, "--db", db)
            assert result.exit_code == 0, (args, result.output)
        result = run("tradeoff", "testing", "vit-ti16", "--db", db, "--json")
        assert result.exit_code == 0, result.output
    return root, db


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (CI installs it: apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield instance
        instance.close()


def open_page(browser, path):
    """A page showing ``path``, and the console errors and page errors it raises."""
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "request", lambda r: errors.append(f"request {r.url}") if not r.url.startswith(("file:", "data:")) else None
    )
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def test_report_in_chromium(filled, browser):
    root, db = filled
    out = root / "report.html"
    result = run("report", "--db", db, "-o", out)
    assert result.exit_code == 0, result.output
    records = ResultStore(db, readonly=True).records()
    html = out.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing to fetch
    for r in records:
        assert f'id="r{r["id"]}"' in html  # every record has its anchor
    (ev,) = [r for r in records if r["kind"] == "eval"]
    assert f'href="#r{ev["id"]}"' in html and f">{ev['metrics']['top1']:,.2f}</a>" in html
    assert ev["metrics"]["weights_sha256"] in html
    last = {r["metrics"]["batch_size"]: r for r in records if r["kind"] == "bench" and r["model"] == "testing"}
    for r in last.values():  # the latest run of each batch size, linked to its own record
        assert f'<a href="#r{r["id"]}" title="record #{r["id"]} (bench, testing, ' in html
        assert f">{r['metrics']['img_per_s']:,.2f}</a>" in html and f">{r['metrics']['pct_peak']:,.1f}</a>" in html

    page, errors = open_page(browser, out)
    for sid in SECTIONS:
        assert page.locator(f"section#{sid} h2").count() == 1
        assert page.locator(f"section#{sid} p.empty").count() == 0, sid  # every section has something
    sizes = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(sizes) == 4 and all(
        done and w > 0 and h > 0 for done, w, h in sizes
    )  # bars, few-shot, trade-off, history

    table = page.locator("section#benchmarks table").first
    column = table.locator("thead th").all_inner_texts().index("img/s")
    values = f"rows => rows.map(r => Number(r.cells[{column}].dataset.sort))"
    table.locator("thead th").nth(column).click()
    ascending = table.locator("tbody tr").evaluate_all(values)
    table.locator("thead th").nth(column).click()
    descending = table.locator("tbody tr").evaluate_all(values)
    assert len(ascending) == 2 and ascending == sorted(ascending) and descending == ascending[::-1]
    shot = root / "report.png"
    page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert errors == []


def test_empty_database_page_says_so(tmp_path, browser):
    ResultStore(tmp_path / "empty.sqlite")  # a new store: the schema, no rows
    result = run("report", "--db", tmp_path / "empty.sqlite", "-o", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    page, errors = open_page(browser, tmp_path / "r.html")
    assert "This database holds no results" in page.locator("#empty-notice").inner_text()
    assert page.locator("section#benchmarks p.empty").inner_text().startswith("No benchmark results")
    assert page.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")  # the zoo's trade-off
    assert errors == []


def test_markdown_has_the_same_sections_and_links(filled):
    _, db = filled
    result = run("report", "--db", db, "--format", "markdown", "-o", "-")
    assert result.exit_code == 0, result.output
    md = result.stdout
    for title in ("Environments", "Benchmarks", "Accuracy", "Few-shot", "Compute vs accuracy", "History", "Records"):
        assert f"\n## {title}\n" in md
    linked = set(re.findall(r"\]\(#r(\d+)\)", md))
    anchors = set(re.findall(r'<a id="r(\d+)"></a>', md))
    assert linked and linked <= anchors == {str(r["id"]) for r in ResultStore(db, readonly=True).records()}


def test_regression_is_judged_against_the_rows_own_noise():
    def pt(i, v, rounds, busy=False):
        return Point(i, f"2026-12-0{i}T00:00:00Z", v, (max(rounds) - min(rounds)) / statistics.median(rounds), busy)

    before = [pt(1, 100.0, (99, 100, 101)), pt(2, 102.0, (101, 102, 103)), pt(3, 98.0, (97, 98, 99))]
    # noise: max(floor 3 %, round spreads ~2 %, run-to-run (102 - 98) / 100 = 4 %) = 4 %
    baseline, change, noise, regression, flagged = judge([*before, pt(4, 95.0, (94.5, 95, 95.5))])
    assert (baseline, noise, regression, flagged) == (100.0, pytest.approx(0.04), True, 4)
    assert change == pytest.approx(-0.05)
    assert judge([*before, pt(4, 97.0, (96.5, 97, 97.5))])[3] is False  # -3 %: within the 4 % noise
    assert judge([*before, pt(4, 50.0, (50, 50, 50), busy=True)])[3] is False  # contended: never judged
    assert judge(before[:2])[2] == NOISE_FLOOR  # two calm runs with tight rounds: the floor


def _store(path, host, rows, peak=None, torch="2.13.0"):
    """A store of bench rows (batch, img/s, contended) of `testing` on `host`, with a GEMM peak."""
    store = ResultStore(path)
    env = {"host": host, "cpu": "test cpu", "torch": torch, "threads": 4}
    for batch, value, busy in rows:
        store.add("bench", "testing", {"batch_size": batch, "img_size": 32, "dtype": "fp32", "status": "ok",
                                       "device": "cpu", "img_per_s": value, "contended": busy,
                                       "peak_tflops": peak}, env)  # fmt: skip
    return store


def test_compare_two_databases_gives_exact_ratios(tmp_path, monkeypatch):
    _store(tmp_path / "a.sqlite", "boxA", [(1, 100.0, False), (1, 120.0, False), (1, 110.0, False), (8, 400.0, True)],
           peak=0.5)  # fmt: skip
    _store(tmp_path / "b.sqlite", "boxB", [(1, 220.0, True), (1, 165.0, False), (8, 500.0, True), (16, 9.0, False)],
           peak=1.0, torch="2.12.0")  # fmt: skip
    result = run("results", "compare", tmp_path / "a.sqlite", tmp_path / "b.sqlite", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    one, eight = out["rows"]
    assert (one["a_img_per_s"], one["b_img_per_s"]) == (110.0, 165.0)  # medians of the uncontended runs
    assert one["ratio"] == 165.0 / 110.0 and one["predicted"] == 2.0 and one["software"] == (165.0 / 110.0) / 2.0
    assert not one["a_contended"] and not one["b_contended"]
    assert eight["ratio"] == 500.0 / 400.0 and eight["a_contended"] and eight["b_contended"]
    assert (out["only_a"], out["only_b"]) == (0, 1)
    assert {d["key"]: (d["a"], d["b"]) for d in out["env_diff"]} == {"host": ("boxA", "boxB"),
                                                                     "torch": ("2.13.0", "2.12.0")}  # fmt: skip
    from vitzoo.cli._output import console

    monkeypatch.setattr(console, "_width", 80)  # an 80-column terminal keeps the ratios
    table = run("results", "compare", tmp_path / "a.sqlite", tmp_path / "b.sqlite")
    assert "1.50x" in table.stdout and "2.00x" in table.stdout and "0.75x" in table.stdout
    assert "contended runs only" in table.stderr


def test_compare_selectors_within_one_database(tmp_path):
    _store(tmp_path / "all.sqlite", "boxA", [(1, 100.0, False)], peak=0.5)
    _store(tmp_path / "all.sqlite", "boxB", [(1, 250.0, False)], peak=1.0)
    result = run("results", "compare", "host=boxA", "host=box[B]", "--db", tmp_path / "all.sqlite", "--json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["rows"]
    assert (row["ratio"], row["predicted"], row["software"]) == (2.5, 2.0, 1.25)


def _old_database(path, rows):
    """A results store as the first release with one wrote it (its schema, its BenchResult and environment
    fields: no backend, kernels, contention, weights hash, heap or bf16 flags)."""
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, kind TEXT NOT NULL, "
        "model TEXT NOT NULL, metrics TEXT NOT NULL, env TEXT NOT NULL);"
        "CREATE INDEX results_kind_model ON results (kind, model);"
        f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1;"
    )
    env = {"host": "old", "platform": "Linux", "python": "3.11", "torch": "2.4.0", "vitzoo": "0.1.0", "cpu": "old cpu",
           "cpu_count": 8, "cpu_capability": "AVX2", "threads": 8, "device": "cpu", "device_name": "old cpu",
           "cuda": None, "cudnn": None, "gpu_count": 0}  # fmt: skip
    for i, (batch, value) in enumerate(rows):
        metrics = {"batch_size": batch, "img_size": 32, "status": "ok", "device": "cpu", "dtype": "fp32",
                   "precision": "cast", "compile": False, "channels_last": False, "threads": 8, "fused": False,
                   "params": 21390, "img_per_s": value, "latency_ms": 1000 * batch / value, "iters": 2, "rounds": 2,
                   "round_img_per_s": [value, value]}  # fmt: skip
        conn.execute("INSERT INTO results (created, kind, model, metrics, env) VALUES (?, 'bench', 'testing', ?, ?)",
                     (f"2026-11-2{i}T10:00:00.000Z", json.dumps(metrics), json.dumps(env)))  # fmt: skip
    conn.commit()
    conn.close()


def test_compare_and_report_read_an_old_database(filled, tmp_path):
    _, db = filled
    _old_database(tmp_path / "old.sqlite", [(1, 10.0), (2, 16.0)])
    result = run("results", "compare", tmp_path / "old.sqlite", db, "--json")
    assert result.exit_code == 0, result.output
    new = [r for r in ResultStore(db, readonly=True).records(kind="bench") if r["model"] == "testing"]
    for row in json.loads(result.stdout)["rows"]:
        runs = [r["metrics"] for r in new if r["metrics"]["batch_size"] == row["batch_size"]]
        calm = [m["img_per_s"] for m in runs if not m["contended"]] or [m["img_per_s"] for m in runs]
        assert row["ratio"] == pytest.approx(statistics.median(calm) / {1: 10.0, 2: 16.0}[row["batch_size"]])
        assert row["predicted"] is None  # the old rows recorded no GEMM peak: no prediction
    report = run("report", "--db", tmp_path / "old.sqlite", "-o", tmp_path / "old.html")
    assert report.exit_code == 0, report.output
    assert "old cpu" in (tmp_path / "old.html").read_text()


def test_history_flags_a_regression_in_the_page(tmp_path):
    store = ResultStore(tmp_path / "h.sqlite")
    env = {"host": "h", "cpu": "c", "device_name": "c"}
    for value in (100.0, 102.0, 98.0, 80.0):
        store.add("bench", "testing", {"batch_size": 1, "dtype": "fp32", "status": "ok", "img_per_s": value,
                                       "round_img_per_s": [value, value], "contended": False}, env)  # fmt: skip
    md = render(page_of(store.records(), "h.sqlite"), "markdown")
    assert "| REGRESSION |" in md and "1 regression(s) beyond noise" in md
    assert "[-20.0 %](#r4)" in md  # 80 / median(100, 102, 98) - 1, linked to the run flagged


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("report --db {d}/missing.sqlite -o {d}/r.html", "no results database at"),
        ("report --db {d}/notes.sqlite -o {d}/r.html", "not a vitzoo results database"),
        ("report --db {d}/good.sqlite -o {d}", "is a directory"),
        ("report --db {d}/good.sqlite --format pdf", "'--format'"),
        ("results compare {d}/missing.sqlite {d}/good.sqlite", "no results database at"),
        ("results compare =x host=a --db {d}/good.sqlite", "a selector is KEY=VALUE"),
        ("results compare host=nope host=h --db {d}/good.sqlite", "holds no benchmark results"),
        ("results compare {d}/good.sqlite", "Missing argument 'B'"),
        ("results comparre a b", "did you mean `vitzoo results compare`"),
    ],
)
def test_bad_inputs_are_one_line_and_write_nothing(tmp_path, args, message):
    _store(tmp_path / "good.sqlite", "h", [(1, 10.0, False)])
    (tmp_path / "notes.sqlite").write_text("not a database")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run(*args.format(d=tmp_path).split())
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_compare_help_teaches_the_selectors():
    result = run("results", "compare", "--help")
    assert result.exit_code == 0
    assert "host=box1 host=box2 --db lab.sqlite" in result.stdout and "KEY=VALUE" in result.stdout


def test_accuracy_shows_intervals_calibration_and_protocol_when_recorded(tmp_path):
    store = ResultStore(tmp_path / "e.sqlite")
    env = {"host": "h"}
    store.add("eval", "vit-b16", {"dataset": "val", "num_images": 50000, "top1": 81.07, "top5": 95.3}, env)
    store.add(
        "eval",
        "vit-b16",
        {
            "dataset": "val",
            "set": "val",
            "num_images": 50000,
            "top1": 81.2,
            "top1_ci_low": 80.86,
            "top1_ci_high": 81.54,
            "ece": 4.12,
            "protocol": "imagenet",
        },
        env,
    )  # the fields `vitzoo eval` records (vitzoo.evaluate.accuracy.EvalResult)
    store.add("eval", "vit-s16", {"dataset": "a", "top1": 30.5, "top1_ci_low": 29.9, "top1_ci_high": 31.1,
                                  "protocol": "a"}, env)  # fmt: skip
    md = render(page_of(store.records(), "e.sqlite"), "markdown")
    header = next(line for line in md.splitlines() if line.startswith("| model | dataset | images | top-1 %"))
    assert "| 95 % CI of top-1 | ECE % | protocol |" in header
    assert "[\\[80.86, 81.54\\]](#r2)" in md and "[4.12](#r2)" in md and "[imagenet](#r2)" in md
    assert "[\\[29.90, 31.10\\]](#r3)" in md and "[a](#r3)" in md
    first = next(line for line in md.splitlines() if "[81.07](#r1)" in line)
    assert first.count("| — |") >= 3  # the older row has none of them


def test_models_pattern_that_matches_nothing_says_so(filled, tmp_path):
    _, db = filled
    result = run("report", "--db", db, "--models", "nomatch*", "--format", "markdown", "-o", tmp_path / "r.md")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "r.md").read_text()
    assert "**This database holds no results**" in text and "models matching 'nomatch*'" in text


def test_html_escapes_what_the_records_hold(tmp_path):
    store = ResultStore(tmp_path / "x.sqlite")
    store.add("flops", "<script>alert(1)</script>", {"img_size": 224, "gmacs": 1.5, "gflops": 3.0}, {"host": "a&b"})
    html = render(page_of(store.records(), "x.sqlite"))
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "a&amp;b" in html and html.count("<script>") == 1  # the page's own sorting script only


def test_tradeoff_numbers_link_to_the_records_they_came_from(tmp_path):
    store = ResultStore(tmp_path / "t.sqlite")
    env = {"host": "h"}
    store.add("bench", "vit-ti16", {"batch_size": 8, "dtype": "fp32", "status": "ok", "img_per_s": 12.5}, env)
    store.add("eval", "vit-ti16.augreg-in21k-ft-in1k-384", {"imagenet": True, "limit": None, "top1": 77.9,
                                                            "img_size": 384, "dataset": "val"}, env)  # fmt: skip
    md = render(page_of(store.records(), "t.sqlite"), "markdown")
    row = next(line for line in md.splitlines() if line.startswith("| vit-ti16.augreg-in21k-ft-in1k-384 | vit |"))
    assert "| [12.5](#r1) |" in row and "| [77.90](#r2) | measured |" in row
    reported = next(line for line in md.splitlines() if line.startswith("| vit-b16.orig-in21k-ft-in1k | vit |"))
    assert "](#r" not in reported  # a reported accuracy is no record of this database
