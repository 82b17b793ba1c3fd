"""The zoo as data: every architecture and checkpoint vitzoo knows, one row each, with its sources in order.

This is the only module that calls ``Registry.register``. Every checkpoint is one declaration: a row of the table
of its kind (how a row becomes a checkpoint with its sources, preprocessing and accuracies is
``vitzoo.zoo.checkpoints``), or an entry of ``DECLARED`` keyed by its full name; ``CATALOGUE`` holds them all, keyed
by full name. Hub repositories
and files are those of the ``google/*`` transformers ports and of timm's ``default_cfgs``
(``timm/models/vision_transformer.py``, ``vision_transformer_hybrid.py``, ``resnetv2.py``); the original files live
in Google's public buckets (``gs://vit_models``, ``gs://bit_models``).
"""

from __future__ import annotations

from vitzoo.zoo.checkpoints import (
    AUGREG,
    AUGREG_README,
    BIN,
    BIT_DISTILL_README,
    BIT_FT,
    GCS_BIT,
    GCS_VIT,
    GOOGLE_LICENCE,
    PAPER_T5,
    SAFETENSORS,
    VIT_PAPER,
    VIT_README_2020,
    augreg2_weights,
    augreg_ft_weights,
    augreg_in1k_weights,
    augreg_in21k_weights,
    authors,
    bit_eval_note,
    bit_weights,
    hub_files,
    orig_weights,
    sam_weights,
    timm,
    timm_pp,
)
from vitzoo.zoo.configs import BiTConfig, HybridConfig, ViTConfig, family_of
from vitzoo.zoo.preprocess import Preprocess
from vitzoo.zoo.registry import HubFile, ModelSpec, Registry, UrlFile, Weights

# Model sizes: (width D, depth L, heads H, MLP size M). Ti and S: vit_jax configs/models.py (AugReg paper).
SIZES = {
    "Ti": (192, 12, 3, 768),
    "S": (384, 12, 6, 1536),
    "B": (768, 12, 12, 3072),  # ViT paper Table 1
    "L": (1024, 24, 16, 4096),  # ViT paper Table 1
    "H": (1280, 32, 16, 5120),  # ViT paper Table 1
}


# fmt: off
# The architectures. stages: hybrid ResNet stages (None = plain ViT).
VIT_ARCHS = [
    dict(name="vit-ti16", title="ViT-Ti/16", size="Ti", patch=16, stages=None, default="augreg-in21k-ft-in1k-384", source=f"{AUGREG} ViT-Ti_16"),
    dict(name="vit-s16", title="ViT-S/16", size="S", patch=16, stages=None, default="augreg-in21k-ft-in1k-384", source=f"{AUGREG} ViT-S_16"),
    dict(name="vit-s32", title="ViT-S/32", size="S", patch=32, stages=None, default="augreg-in21k-ft-in1k-384", source=f"{AUGREG} ViT-S_32"),
    dict(name="vit-b8", title="ViT-B/8", size="B", patch=8, stages=None, default="augreg-in21k-ft-in1k", source=f"{AUGREG} ViT-B_8"),
    dict(name="vit-b16", title="ViT-B/16", size="B", patch=16, stages=None, default="orig-in21k-ft-in1k", source=f"{VIT_PAPER} Table 1"),
    dict(name="vit-b32", title="ViT-B/32", size="B", patch=32, stages=None, default="orig-in21k-ft-in1k-384", source=f"{VIT_PAPER} Table 1"),
    dict(name="vit-l16", title="ViT-L/16", size="L", patch=16, stages=None, default="orig-in21k-ft-in1k", source=f"{VIT_PAPER} Table 1"),
    dict(name="vit-l32", title="ViT-L/32", size="L", patch=32, stages=None, default="orig-in21k-ft-in1k-384", source=f"{VIT_PAPER} Table 1"),
    # No ImageNet-1k fine-tune of the paper's H/14 was published: its default is the feature extractor.
    dict(name="vit-h14", title="ViT-H/14", size="H", patch=14, stages=None, default="orig-in21k", source=f"{VIT_PAPER} Table 1"),
    dict(name="vit-r50-b16", title="R50+ViT-B/16", size="B", patch=1, stages=(3, 4, 9), default="orig-in21k-ft-in1k-384", source=f"{VIT_PAPER} Sec. 3.1 (ResNet-50 stages 1-3)"),
    dict(name="vit-r50-l32", title="R50+ViT-L/32", size="L", patch=1, stages=(3, 4, 6, 3), default="augreg-in21k-ft-in1k-384", source=f"{AUGREG} R50+ViT-L_32"),
    dict(name="vit-r26-s32", title="R26+ViT-S/32", size="S", patch=1, stages=(2, 2, 2, 2), default="augreg-in21k-ft-in1k-384", source=f"{AUGREG} R26+ViT-S_32"),
    dict(name="vit-r-ti16", title="R+ViT-Ti/16", size="Ti", patch=8, stages=(), default="augreg-in21k-ft-in1k-384", source=f"{AUGREG} R+ViT-Ti_16 (root only: /32)"),
]

# The 2020 paper checkpoints in their transformers ports on the Hub (google/*, converted via timm); `files` are
# the files each repository is known to hold, `timm_port` timm's copy of the same weights where it has one,
# `gcs` the original under GCS_VIT. classes 0: the ImageNet-21k upstream, whose head its authors zeroed (the Hub
# copy keeps the pre_logits "pooler"; the original .npz also holds the zeroed head, which loading drops).
ORIG = [
    dict(name="vit-b16", tag="orig-in21k-ft-in1k", repo="google/vit-base-patch16-224", files=(SAFETENSORS, BIN), size=224,
         timm_port="vit_base_patch16_224.orig_in21k_ft_in1k", gcs="imagenet21k+imagenet2012/ViT-B_16-224.npz", classes=1000,
         accuracies=(authors(81.2, VIT_README_2020), timm(81.786))),
    dict(name="vit-b16", tag="orig-in21k-ft-in1k-384", repo="google/vit-base-patch16-384", files=(BIN,), size=384,
         timm_port="vit_base_patch16_384.orig_in21k_ft_in1k", gcs="imagenet21k+imagenet2012/ViT-B_16.npz", classes=1000,
         accuracies=(authors(83.97, PAPER_T5), timm(84.200))),
    dict(name="vit-b16", tag="orig-in21k", repo="google/vit-base-patch16-224-in21k", files=(SAFETENSORS, BIN), size=224,
         gcs="imagenet21k/ViT-B_16.npz", classes=0),
    dict(name="vit-b32", tag="orig-in21k-ft-in1k-384", repo="google/vit-base-patch32-384", files=(BIN,), size=384,
         gcs="imagenet21k+imagenet2012/ViT-B_32.npz", classes=1000, accuracies=(authors(81.28, PAPER_T5),)),
    dict(name="vit-b32", tag="orig-in21k", repo="google/vit-base-patch32-224-in21k", files=(BIN,), size=224,
         gcs="imagenet21k/ViT-B_32.npz", classes=0),
    dict(name="vit-l16", tag="orig-in21k-ft-in1k", repo="google/vit-large-patch16-224", files=(BIN,), size=224,
         gcs="imagenet21k+imagenet2012/ViT-L_16-224.npz", classes=1000, accuracies=(authors(82.7, VIT_README_2020),)),
    dict(name="vit-l16", tag="orig-in21k-ft-in1k-384", repo="google/vit-large-patch16-384", files=(BIN,), size=384,
         gcs="imagenet21k+imagenet2012/ViT-L_16.npz", classes=1000, accuracies=(authors(85.15, PAPER_T5),)),
    dict(name="vit-l16", tag="orig-in21k", repo="google/vit-large-patch16-224-in21k", files=(BIN,), size=224,
         gcs="imagenet21k/ViT-L_16.npz", classes=0),
    dict(name="vit-l32", tag="orig-in21k-ft-in1k-384", repo="google/vit-large-patch32-384", files=(BIN,), size=384,
         timm_port="vit_large_patch32_384.orig_in21k_ft_in1k", gcs="imagenet21k+imagenet2012/ViT-L_32.npz", classes=1000,
         accuracies=(authors(80.99, PAPER_T5), timm(81.510))),
    dict(name="vit-l32", tag="orig-in21k", repo="google/vit-large-patch32-224-in21k", files=(BIN,), size=224,
         gcs="imagenet21k/ViT-L_32.npz", classes=0),
    # model.safetensors is listed but could not be confirmed; pytorch_model.bin is, so it follows.
    dict(name="vit-h14", tag="orig-in21k", repo="google/vit-huge-patch14-224-in21k", files=(SAFETENSORS, BIN), size=224,
         gcs="imagenet21k/ViT-H_14.npz", classes=0),
]

# AugReg (Steiner et al., 2021) ImageNet-21k checkpoints fine-tuned on ImageNet-1k, in their timm ports
# (timm/{timm_name}_{res}.augreg_in21k_ft_in1k). `run`: the upstream after "{model}-i21k-300ep-lr_0.001-";
# `lr`: the fine-tune's learning rate. The README's number is used where it is this very file; timm's is kept
# beside it. `pp`: the preprocessing the first accuracy was measured with ("vit_jax" for the README's, "timm").
AUGREG_FT = [
    dict(name="vit-ti16", timm_name="vit_tiny_patch16", size=224, model="Ti_16", run="aug_none-wd_0.03-do_0.0-sd_0.0", lr="0.03", pp="timm", accuracies=(timm(75.452),)),
    dict(name="vit-ti16", timm_name="vit_tiny_patch16", size=384, model="Ti_16", run="aug_none-wd_0.03-do_0.0-sd_0.0", lr="0.03", pp="vit_jax", accuracies=(authors(78.22, AUGREG_README), timm(78.424))),
    dict(name="vit-s16", timm_name="vit_small_patch16", size=224, model="S_16", run="aug_light1-wd_0.03-do_0.0-sd_0.0", lr="0.03", pp="timm", accuracies=(timm(81.402),)),
    dict(name="vit-s16", timm_name="vit_small_patch16", size=384, model="S_16", run="aug_light1-wd_0.03-do_0.0-sd_0.0", lr="0.03", pp="vit_jax", accuracies=(authors(83.73, AUGREG_README), timm(83.802))),
    dict(name="vit-s32", timm_name="vit_small_patch32", size=224, model="S_32", run="aug_light1-wd_0.03-do_0.0-sd_0.0", lr="0.03", pp="timm", accuracies=(timm(76.010),)),
    dict(name="vit-s32", timm_name="vit_small_patch32", size=384, model="S_32", run="aug_light1-wd_0.03-do_0.0-sd_0.0", lr="0.03", pp="timm", accuracies=(timm(80.476),)),
    dict(name="vit-b8", timm_name="vit_base_patch8", size=224, model="B_8", run="aug_medium1-wd_0.1-do_0.0-sd_0.0", lr="0.01", pp="timm", accuracies=(timm(85.838),)),
    dict(name="vit-b16", timm_name="vit_base_patch16", size=224, model="B_16", run="aug_medium1-wd_0.1-do_0.0-sd_0.0", lr="0.01", pp="timm", accuracies=(timm(84.534),)),
    dict(name="vit-b16", timm_name="vit_base_patch16", size=384, model="B_16", run="aug_medium1-wd_0.1-do_0.0-sd_0.0", lr="0.01", pp="timm", accuracies=(timm(86.010),)),
    dict(name="vit-b32", timm_name="vit_base_patch32", size=224, model="B_32", run="aug_medium1-wd_0.03-do_0.0-sd_0.0", lr="0.03", pp="timm", accuracies=(timm(80.732),)),
    dict(name="vit-b32", timm_name="vit_base_patch32", size=384, model="B_32", run="aug_light1-wd_0.1-do_0.0-sd_0.0", lr="0.03", pp="timm", accuracies=(timm(83.358),)),
    dict(name="vit-l16", timm_name="vit_large_patch16", size=224, model="L_16", run="aug_medium1-wd_0.1-do_0.1-sd_0.1", lr="0.01", pp="timm", accuracies=(timm(85.856),)),
    dict(name="vit-l16", timm_name="vit_large_patch16", size=384, model="L_16", run="aug_medium1-wd_0.1-do_0.1-sd_0.1", lr="0.01", pp="timm", accuracies=(timm(87.096),)),
    dict(name="vit-r50-l32", timm_name="vit_large_r50_s32", size=224, model="R50_L_32", run="aug_medium1-wd_0.1-do_0.1-sd_0.1", lr="0.01", pp="timm", accuracies=(timm(84.434),)),
    dict(name="vit-r50-l32", timm_name="vit_large_r50_s32", size=384, model="R50_L_32", run="aug_medium2-wd_0.1-do_0.0-sd_0.0", lr="0.01", pp="timm", accuracies=(timm(86.188),)),
    dict(name="vit-r26-s32", timm_name="vit_small_r26_s32", size=224, model="R26_S_32", run="aug_light0-wd_0.03-do_0.1-sd_0.1", lr="0.03", pp="timm", accuracies=(timm(81.856),)),
    dict(name="vit-r26-s32", timm_name="vit_small_r26_s32", size=384, model="R26_S_32", run="aug_medium2-wd_0.03-do_0.0-sd_0.0", lr="0.03", pp="timm", accuracies=(timm(84.066),)),
    dict(name="vit-r-ti16", timm_name="vit_tiny_r_s16_p8", size=224, model="R_Ti_16", run="aug_none-wd_0.03-do_0.0-sd_0.0", lr="0.03", pp="timm", accuracies=(timm(71.800),)),
    dict(name="vit-r-ti16", timm_name="vit_tiny_r_s16_p8", size=384, model="R_Ti_16", run="aug_none-wd_0.03-do_0.0-sd_0.0", lr="0.03", pp="vit_jax", accuracies=(authors(75.40, AUGREG_README), timm(75.962))),
]

# AugReg ImageNet-21k upstreams with their valid 21,843-class heads (no pre_logits): timm/{timm_name}.augreg_in21k.
AUGREG_IN21K = [
    dict(name="vit-ti16", timm_name="vit_tiny_patch16_224", model="Ti_16", run="aug_none-wd_0.03-do_0.0-sd_0.0"),
    dict(name="vit-s16", timm_name="vit_small_patch16_224", model="S_16", run="aug_light1-wd_0.03-do_0.0-sd_0.0"),
    dict(name="vit-s32", timm_name="vit_small_patch32_224", model="S_32", run="aug_light1-wd_0.03-do_0.0-sd_0.0"),
    dict(name="vit-b8", timm_name="vit_base_patch8_224", model="B_8", run="aug_medium1-wd_0.1-do_0.0-sd_0.0"),
    dict(name="vit-b16", timm_name="vit_base_patch16_224", model="B_16", run="aug_medium1-wd_0.1-do_0.0-sd_0.0"),
    dict(name="vit-b32", timm_name="vit_base_patch32_224", model="B_32", run="aug_medium1-wd_0.03-do_0.0-sd_0.0"),
    dict(name="vit-l16", timm_name="vit_large_patch16_224", model="L_16", run="aug_medium1-wd_0.1-do_0.1-sd_0.1"),
    dict(name="vit-r-ti16", timm_name="vit_tiny_r_s16_p8_224", model="R_Ti_16", run="aug_none-wd_0.03-do_0.0-sd_0.0"),
    dict(name="vit-r26-s32", timm_name="vit_small_r26_s32_224", model="R26_S_32", run="aug_medium2-wd_0.03-do_0.0-sd_0.0"),
    dict(name="vit-r50-l32", timm_name="vit_large_r50_s32_224", model="R50_L_32", run="aug_medium2-wd_0.1-do_0.0-sd_0.0"),
]

# AugReg trained on ImageNet-1k only (the paper's "small data" regime), then fine-tuned on it at 224 or 384:
# timm/{timm_name}_{res}.augreg_in1k from {model}-i1k-300ep-lr_0.001-{run}--imagenet2012-steps_20k-lr_0.01-res_{res}.
AUGREG_IN1K = [
    dict(name="vit-s16", timm_name="vit_small_patch16", size=224, model="S_16", run="aug_medium2-wd_0.1-do_0.0-sd_0.0", accuracies=(timm(78.846),)),
    dict(name="vit-s16", timm_name="vit_small_patch16", size=384, model="S_16", run="aug_medium2-wd_0.1-do_0.0-sd_0.0", accuracies=(timm(81.116),)),
    dict(name="vit-b16", timm_name="vit_base_patch16", size=224, model="B_16", run="aug_strong2-wd_0.1-do_0.1-sd_0.1", accuracies=(timm(79.154),)),
    dict(name="vit-b16", timm_name="vit_base_patch16", size=384, model="B_16", run="aug_strong2-wd_0.1-do_0.1-sd_0.1", accuracies=(timm(81.102),)),
    dict(name="vit-b32", timm_name="vit_base_patch32", size=224, model="B_32", run="aug_medium2-wd_0.1-do_0.1-sd_0.1", accuracies=(timm(74.894),)),
    dict(name="vit-b32", timm_name="vit_base_patch32", size=384, model="B_32", run="aug_medium2-wd_0.1-do_0.1-sd_0.1", accuracies=(timm(78.752),)),
]

# timm's own re-fine-tunes of the AugReg ImageNet-21k upstreams ("augreg2"; Hub only, not a Google file).
# timm's plain `vit_base_patch16_224` and `vit_base_patch8_224` load these today.
AUGREG2 = [
    dict(name="vit-b16", timm_name="vit_base_patch16_224", files=(SAFETENSORS, BIN), accuracies=(timm(85.096),)),
    dict(name="vit-b8", timm_name="vit_base_patch8_224", files=(SAFETENSORS,), accuracies=(timm(86.218),)),
]

# ViT trained on ImageNet-1k with SAM (Chen et al., arXiv 2106.01548): timm/{timm_name}.sam_in1k, originals gs://vit_models/sam/.
SAM = [
    dict(name="vit-b16", timm_name="vit_base_patch16_224", gcs="sam/ViT-B_16.npz", accuracies=(timm(80.244),)),
    dict(name="vit-b32", timm_name="vit_base_patch32_224", gcs="sam/ViT-B_32.npz", accuracies=(timm(73.694),)),
]

# BiT ResNet-v2 (arXiv 1912.11370). `eval_size`: the resolution timm evaluates the BiT-M ImageNet-1k fine-tune at
# (BiT-HyperRule fine-tuned all of them at 480); `top1`: timm's evaluation of that file. `bits`: a BiT-S
# (ImageNet-1k upstream) file exists in gs://bit_models (big_transfer README: R50x1, R101x1, R50x3, R101x3,
# R152x4; R152x2 came after the paper and is BiT-M only as far as the README says).
BIT_ARCHS = [
    dict(name="bit-r50x1", layers=(3, 4, 6, 3), width_factor=1, eval_size=448, top1=80.386, bits=True),
    dict(name="bit-r50x3", layers=(3, 4, 6, 3), width_factor=3, eval_size=448, top1=83.982, bits=True),
    dict(name="bit-r101x1", layers=(3, 4, 23, 3), width_factor=1, eval_size=448, top1=82.332, bits=True),
    dict(name="bit-r101x3", layers=(3, 4, 23, 3), width_factor=3, eval_size=448, top1=84.430, bits=True),
    dict(name="bit-r152x2", layers=(3, 8, 36, 3), width_factor=2, eval_size=448, top1=84.468, bits=False),
    dict(name="bit-r152x4", layers=(3, 8, 36, 3), width_factor=4, eval_size=480, top1=84.936, bits=True),
]
# fmt: on

# Checkpoints declared one by one, keyed by full name (arch.tag): those that no row table above describes. A
# checkpoint of a new kind is one entry here.
DECLARED: dict[str, Weights] = {
    # The hybrid of the paper is on the Hub in timm format only (timm/vit_base_r50_s16_*.orig_*).
    "vit-r50-b16.orig-in21k-ft-in1k-384": Weights(
        tag="orig-in21k-ft-in1k-384",
        sources=(
            *hub_files("timm/vit_base_r50_s16_384.orig_in21k_ft_in1k", (SAFETENSORS, BIN), "timm"),
            UrlFile(f"{GCS_VIT}/imagenet21k+imagenet2012/R50+ViT-B_16.npz", "vit_jax"),
        ),
        pretrain="ImageNet-21k (paper), fine-tuned on ImageNet-1k at 384",
        preprocess=timm_pp(384, 1.0),
        num_classes=1000,
        accuracies=(timm(84.988),),
        licence=GOOGLE_LICENCE,
    ),
    "vit-r50-b16.orig-in21k": Weights(
        tag="orig-in21k",
        sources=(
            HubFile("timm/vit_base_r50_s16_224.orig_in21k", SAFETENSORS, "timm"),
            UrlFile(f"{GCS_VIT}/imagenet21k/R50+ViT-B_16.npz", "vit_jax"),
        ),
        pretrain="ImageNet-21k (paper)",
        preprocess=timm_pp(224, 0.9),
        num_classes=0,
        zero_head=True,
        licence=GOOGLE_LICENCE,
        notes="timm removed the zeroed 21k head and the pre_logits layer (loading the original drops them too)",
    ),
    # The transformers port of the BiT-M R50x1 fine-tune (the same file as bitm-in21k-ft-in1k).
    "bit-r50x1.bitm-in21k-ft-in1k-hf": Weights(
        tag="bitm-in21k-ft-in1k-hf",
        sources=(
            HubFile("google/bit-50", BIN, "transformers"),
            UrlFile(f"{GCS_BIT}/BiT-M-R50x1-ILSVRC2012.npz", "bit_jax"),
        ),
        pretrain=f"ImageNet-21k (BiT-M), {BIT_FT}",
        preprocess=Preprocess(448, resize="shorter", crop_pct=1.0),
        num_classes=1000,
        accuracies=(timm(80.386),),
        licence=GOOGLE_LICENCE,
        notes=bit_eval_note(448),
    ),
    "bit-r50x1.distilled-in1k": Weights(
        tag="distilled-in1k",
        sources=(
            HubFile("timm/resnetv2_50x1_bit.goog_distilled_in1k", SAFETENSORS, "timm"),
            UrlFile(f"{GCS_BIT}/distill/R50x1_224.npz", "bit_jax"),
        ),
        pretrain="ImageNet-1k, distilled from BiT-M-R152x2 at 224 (arXiv 2106.05237)",
        preprocess=timm_pp(224, 0.875, "bicubic"),
        num_classes=1000,
        accuracies=(authors(82.8, BIT_DISTILL_README), timm(82.820)),
        licence=GOOGLE_LICENCE,
    ),
}


def _rows(table: list[dict], name: str) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "name"} for row in table if row["name"] == name]


def _catalogue() -> dict[str, Weights]:
    """Every checkpoint, keyed by its full name (arch.tag), in the order ``vitzoo list --all`` shows them: each
    architecture's rows, table by table, then its declared entries."""
    out: dict[str, Weights] = {}
    widths = {arch["name"]: SIZES[arch["size"]][0] for arch in VIT_ARCHS}
    for arch in [a["name"] for a in VIT_ARCHS] + [b["name"] for b in BIT_ARCHS]:
        if arch in widths:
            weights = [orig_weights(**row, width=widths[arch]) for row in _rows(ORIG, arch)]
            weights += [augreg_ft_weights(**row) for row in _rows(AUGREG_FT, arch)]
            weights += [augreg2_weights(**row) for row in _rows(AUGREG2, arch)]
            weights += [augreg_in21k_weights(**row) for row in _rows(AUGREG_IN21K, arch)]
            weights += [augreg_in1k_weights(**row) for row in _rows(AUGREG_IN1K, arch)]
            weights += [sam_weights(**row) for row in _rows(SAM, arch)]
        else:
            weights = [w for row in BIT_ARCHS if row["name"] == arch for w in bit_weights(**_bit_row(row))]
        out.update({f"{arch}.{w.tag}": w for w in weights})
        for full, w in DECLARED.items():
            if full.partition(".")[0] == arch:
                if full != f"{arch}.{w.tag}":
                    raise ValueError(f"DECLARED[{full!r}] has tag {w.tag!r}")
                out[full] = w
    return out


def _bit_row(row: dict) -> dict:
    return {k: row[k] for k in ("name", "eval_size", "top1", "bits")}


# Every checkpoint of the zoo, keyed by full name (arch.tag).
CATALOGUE = _catalogue()


def _weights_of(arch: str) -> tuple[Weights, ...]:
    return tuple(w for full, w in CATALOGUE.items() if full.partition(".")[0] == arch)


# The vit_jax `testing` config (21,390 params at 224 with 1000 classes). Its checkpoint does not exist on
# the Hub: vitzoo's tests generate the repository in a local Hub cache to exercise download + conversion.
TESTING = ModelSpec(
    name="testing",
    family="vit",
    config=ViTConfig(patch_size=16, width=10, depth=1, num_heads=2, mlp_dim=10),
    source="vit_jax configs/models.py get_testing_config (21,390 params)",
    weights=(
        Weights(
            tag="random-10cls",
            sources=(HubFile("vitzoo/testing", "testing.npz", "vit_jax"),),
            pretrain="none (random weights, generated by vitzoo's tests)",
            preprocess=Preprocess(224),
            num_classes=10,
            published=False,
            notes="a test architecture: its weights are not published; run it with random weights "
            "(--random-init, `vitzoo bench testing`, vitzoo.create('testing'))",
        ),
    ),
    default_tag="random-10cls",
    title="vit_jax testing config",
    hidden=True,  # a test fixture: never listed, never matched by a pattern, resolvable by its name
)


def build_registry() -> Registry:
    """Register every architecture of the zoo."""
    registry = Registry()
    for arch in VIT_ARCHS:
        width, depth, heads, mlp = SIZES[arch["size"]]
        backbone = None if arch["stages"] is None else HybridConfig(arch["stages"])
        config = ViTConfig(arch["patch"], width, depth, heads, mlp, backbone=backbone)
        weights = _weights_of(arch["name"])
        registry.register(
            ModelSpec(arch["name"], family_of(config), config, arch["source"], weights, arch["default"], arch["title"])
        )
    for row in BIT_ARCHS:
        layers, wf = row["layers"], row["width_factor"]
        source = "BiT paper (arXiv 1912.11370); big_transfer bit_pytorch/models.py"
        title = f"BiT ResNet-v2 {sum(layers) * 3 + 2}x{wf}"
        weights = _weights_of(row["name"])
        spec = ModelSpec(row["name"], "bit", BiTConfig(layers, wf), source, weights, "bitm-in21k-ft-in1k", title)
        registry.register(spec)
    registry.register(TESTING)
    return registry


REGISTRY = build_registry()
