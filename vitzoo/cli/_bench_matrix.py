"""`vitzoo bench --backend A,B --dtype fp32,bf16,int8`: the deployment matrix of a model, one table, stored."""

from __future__ import annotations

from typing import Any

import numpy as np

from vitzoo.cli._output import emit, err_console, fail, info, number, warn
from vitzoo.zoo.formats import BACKENDS

PRECISIONS = ("fp32", "bf16", "fp16", "int8")


def _pct(v: Any) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


# (key, header, formatter, priority): at 80 columns the highest priority numbers are left out first.
MATRIX_COLUMNS = [
    ("backend", "runtime", None, 0),
    ("precision", "precision", None, 1),
    ("img_per_s", "img/s", number(2), 2),
    ("latency_b1_ms", "b1 p50 ms", number(1), 4),
    ("latency_b1_p90_ms", "p90", number(1), 9),
    ("latency_b1_p99_ms", "p99", number(1), 10),
    ("memory_mib", "mem MiB", number(0), 8),
    ("roofline", "% roofline", None, 5),
    ("max_abs_err", "max |Δlogit|", lambda v: "—" if v is None else f"{v:.1e}", 6),
    ("mean_abs_err", "mean |Δlogit|", lambda v: "—" if v is None else f"{v:.1e}", 11),
    ("top1_agreement", "top-1 agree", _pct, 3),
    ("top1_accuracy", "top-1 acc", _pct, 7),
    ("verdict", "note", None, 2.5),
]


def parse_list(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """``"torch,openvino"`` -> ("torch", "openvino"); one ``error:`` line for an unknown or empty item."""
    items = tuple(dict.fromkeys(t.strip().lower() for t in text.split(",")))
    bad = [t for t in items if t not in allowed]
    if bad or not items:
        fail(f"unknown {what} {', '.join(map(repr, bad)) or repr(text)}; use one or more of {', '.join(allowed)}")
    return items


def _row(r: Any) -> dict[str, Any]:
    d = r.as_dict()
    d["precision"] = r.dtype + (f" {r.method}" if r.method else "") + (" (default)" if r.method and r.default and
                                                                       r.backend == "torch" else "")  # fmt: skip
    if r.status != "ok":
        d["verdict"] = f"{r.status}: {r.error}"
    else:
        d["verdict"] = "DEGRADED: " + r.degraded_why if r.degraded else (r.note or "")
    d["roofline"] = "—" if r.pct_peak is None else f"{r.pct_peak:.0f}%"
    if r.status == "ok" and r.pct_peak is None and r.peak_note:
        d["verdict"] = f"{d['verdict']}; {r.peak_note}"
    return d


def _images(folder: Any, path: str, model: Any, calib: int, count: int) -> Any:
    """Calibration and fidelity images from an ImageFolder, disjoint, seeded; labels where they are the model's."""
    from vitzoo.measure.matrix import MatrixData
    from vitzoo.zoo.preprocess import resolve_preprocess

    data = folder.with_preprocess(resolve_preprocess(model))
    order = np.random.default_rng(0).permutation(len(data))
    picked: dict[str, list] = {"calib": [], "eval": []}
    labels: list[int] = []
    with err_console.status(f"reading {calib + count} images from {path}"):
        for i in order:
            part = "calib" if len(picked["calib"]) < calib else "eval"
            if part == "eval" and len(picked["eval"]) >= count:
                break
            item = data[int(i)]
            if item.image is None:
                warn(f"skipped {data.sources[int(i)]}: {item.error}")
                continue
            picked[part].append(item.image.numpy())
            if part == "eval":
                labels.append(item.label)
    if not picked["eval"]:
        fail(f"--data {path}: no readable images left for fidelity after {calib} calibration images")
    same_classes = data.num_classes == model.config.num_classes
    if not same_classes:
        warn(f"{path}: {data.num_classes} classes, the model has {model.config.num_classes}: top-1 accuracy is not "
             "computed (agreement with fp32 still is)")  # fmt: skip
    return MatrixData(np.stack(picked["calib"]), f"{len(picked['calib'])} images of {data.description}",
                      np.stack(picked["eval"]), f"{len(picked['eval'])} other images of {data.description}",
                      np.asarray(labels) if same_classes else None)  # fmt: skip


def run_matrix_cmd(names: tuple[str, ...], kw: dict[str, Any], db: str | bool | None, fmt: str) -> None:
    """Run the matrix for each model, print one table per model, store every cell as a ``bench`` record
    (``db``: the database option, None for the default one, False for --no-store)."""
    from vitzoo.measure.bench import BenchOptions, _build, bench_environment, check_names, prepare_process
    from vitzoo.measure.matrix import MatrixOptions, run_matrix, synthetic_data
    from vitzoo.measure.records import record
    from vitzoo.measure.store import ResultStore
    from vitzoo.weights.names import expand_sources

    backends = parse_list(kw["backend"], BACKENDS, "backend")
    dtypes = parse_list(kw["dtype"], PRECISIONS, "dtype")
    if "fp16" in dtypes:
        fail("the deployment matrix runs fp32, bf16 and int8 (fp16 has no CPU peers here); drop fp16")
    unsupported = [flag for flag, bad in (("--device " + kw["device"], kw["device"] != "cpu"),
                                          ("--compile", kw["compile_"]), ("--channels-last", kw["channels_last"]),
                                          ("--aten", kw["aten"]), ("--precision autocast", kw["precision"] != "cast"),
                                          ("--seconds", kw["seconds"] is not None)) if bad]  # fmt: skip
    if unsupported:
        fail(f"the deployment matrix runs each runtime's own CPU path; drop {', '.join(unsupported)}")
    batch = kw["batch_size"].strip()
    if not batch.isdigit() or int(batch) < 1:
        fail(f"the deployment matrix takes one throughput batch size (-b 16), not {batch!r}")
    options = MatrixOptions(backends=backends, dtypes=dtypes, batch_size=int(batch), rounds=kw["rounds"],
                            iters=kw["iters"], warmup=kw["warmup"], threads=kw["threads"])  # fmt: skip
    for flag in ("calib", "fidelity_images"):
        if kw[flag] < 1:
            fail(f"--{flag.replace('_', '-')} must be at least 1, not {kw[flag]}")
    names = tuple(expand_sources(names))
    check_names(names, BenchOptions(img_size=kw["img_size"]))  # before anything runs
    folder = None
    if kw["data"]:
        from vitzoo.evaluate.data import image_folder

        folder = image_folder(kw["data"])  # a missing or empty folder: one line now, not after the model is built
        if len(folder) < kw["calib"] + 1:
            fail(f"--data {kw['data']} has {len(folder)} images; --calib {kw['calib']} needs at least "
                 f"{kw['calib'] + 1} (the rest measure fidelity)")  # fmt: skip
    store = None if db is False else ResultStore(db)
    prepare_process(BenchOptions())  # the heap the matrix runs under (run_matrix keeps it), before it is recorded
    env = bench_environment(BenchOptions(threads=kw["threads"], gemm_peak=False))
    building = BenchOptions(img_size=kw["img_size"], pretrained=kw["weights"] == "pretrained")  # what _build reads
    degraded_any = failed_any = False
    for name in names:
        model, img_size, _ = _build(name, building)
        data = (_images(folder, kw["data"], model, kw["calib"], kw["fidelity_images"]) if folder is not None
                else synthetic_data(img_size, kw["calib"], kw["fidelity_images"]))  # fmt: skip
        with err_console.status(f"{name}: starting") as status:
            results = run_matrix(model, name, options, data, lambda text, s=status, n=name: s.update(f"{n}: {text}"))
        for r in results:
            if store is not None:
                store.save(record(r, env={**env, "threads": r.threads}))  # a matrix cell: env mode "matrix"
        degraded_any |= any(r.degraded for r in results)
        failed_any |= any(r.status == "error" for r in results)
        ok = next((r for r in results if r.status == "ok"), results[0])
        title = (f"{name} · {env['device_name']} · {ok.threads} threads · batch {ok.batch_size} (img/s), batch 1 "
                 f"(latency) · fidelity vs fp32 PyTorch on {data.images_source}"
                 + ("" if "int8" not in dtypes else f" · int8 calibrated on {data.calib_source}"))  # fmt: skip
        emit([_row(r) for r in results], fmt, MATRIX_COLUMNS, title)
        busy = [r for r in results if r.contended]
        if busy and fmt == "table":
            warn(f"other processes used {busy[0].other_cpu} cores during the timed rounds: the speeds understate "
                 "this machine")  # fmt: skip
    if store is not None:
        info(f"results appended to {store.path}")
    if degraded_any and fmt == "table":
        info("degraded: top-1 agreement (accuracy, with labels) below 99% of fp32's (MLPerf's 99% rule)")
    if failed_any:
        fail("some cells failed (see the table)")
