"""`vitzoo list` and `vitzoo info`: the registry, as tables or data."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from vitzoo.cli._output import KEY, console, emit, emit_csv, emit_json, fail, format_options, millions, render_table
from vitzoo.zoo.timm_results import TITLES

LIST_COLUMNS = [  # at 80 columns: name, size, compute and top-1 stay (KEY)
    ("name", "name", None, KEY),
    ("family", "family", None, 3),
    ("params", "params (M)", millions, KEY),
    ("img_size", "res", None, 2),
    ("patch", "patch", None, 4),
    ("gmacs", "GMACs", None, KEY),
    ("default_tag", "default tag", None, 5),
    ("top1", "IN-1k top-1", lambda v: "—" if v is None else f"{v:.2f}", KEY),
    ("top1_source", "reported by", None, 6),
]


def _row(info: dict[str, Any]) -> dict[str, Any]:
    """The `list` row of a model: pixels per token side as 'patch' (hybrids: the total stride)."""
    patch = None
    if info["family"] != "bit":
        patch = info["img_size"] // int((info["tokens"] - (info["classifier"] == "token")) ** 0.5)
    return {k: patch if k == "patch" else info[k] for k, *_ in LIST_COLUMNS}


ALL_COLUMNS = [  # at 80 columns: name, GMACs and top-1 stay (KEY)
    ("name", "name", None, KEY),
    ("family", "family", None, 4),
    ("params", "params (M)", millions, 2),
    ("img_size", "res", None, 1),
    ("num_classes", "classes", None, 3),
    ("gmacs", "GMACs", None, KEY),
    ("top1", "IN-1k top-1", lambda v: "—" if v is None else f"{v:.2f}", KEY),
    ("top1_source", "reported by", None, 5),
]


@click.command("list")
@click.argument("pattern", required=False)
@click.option("--all", "all_tags", is_flag=True, help="One row per checkpoint (every tag), not per architecture.")
@format_options
def list_cmd(pattern: str | None, all_tags: bool, fmt: str) -> None:
    """List the models, optionally those matching a shell PATTERN.

    Each row describes the model that `vitzoo.load(NAME)` returns: its default pretrained checkpoint,
    resolution, parameters, GMACs per image (attention matmuls included) and the ImageNet-1k top-1
    its authors reported. `patch` is the pixels per token side (for hybrids, the total stride).
    With --all, every checkpoint (`arch.tag`) gets its own row.

    \b
    Examples:
      vitzoo list
      vitzoo list --all 'vit-b16'
      vitzoo list 'vit-*' --csv
      vitzoo list 'bit-*' --json
    """
    import vitzoo

    names = vitzoo.list_models(pattern)
    if not names:
        fail(f"no model matches {pattern!r}; see `vitzoo list`")
    if all_tags:
        rows = []
        for n in names:
            info = vitzoo.describe(n)
            rows += [{**{k: tag.get(k) for k, *_ in ALL_COLUMNS}, "family": info["family"]} for tag in info["tags"]]
        emit(rows, fmt, ALL_COLUMNS, title=f"vitzoo checkpoints ({len(rows)})")
        return
    rows = [_row(vitzoo.describe(n)) for n in names]
    emit(rows, fmt, LIST_COLUMNS, title=f"vitzoo models ({len(rows)})")


TAG_COLUMNS = [  # at 80 columns: the tag, its GMACs and top-1 stay (KEY)
    ("tag", "tag", None, KEY),
    ("default", "default", lambda v: "✓" if v else ""),
    ("img_size", "res", None),
    ("num_classes", "classes", None),
    ("label_space", "labels", None),
    ("params", "params (M)", millions),
    ("gmacs", "GMACs", None, KEY),
    ("top1", "IN-1k top-1", lambda v: "—" if v is None else f"{v:.2f}", KEY),
    ("format", "format", None),
    ("hub_repo", "Hub repository", None),
    ("pretrain", "pre-training", None),
]


PROTOCOLS = {"authors": "authors' evaluation", "timm": "timm's evaluation of this file"}


def _labels_note(tag: dict[str, Any]) -> str:
    """What a checkpoint's head answers with: its label space, or why it has none."""
    n = tag["num_classes"]
    if tag["label_space"]:
        return f"{tag['label_space']} ({n:,} named classes)"
    if tag["zero_head"]:
        return "none: its authors zeroed the ImageNet-21k head (use it for features, or fine-tune a head)"
    return "none: no classification head" if not n else f"none: {n} classes without known names"


@click.command("info")
@click.argument("name")
@format_options
def info_cmd(name: str, fmt: str) -> None:
    """Show one model (NAME or NAME.TAG) and all its pretrained checkpoints.

    For each checkpoint: its accuracies, marked by protocol (the authors' own evaluation, or timm's
    re-evaluation of the same file; both where both are known), timm's published top-1 of its timm file on
    ImageNet, ReaL, V2, Sketch, A and R, preprocessing, label space (imagenet-1k, imagenet-21k, or none for a
    head-less or zeroed upstream) and its sources in the order `vitzoo.load` tries them (Hub safetensors, Hub .bin,
    a second Hub port, the original URL).

    \b
    Examples:
      vitzoo info vit-b16
      vitzoo info bit-r50x1 --json
    """
    import vitzoo
    from vitzoo.zoo.lookup import refuse_file, resolve_one

    refuse_file(resolve_one(name), "`vitzoo info`")
    info = vitzoo.describe(name)
    if fmt == "json":
        emit_json(info)
        return
    if fmt == "csv":
        emit_csv(info["tags"])
        return
    keys = ("patch", "width", "depth", "heads", "mlp_dim", "classifier", "hybrid_layers", "layers", "width_factor")
    arch = ", ".join(f"{k}={info[k]}" for k in keys if info.get(k) is not None)
    console.print(f"[bold]{info['name']}[/] — {info['title']} ({info['family']})", highlight=False)
    console.print(f"architecture: {arch}", highlight=False)
    console.print(f"defined in: {info['source']}", highlight=False)
    render_table(info["tags"], TAG_COLUMNS, title="checkpoints")
    for tag in info["tags"]:
        accs = [f"{a['top1']:.2f} ({PROTOCOLS[a['protocol']]}: {a['source']})" for a in tag["accuracies"]]
        notes = [f"top-1 {', '.join(accs)}"] if accs else []
        if tag["timm_results"]:
            sets = ", ".join(f"{TITLES[d]} {v['top1']:.2f}" for d, v in tag["timm_results"].items())
            notes.append(f"top-1 in timm's evaluation of {tag['timm_name']}: {sets}")
        notes += [tag["notes"]] if tag["notes"] else []
        pp = tag["preprocess"]
        notes.append(f"preprocess: {pp['description']}")
        notes.append(f"labels: {_labels_note(tag)}")
        sources = "; ".join(f"{i}. {s['label']} ({s['format']})" for i, s in enumerate(tag["sources"], 1))
        notes.append(f"sources, in order: {sources}")
        console.print(f"[bold]{tag['tag']}[/]:", highlight=False)
        for note in notes:  # one note a line, wrapped at the console's width (a pipe: 80 columns)
            console.print(f"  {escape(note)}", highlight=False, overflow="fold")
