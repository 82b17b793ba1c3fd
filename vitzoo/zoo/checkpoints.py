"""How a catalogue row becomes a checkpoint: its sources in order, its preprocessing and its accuracies.

Each checkpoint lists its sources in order of preference: the Hub safetensors, the Hub ``.bin`` where the repository
is known to have one, a second Hub port of the same weights (timm's), then the original ``.npz`` URL in Google's
public buckets. A source that fails falls through to the next (``vitzoo.weights.sources``). The rows themselves are
in ``vitzoo.zoo.catalog``.
"""

from __future__ import annotations

from vitzoo.zoo.registry import Accuracy, HubFile, Preprocess, Source, UrlFile, Weights

# Citations, short enough for a table column. "vit_jax README" = google-research/vision_transformer README;
# "timm eval" = timm's results-imagenet.csv, a re-evaluation of this very file with its timm preprocessing.
# The rows added with the extended catalogue (augreg2, AugReg ImageNet-1k, SAM, the second accuracies of the
# 2020 fine-tunes, the distilled BiT) quote results-imagenet.csv at commit 0173a139; the older rows quote another
# revision of the same file (the revisions differ by at most 0.03 points on these models).
PAPER_T5 = "ViT paper Table 5"
VIT_README_2020 = "vit_jax README (2020)"
AUGREG_README = "vit_jax README (AugReg)"
BIT_DISTILL_README = "big_transfer README (distillation)"
TIMM_EVAL = "timm eval"
GCS_VIT = "https://storage.googleapis.com/vit_models"
GCS_BIT = "https://storage.googleapis.com/bit_models"
AUGREG = "AugReg (arXiv 2106.10270); vit_jax configs/models.py"
VIT_PAPER = "ViT paper (arXiv 2010.11929)"
SAFETENSORS, BIN = "model.safetensors", "pytorch_model.bin"


def authors(top1: float, source: str) -> Accuracy:
    """An accuracy from the checkpoint's authors (paper table or README)."""
    return Accuracy(top1, source, "authors")


def timm(top1: float) -> Accuracy:
    """timm's evaluation of the very file (results-imagenet.csv)."""
    return Accuracy(top1, TIMM_EVAL, "timm")


BIT_FT_RES = 480  # BiT-HyperRule: ImageNet-sized images are fine-tuned at 480 (big_transfer bit_hyperrule.py)
# The licence the publishers state for their releases: google-research/vision_transformer and
# google-research/big_transfer publish code and checkpoints under Apache-2.0 (each repository's LICENSE and README).
# timm's own fine-tunes (augreg2) and the test fixture state none here: None.
GOOGLE_LICENCE = "Apache-2.0"

# Preprocessing: the one the tag's reported accuracy was measured with, named by each row (``pp``). "vit_jax" (the
# paper, its README) resizes straight to the square with tf.image.resize, bilinear without antialiasing ("tf";
# HF's ViTImageProcessor squashes with Pillow, which antialiases); "timm": timm's cfg, short side to
# size/crop_pct, centre crop, bicubic (ViT) or bilinear (BiT).


def timm_pp(size: int, crop_pct: float, interpolation: str = "bicubic") -> Preprocess:
    return Preprocess(size, resize="shorter", crop_pct=crop_pct, interpolation=interpolation)  # type: ignore[arg-type]


def _timm_vit_pp(size: int) -> Preprocess:
    return timm_pp(size, 0.9 if size == 224 else 1.0)


def vit_pp(kind: str, size: int) -> Preprocess:
    """A ViT row's preprocessing by name: "vit_jax" (tf resize to the square) or "timm" (its cfg at ``size``)."""
    if kind not in ("vit_jax", "timm"):
        raise ValueError(f"a ViT row's preprocessing is 'vit_jax' or 'timm', not {kind!r}")
    return Preprocess(size, resize="tf") if kind == "vit_jax" else _timm_vit_pp(size)


def hub_files(repo: str, files: tuple[str, ...], fmt: str) -> list[Source]:
    return [HubFile(repo, f, fmt) for f in files]  # type: ignore[arg-type]


def orig_weights(*, tag, repo, files, size, gcs, classes, width, timm_port=None, accuracies=()) -> Weights:
    in21k = classes == 0
    sources = hub_files(repo, files, "transformers")
    if timm_port:
        sources.append(HubFile(f"timm/{timm_port}", SAFETENSORS, "timm"))
    sources.append(UrlFile(f"{GCS_VIT}/{gcs}", "vit_jax"))
    return Weights(
        tag=tag,
        sources=tuple(sources),
        pretrain="ImageNet-21k (paper)" + ("" if in21k else f", fine-tuned on ImageNet-1k at {size}"),
        preprocess=Preprocess(size, resize="tf"),
        num_classes=classes,
        representation_size=width if in21k else None,
        accuracies=accuracies,
        zero_head=in21k,
        licence=GOOGLE_LICENCE,
        notes="the authors zeroed the 21k head; the Hub copy keeps only the pre_logits 'pooler'" if in21k else "",
    )


def augreg_ft_weights(*, timm_name, size, model, run, lr, pp, accuracies) -> Weights:
    upstream = f"{model}-i21k-300ep-lr_0.001-{run}"
    return Weights(
        tag="augreg-in21k-ft-in1k" + ("" if size == 224 else f"-{size}"),
        sources=(
            HubFile(f"timm/{timm_name}_{size}.augreg_in21k_ft_in1k", SAFETENSORS, "timm"),
            UrlFile(f"{GCS_VIT}/augreg/{upstream}--imagenet2012-steps_20k-lr_{lr}-res_{size}.npz", "vit_jax"),
        ),
        pretrain=f"ImageNet-21k (AugReg, 300 ep), fine-tuned on ImageNet-1k at {size}",
        preprocess=vit_pp(pp, size),
        num_classes=1000,
        accuracies=accuracies,
        licence=GOOGLE_LICENCE,
    )


def augreg_in21k_weights(*, timm_name, model, run) -> Weights:
    return Weights(
        tag="augreg-in21k",
        sources=(
            HubFile(f"timm/{timm_name}.augreg_in21k", SAFETENSORS, "timm"),
            UrlFile(f"{GCS_VIT}/augreg/{model}-i21k-300ep-lr_0.001-{run}.npz", "vit_jax"),
        ),
        pretrain="ImageNet-21k (AugReg, 300 ep)",
        preprocess=_timm_vit_pp(224),
        num_classes=21843,
        licence=GOOGLE_LICENCE,
        notes="a valid 21,843-class ImageNet-21k classifier (unlike the 2020 upstreams)",
    )


def augreg_in1k_weights(*, timm_name, size, model, run, accuracies) -> Weights:
    upstream = f"{model}-i1k-300ep-lr_0.001-{run}"
    return Weights(
        tag="augreg-in1k" + ("" if size == 224 else f"-{size}"),
        sources=(
            HubFile(f"timm/{timm_name}_{size}.augreg_in1k", SAFETENSORS, "timm"),
            UrlFile(f"{GCS_VIT}/augreg/{upstream}--imagenet2012-steps_20k-lr_0.01-res_{size}.npz", "vit_jax"),
        ),
        pretrain=f"ImageNet-1k only (AugReg, 300 ep), fine-tuned on ImageNet-1k at {size}",
        preprocess=_timm_vit_pp(size),
        num_classes=1000,
        accuracies=accuracies,
        licence=GOOGLE_LICENCE,
    )


def augreg2_weights(*, timm_name, files, accuracies) -> Weights:
    return Weights(
        tag="augreg2-in21k-ft-in1k",
        sources=tuple(hub_files(f"timm/{timm_name}.augreg2_in21k_ft_in1k", files, "timm")),
        pretrain="ImageNet-21k (AugReg, 300 ep), re-fine-tuned on ImageNet-1k at 224 by timm",
        preprocess=_timm_vit_pp(224),
        num_classes=1000,
        accuracies=accuracies,
        notes="timm's own fine-tune of the AugReg upstream (no Google original); what timm's plain model name loads",
    )


def sam_weights(*, timm_name, gcs, accuracies) -> Weights:
    return Weights(
        tag="sam-in1k",
        sources=(HubFile(f"timm/{timm_name}.sam_in1k", SAFETENSORS, "timm"), UrlFile(f"{GCS_VIT}/{gcs}", "vit_jax")),
        pretrain="ImageNet-1k only, trained with SAM (arXiv 2106.01548)",
        preprocess=_timm_vit_pp(224),
        num_classes=1000,
        accuracies=accuracies,
        licence=GOOGLE_LICENCE,
    )


BIT_FT = f"fine-tuned on ImageNet-1k at {BIT_FT_RES} (BiT-HyperRule)"


def bit_eval_note(eval_size: int) -> str:
    return f"{eval_size} is timm's evaluation size for this file, not its fine-tuning resolution ({BIT_FT_RES})"


def bit_weights(*, name: str, eval_size: int, top1: float, bits: bool) -> list[Weights]:
    timm_name = "resnetv2_" + name.removeprefix("bit-r") + "_bit"
    arch = "R" + name.removeprefix("bit-r")
    ft, eval_note = BIT_FT, bit_eval_note(eval_size)
    ft_files = (SAFETENSORS, BIN) if arch == "R50x1" else (SAFETENSORS,)  # .bin confirmed for R50x1 only
    weights = [
        Weights(
            tag="bitm-in21k-ft-in1k",
            sources=(
                *hub_files(f"timm/{timm_name}.goog_in21k_ft_in1k", ft_files, "timm"),
                UrlFile(f"{GCS_BIT}/BiT-M-{arch}-ILSVRC2012.npz", "bit_jax"),
            ),
            pretrain=f"ImageNet-21k (BiT-M), {ft}",
            preprocess=timm_pp(eval_size, 1.0, "bilinear"),
            num_classes=1000,
            accuracies=(timm(top1),),
            licence=GOOGLE_LICENCE,
            notes=eval_note,
        ),
        Weights(
            tag="bitm-in21k",
            sources=(
                HubFile(f"timm/{timm_name}.goog_in21k", SAFETENSORS, "timm"),
                UrlFile(f"{GCS_BIT}/BiT-M-{arch}.npz", "bit_jax"),
            ),
            pretrain="ImageNet-21k (BiT-M)",
            preprocess=timm_pp(224, 0.875, "bilinear"),
            num_classes=21843,
            licence=GOOGLE_LICENCE,
        ),
    ]
    if bits:
        weights.append(
            Weights(
                tag="bits-in1k",
                sources=(UrlFile(f"{GCS_BIT}/BiT-S-{arch}.npz", "bit_jax"),),
                pretrain="ImageNet-1k (BiT-S upstream)",
                preprocess=timm_pp(224, 0.875, "bilinear"),
                num_classes=1000,
                licence=GOOGLE_LICENCE,
                notes="original bucket only (no Hub port); no published top-1 or evaluation preprocessing for the "
                "upstream file: the preprocessing shown is timm's default for BiT",
            )
        )
    return weights
