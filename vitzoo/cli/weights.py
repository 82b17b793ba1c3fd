"""`vitzoo convert`, `vitzoo download`, `vitzoo cache`: getting and keeping faithful weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from vitzoo.cli import SuggestingGroup
from vitzoo.cli._output import emit_json, emit_summary, fail, format_options, info, render_table, warn
from vitzoo.cli._preflight import renamed_option


def _progress_bar(description: str):
    """A rich byte-progress bar on stderr, as a (callback, context manager) pair."""
    from rich.progress import BarColumn, DownloadColumn, TransferSpeedColumn

    from vitzoo.cli._output import Progress, err_console

    bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   console=err_console, transient=True)  # fmt: skip
    task = bar.add_task(description, total=None)
    return (lambda done, total: bar.update(task, completed=done, total=total)), bar


@click.command("convert")
@click.argument("src")
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--expect", "model", metavar="NAME[.TAG]", help="Expected architecture; the checkpoint must match it.")
@renamed_option("--model", "--expect NAME[.TAG]", "--model is a name pattern in `vitzoo results`")
@click.option("--img-size", type=int, help="Resize position embeddings to this resolution.")
@click.option("--num-classes", type=int, help="Replace the head with a zero-initialised one (0: no head).")
@click.option("--no-pre-logits", is_flag=True, help="Drop the representation layer (ImageNet-21k checkpoints).")
@click.option("--posemb-interp", type=click.Choice(["bilinear", "bicubic"]), default="bilinear", show_default=True,
              help="bilinear = vit_jax's corner-aligned linear resize.")  # fmt: skip
@click.option("--labels", "labels_file", type=click.Path(path_type=Path), metavar="FILE",
              help="Class names of the head, one per line in class-index order (a fine-tune's own labels); "
                   "stored in DST, and `vitzoo.load`/`vitzoo predict` answer with them.")  # fmt: skip
@click.option("--sha256", help="Expected sha256 of SRC (checked after download).")
@click.option("--force", is_flag=True, help="Overwrite DST if it exists.")
@click.option("--push-to-hub", "repo", metavar="REPO", help="Also upload DST to this Hugging Face Hub model repo.")
@format_options
def convert_cmd(
    src, dst, model, img_size, num_classes, no_pre_logits, posemb_interp, labels_file, sha256, force, repo, fmt
):
    """Convert SRC (a file or an https URL) to vitzoo safetensors DST.

    SRC may be an original vit_jax or BiT .npz (also wrapped with its optimizer under opt/target/), a
    transformers or timm checkpoint (.safetensors or .bin) or a vitzoo file; the layout is detected from the
    tensors. The architecture is inferred from the shapes and checked against --expect (or against the registry
    tag whose original URL SRC is). Every source tensor must be used, every model tensor filled. DST is written
    atomically and holds the config, so the file alone rebuilds the model.

    \b
    Examples:
      vitzoo convert ViT-B_16.npz vit-b16.safetensors --expect vit-b16.orig-in21k
      vitzoo convert https://storage.googleapis.com/vit_models/imagenet21k+imagenet2012/ViT-B_16-224.npz b16.safetensors
      vitzoo convert model.safetensors ft.safetensors --num-classes 10 --img-size 384
      vitzoo convert my_finetune.npz flowers.safetensors --labels flowers.txt
    """
    from vitzoo.files import sha256_of
    from vitzoo.weights import hub
    from vitzoo.weights.checkpoint import check_writable, refuse_url, save_vitzoo
    from vitzoo.weights.convert import check_architecture, convert_file
    from vitzoo.weights.loading import Adaptation, adapt, file_metadata, stored_labels
    from vitzoo.zoo.labels import read_label_file
    from vitzoo.zoo.lookup import by_source, check_memory, check_overrides, resolve_one

    # Everything that can be checked is checked before the download and the conversion.
    if dst.is_dir():
        fail(f"{dst}: is a directory; DST must be a .safetensors file")
    if dst.suffix != ".safetensors":
        fail(f"{dst}: the output must be a .safetensors file")
    if dst.exists() and not force:
        fail(f"{dst} exists; pass --force to overwrite it")
    check_writable(dst)
    if labels_file is not None and not labels_file.is_file():
        fail(f"{labels_file}: no such label file" if not labels_file.exists() else f"{labels_file}: not a file")
    check_overrides(num_classes, img_size)
    expected = resolve_one(model) if model else by_source(src)  # --expect, or the tag whose URL is SRC
    if expected is not None and expected.config is None:
        fail(f"--expect {model}: a weight file; name a catalogue architecture (NAME[.TAG])")
    hint_name, hint = (None, None) if expected is None else (model or expected.name, expected.config)
    if hint is not None and img_size is not None:
        try:
            target = hint.replace(img_size=img_size)
        except ValueError as e:  # not a multiple of the patch size
            fail(f"{hint_name}: {e}")
        check_memory(target, hint_name, copies=2)
    refuse_url(src, downloads=True)  # s3://, gs://, ftp://: one line, not "no such file"
    if src.startswith(("https://", "http://")):
        downloads = hub.writable_cache("downloads")
        callback, bar = _progress_bar(src.rsplit("/", 1)[-1])
        with bar:
            path = hub.download_url(src, downloads, sha256, callback)
        info(f"downloaded {src} -> {path}")
    else:
        path = Path(src).expanduser()
        if path.is_dir():
            fail(f"{path}: is a directory, not a weight file")
        if not path.is_file():
            fail(f"{path}: no such file")
        if sha256 and sha256_of(path) != sha256:
            fail(f"{path}: sha256 mismatch (expected {sha256})")
    result = convert_file(path, expected=hint)
    if hint is not None:
        check_architecture(result.config, hint, hint_name)
    config, state_dict = adapt(result, Adaptation(img_size, num_classes, not no_pre_logits, posemb_interp), src)
    extra = {"source": src, "source_format": result.source_format}
    if hint_name and "." in hint_name:  # --expect NAME.TAG: the file keeps that tag's preprocessing
        extra["name"] = hint_name
    if labels_file is not None:  # as many names as the head has classes, checked before anything is written
        extra["labels"] = json.dumps(list(read_label_file(labels_file, config.num_classes)))
    elif state_dict.get("head.weight") is result.state_dict.get("head.weight"):  # same head: a vitzoo file's names
        kept = stored_labels(file_metadata(path), str(path))
        if kept is not None:
            extra["labels"] = json.dumps(list(kept))
    save_vitzoo(dst, state_dict, config, extra)
    summary = {
        "src": src,
        "dst": str(dst),
        "source_format": result.source_format,
        "matches": hint_name,
        "ignored_keys": len(result.ignored),
        "tensors": len(state_dict),
        "params": sum(t.numel() for t in state_dict.values()),
        "labels": str(labels_file) if labels_file is not None else None,
        "config": dataclasses.asdict(config),
    }
    emit_summary(summary, fmt, f"converted {src} -> {dst}")
    fields = ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(config).items() if v is not None)
    info(f"read {result.source_format} checkpoint: {type(config).__name__}({fields})")
    if result.ignored:
        info(f"ignored {len(result.ignored)} optimizer-state tensors ({result.ignored[0]}, ...)")
    named = f", {config.num_classes} class names from {labels_file}" if labels_file is not None else ""
    info(f"wrote {dst} ({summary['params']:,} parameters{f', matches {hint_name}' if hint_name else ''}{named})")
    if repo:
        _push(dst, repo)


def _push(path: Path, repo: str) -> None:
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo, exist_ok=True)
        api.upload_file(path_or_fileobj=str(path), path_in_repo="model.safetensors", repo_id=repo)
    except Exception as e:  # huggingface_hub raises many types (offline, auth, HTTP); all are one line for the user
        fail(f"pushing {path} to {repo} failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    info(f"pushed {path} to https://huggingface.co/{repo}")


@click.command("download")
@click.argument("names", nargs=-1, required=True, metavar="NAME|PATTERN...")
@click.option("--lock", "lock", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Record each file fetched (Hub commit or URL, size, sha256) in this lock file.")  # fmt: skip
def download_cmd(names, lock):
    """Pre-fetch checkpoints and convert them into vitzoo's cache.

    NAMES are `arch` (its default checkpoint), `arch.tag`, or a quoted shell pattern ('vit-s*'). Each tag's
    sources (`vitzoo info`) are tried in order; when one fails (not found, refused, offline, checksum mismatch)
    the next is used and a line says which. Later `vitzoo.load(NAME)` and `vitzoo bench --pretrained` then work
    offline (HF_HUB_OFFLINE=1).

    With --lock FILE, the exact file used for each name is recorded in FILE (created or updated);
    `vitzoo.load(NAME, lock=FILE)` or VITZOO_LOCK=FILE then refuse any file that differs from it. Without
    --lock, a VITZOO_LOCK in the environment is honoured: files that differ from it are refused.

    \b
    Examples:
      vitzoo download vit-b16 vit-l16.orig-in21k-ft-in1k-384
      vitzoo download vit-b16 bit-r50x1 --lock vitzoo.lock
    """
    import warnings

    from vitzoo.errors import VitzooError
    from vitzoo.weights.hub import HubError
    from vitzoo.weights.lock import write_lock
    from vitzoo.weights.sources import SourceFallbackWarning, fetch_checkpoint
    from vitzoo.zoo.lookup import refuse_file, resolve_all

    checkpoints = resolve_all(names)  # unknown names, empty patterns: one line before any download
    for checkpoint in checkpoints:
        refuse_file(checkpoint, "`vitzoo download`")
    failed, entries = 0, {}
    for name in checkpoints:
        try:
            with warnings.catch_warnings():  # the fall-through is reported below, as one line
                warnings.simplefilter("ignore", SourceFallbackWarning)
                fetched = fetch_checkpoint(name, False if lock else None)
        except VitzooError as e:
            message = e.download_message if isinstance(e, HubError) else str(e)
            if len(checkpoints) == 1:
                fail(message)
            warn(message)
            failed += 1
            continue
        for skipped in fetched.skipped:
            warn(f"{fetched.name}: skipped {skipped}")
        info(f"{fetched.name}: {fetched.path} (from {fetched.entry.label})")
        entries[fetched.name] = fetched.entry
    if lock and entries:
        write_lock(lock, entries)
        info(f"{len(entries)} checkpoint(s) recorded in {lock}")
    if failed:
        fail(f"{failed} of {len(checkpoints)} downloads failed")


@click.group("cache", cls=SuggestingGroup)
def cache_cmd():
    """List or clean vitzoo's cache of converted checkpoints (VITZOO_CACHE, default ~/.cache/vitzoo).

    The original downloads stay in the Hugging Face cache (manage it with `hf cache`).

    \b
    Examples:
      vitzoo cache list
      vitzoo cache clean vit-b16 bit-r50x1.bitm-in21k
    """


def _cached() -> list[dict]:
    from safetensors import safe_open

    from vitzoo.files import cache_dir

    root = cache_dir()
    if root.exists() and not root.is_dir():
        fail(f"vitzoo's cache {root} is not a directory; set VITZOO_CACHE to a directory")
    rows = []
    for path in sorted((root / "converted").glob("*/*/*.safetensors")):
        try:
            with safe_open(str(path), "pt") as f:
                name = (f.metadata() or {}).get("name", "?")
        except Exception:  # a damaged cache file is listed, never fatal
            name = "(unreadable)"
        rows.append({"name": name, "size_mb": round(path.stat().st_size / 2**20, 1), "path": str(path)})
    return rows


@cache_cmd.command("list")
@format_options
def cache_list(fmt):
    """Show the converted checkpoints in the cache.

    \b
    Examples:
      vitzoo cache list
      vitzoo cache list --json
    """
    rows = _cached()
    if fmt == "json":
        emit_json(rows)
    elif fmt == "csv":
        from vitzoo.cli._output import emit_csv

        emit_csv(rows)
    elif not rows:
        info("the cache is empty")
    else:
        render_table(rows, [("name", "name", None), ("size_mb", "MiB", None), ("path", "path", None)])


@cache_cmd.command("clean")
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Remove every converted checkpoint.")
def cache_clean(names, everything):
    """Remove converted checkpoints of NAMES (`arch` or `arch.tag`), or --all.

    \b
    Examples:
      vitzoo cache clean vit-b16              # every converted tag of vit-b16
      vitzoo cache clean vit-b16.orig-in21k
      vitzoo cache clean --all
    """
    from vitzoo.zoo.lookup import resolve_one

    if not names and not everything:
        fail("name the models to remove, or pass --all")
    for name in names:
        resolve_one(name)  # unknown names and tags: one line, nothing removed
    removed = 0
    for row in _cached():
        arch = row["name"].split(".")[0]
        if everything or row["name"] in names or arch in names:
            try:
                Path(row["path"]).unlink()
            except OSError as e:
                fail(f"cannot remove {row['path']} ({e.strerror or type(e).__name__}); {removed} removed so far")
            removed += 1
            info(f"removed {row['name']} ({row['path']})")
    info(f"{removed} converted checkpoint(s) removed")
