"""The zoo as data: every architecture and checkpoint vitzoo knows, one row each, with its source.

This is the only module that calls ``Registry.register``. To add a variant or a checkpoint, add a row.
Hub repositories and files are those listed in ``shared/spec/formats.md`` §5 (the google/* transformers
ports, the timm/* ports); the original files live in Google's public buckets (``url``).
"""

from __future__ import annotations

from vitzoo.models import BiTConfig, HybridConfig, ViTConfig
from vitzoo.registry import Accuracy, HubFile, ModelSpec, Preprocess, Registry, Weights, family_of

# Citations, short enough for a table column. "vit_jax README" = google-research/vision_transformer README;
# "timm eval" = timm's results-imagenet.csv, a re-evaluation of this very file with its timm preprocessing.
PAPER_T5 = "ViT paper Table 5"
VIT_README_2020 = "vit_jax README (2020)"
AUGREG_README = "vit_jax README (AugReg)"
TIMM_EVAL = "timm eval"
GCS_VIT = "https://storage.googleapis.com/vit_models"
GCS_BIT = "https://storage.googleapis.com/bit_models"
AUGREG = "AugReg (arXiv 2106.10270); vit_jax configs/models.py"
VIT_PAPER = "ViT paper (arXiv 2010.11929)"

# Model sizes: (width D, depth L, heads H, MLP size M). Ti and S: vit_jax configs/models.py (AugReg paper).
SIZES = {
    "Ti": (192, 12, 3, 768),
    "S": (384, 12, 6, 1536),
    "B": (768, 12, 12, 3072),  # ViT paper Table 1
    "L": (1024, 24, 16, 4096),  # ViT paper Table 1
    "H": (1280, 32, 16, 5120),  # ViT paper Table 1
}

# fmt: off
# name, paper name, size, patch, hybrid ResNet stages (None = plain ViT), default tag, source of the architecture
VIT_ARCHS = [
    ("vit-ti16", "ViT-Ti/16", "Ti", 16, None, "augreg-in21k-ft-in1k-384", f"{AUGREG} ViT-Ti_16"),
    ("vit-s16", "ViT-S/16", "S", 16, None, "augreg-in21k-ft-in1k-384", f"{AUGREG} ViT-S_16"),
    ("vit-s32", "ViT-S/32", "S", 32, None, "augreg-in21k-ft-in1k-384", f"{AUGREG} ViT-S_32"),
    ("vit-b8", "ViT-B/8", "B", 8, None, "augreg-in21k-ft-in1k", f"{AUGREG} ViT-B_8"),
    ("vit-b16", "ViT-B/16", "B", 16, None, "orig-in21k-ft-in1k", f"{VIT_PAPER} Table 1"),
    ("vit-b32", "ViT-B/32", "B", 32, None, "orig-in21k-ft-in1k-384", f"{VIT_PAPER} Table 1"),
    ("vit-l16", "ViT-L/16", "L", 16, None, "orig-in21k-ft-in1k", f"{VIT_PAPER} Table 1"),
    ("vit-l32", "ViT-L/32", "L", 32, None, "orig-in21k-ft-in1k-384", f"{VIT_PAPER} Table 1"),
    # No ImageNet-1k fine-tune of the paper's H/14 was published: its default is the feature extractor.
    ("vit-h14", "ViT-H/14", "H", 14, None, "orig-in21k", f"{VIT_PAPER} Table 1"),
    ("vit-r50-b16", "R50+ViT-B/16", "B", 1, (3, 4, 9), "orig-in21k-ft-in1k-384", f"{VIT_PAPER} Sec. 3.1 (ResNet-50 stages 1-3)"),
    ("vit-r50-l32", "R50+ViT-L/32", "L", 1, (3, 4, 6, 3), "augreg-in21k-ft-in1k-384", f"{AUGREG} R50+ViT-L_32"),
    ("vit-r26-s32", "R26+ViT-S/32", "S", 1, (2, 2, 2, 2), "augreg-in21k-ft-in1k-384", f"{AUGREG} R26+ViT-S_32"),
    ("vit-r-ti16", "R+ViT-Ti/16", "Ti", 8, (), "augreg-in21k-ft-in1k-384", f"{AUGREG} R+ViT-Ti_16 (root only: /32)"),
]

# The 2020 paper checkpoints in their transformers ports on the Hub (google/*, converted via timm).
# name, tag, Hub repo, file, resolution, original file under GCS_VIT, classes, top-1, its source
# (classes 0: the ImageNet-21k upstream, whose head its authors zeroed; the Hub copy keeps the pre_logits "pooler")
ORIG = [
    ("vit-b16", "orig-in21k-ft-in1k", "google/vit-base-patch16-224", "model.safetensors", 224, "imagenet21k+imagenet2012/ViT-B_16-224.npz", 1000, 81.2, VIT_README_2020),
    ("vit-b16", "orig-in21k-ft-in1k-384", "google/vit-base-patch16-384", "pytorch_model.bin", 384, "imagenet21k+imagenet2012/ViT-B_16.npz", 1000, 83.97, PAPER_T5),
    ("vit-b16", "orig-in21k", "google/vit-base-patch16-224-in21k", "model.safetensors", 224, "imagenet21k/ViT-B_16.npz", 0, None, None),
    ("vit-b32", "orig-in21k-ft-in1k-384", "google/vit-base-patch32-384", "pytorch_model.bin", 384, "imagenet21k+imagenet2012/ViT-B_32.npz", 1000, 81.28, PAPER_T5),
    ("vit-b32", "orig-in21k", "google/vit-base-patch32-224-in21k", "pytorch_model.bin", 224, "imagenet21k/ViT-B_32.npz", 0, None, None),
    ("vit-l16", "orig-in21k-ft-in1k", "google/vit-large-patch16-224", "pytorch_model.bin", 224, "imagenet21k+imagenet2012/ViT-L_16-224.npz", 1000, 82.7, VIT_README_2020),
    ("vit-l16", "orig-in21k-ft-in1k-384", "google/vit-large-patch16-384", "pytorch_model.bin", 384, "imagenet21k+imagenet2012/ViT-L_16.npz", 1000, 85.15, PAPER_T5),
    ("vit-l16", "orig-in21k", "google/vit-large-patch16-224-in21k", "pytorch_model.bin", 224, "imagenet21k/ViT-L_16.npz", 0, None, None),
    ("vit-l32", "orig-in21k-ft-in1k-384", "google/vit-large-patch32-384", "pytorch_model.bin", 384, "imagenet21k+imagenet2012/ViT-L_32.npz", 1000, 80.99, PAPER_T5),
    ("vit-l32", "orig-in21k", "google/vit-large-patch32-224-in21k", "pytorch_model.bin", 224, "imagenet21k/ViT-L_32.npz", 0, None, None),
    ("vit-h14", "orig-in21k", "google/vit-huge-patch14-224-in21k", "model.safetensors", 224, "imagenet21k/ViT-H_14.npz", 0, None, None),
]

# AugReg (Steiner et al., 2021) ImageNet-21k checkpoints fine-tuned on ImageNet-1k, in their timm ports
# (timm/{timm_name}_{res}.augreg_in21k_ft_in1k). name, timm name, resolution, upstream run (after
# "{size}-i21k-300ep-lr_0.001-"), fine-tune lr, top-1, its source (the README's number where it is this very file).
AUGREG_FT = [
    ("vit-ti16", "vit_tiny_patch16", 224, "Ti_16", "aug_none-wd_0.03-do_0.0-sd_0.0", "0.03", 75.452, TIMM_EVAL),
    ("vit-ti16", "vit_tiny_patch16", 384, "Ti_16", "aug_none-wd_0.03-do_0.0-sd_0.0", "0.03", 78.22, AUGREG_README),
    ("vit-s16", "vit_small_patch16", 224, "S_16", "aug_light1-wd_0.03-do_0.0-sd_0.0", "0.03", 81.402, TIMM_EVAL),
    ("vit-s16", "vit_small_patch16", 384, "S_16", "aug_light1-wd_0.03-do_0.0-sd_0.0", "0.03", 83.73, AUGREG_README),
    ("vit-s32", "vit_small_patch32", 224, "S_32", "aug_light1-wd_0.03-do_0.0-sd_0.0", "0.03", 76.010, TIMM_EVAL),
    ("vit-s32", "vit_small_patch32", 384, "S_32", "aug_light1-wd_0.03-do_0.0-sd_0.0", "0.03", 80.476, TIMM_EVAL),
    ("vit-b8", "vit_base_patch8", 224, "B_8", "aug_medium1-wd_0.1-do_0.0-sd_0.0", "0.01", 85.838, TIMM_EVAL),
    ("vit-b16", "vit_base_patch16", 224, "B_16", "aug_medium1-wd_0.1-do_0.0-sd_0.0", "0.01", 84.534, TIMM_EVAL),
    ("vit-b16", "vit_base_patch16", 384, "B_16", "aug_medium1-wd_0.1-do_0.0-sd_0.0", "0.01", 86.010, TIMM_EVAL),
    ("vit-b32", "vit_base_patch32", 224, "B_32", "aug_medium1-wd_0.03-do_0.0-sd_0.0", "0.03", 80.732, TIMM_EVAL),
    ("vit-b32", "vit_base_patch32", 384, "B_32", "aug_light1-wd_0.1-do_0.0-sd_0.0", "0.03", 83.358, TIMM_EVAL),
    ("vit-l16", "vit_large_patch16", 224, "L_16", "aug_medium1-wd_0.1-do_0.1-sd_0.1", "0.01", 85.856, TIMM_EVAL),
    ("vit-l16", "vit_large_patch16", 384, "L_16", "aug_medium1-wd_0.1-do_0.1-sd_0.1", "0.01", 87.096, TIMM_EVAL),
    ("vit-r50-l32", "vit_large_r50_s32", 224, "R50_L_32", "aug_medium1-wd_0.1-do_0.1-sd_0.1", "0.01", 84.434, TIMM_EVAL),
    ("vit-r50-l32", "vit_large_r50_s32", 384, "R50_L_32", "aug_medium2-wd_0.1-do_0.0-sd_0.0", "0.01", 86.188, TIMM_EVAL),
    ("vit-r26-s32", "vit_small_r26_s32", 224, "R26_S_32", "aug_light0-wd_0.03-do_0.1-sd_0.1", "0.03", 81.856, TIMM_EVAL),
    ("vit-r26-s32", "vit_small_r26_s32", 384, "R26_S_32", "aug_medium2-wd_0.03-do_0.0-sd_0.0", "0.03", 84.066, TIMM_EVAL),
    ("vit-r-ti16", "vit_tiny_r_s16_p8", 224, "R_Ti_16", "aug_none-wd_0.03-do_0.0-sd_0.0", "0.03", 71.800, TIMM_EVAL),
    ("vit-r-ti16", "vit_tiny_r_s16_p8", 384, "R_Ti_16", "aug_none-wd_0.03-do_0.0-sd_0.0", "0.03", 75.40, AUGREG_README),
]
# AugReg ImageNet-21k upstreams (valid 21843-class head, no pre_logits): name, timm name, upstream run.
AUGREG_IN21K = [
    ("vit-b16", "vit_base_patch16_224", "B_16", "aug_medium1-wd_0.1-do_0.0-sd_0.0"),
]

# name, stage depths, width factor, BiT-M ImageNet-1k fine-tune resolution and its timm top-1.
# BiT paper (arXiv 1912.11370); big_transfer README; timm/resnetv2_*_bit.goog_in21k{,_ft_in1k}.
BIT_ARCHS = [
    ("bit-r50x1", (3, 4, 6, 3), 1, 448, 80.386),
    ("bit-r50x3", (3, 4, 6, 3), 3, 448, 83.982),
    ("bit-r101x1", (3, 4, 23, 3), 1, 448, 82.332),
    ("bit-r101x3", (3, 4, 23, 3), 3, 448, 84.430),
    ("bit-r152x2", (3, 8, 36, 3), 2, 448, 84.468),
    ("bit-r152x4", (3, 8, 36, 3), 4, 480, 84.936),
]
# fmt: on

# Preprocessing: the one the tag's reported accuracy was measured with. vit_jax (the paper, its README) resizes
# straight to the square with tf.image.resize, bilinear without antialiasing ("tf"; HF's ViTImageProcessor
# squashes with Pillow, which antialiases); timm's numbers were measured with its cfg: short side to
# size/crop_pct, centre crop, bicubic (ViT) or bilinear (BiT).
VIT_JAX_SOURCES = (PAPER_T5, VIT_README_2020, AUGREG_README)


def _timm_pp(size: int, crop_pct: float, interpolation: str = "bicubic") -> Preprocess:
    return Preprocess(size, resize="shorter", crop_pct=crop_pct, interpolation=interpolation)  # type: ignore[arg-type]


def _orig(tag, repo, filename, size, gcs, classes, top1, source, width) -> Weights:
    in21k = classes == 0
    return Weights(
        tag=tag,
        hub=HubFile(repo, filename, "transformers"),
        pretrain="ImageNet-21k (paper)" + ("" if in21k else f", fine-tuned on ImageNet-1k at {size}"),
        preprocess=Preprocess(size, resize="tf"),
        num_classes=classes,
        url=f"{GCS_VIT}/{gcs}",
        representation_size=width if in21k else None,
        accuracy=None if top1 is None else Accuracy(top1, source),
        zero_head=in21k,
        notes="the authors zeroed the 21k head; the Hub copy keeps only the pre_logits 'pooler'" if in21k else "",
    )


def _augreg_ft(timm_name, size, model, run, lr, top1, source) -> Weights:
    upstream = f"{model}-i21k-300ep-lr_0.001-{run}"
    vit_jax = source in VIT_JAX_SOURCES  # the README's own number: vit_jax's evaluation
    return Weights(
        tag="augreg-in21k-ft-in1k" + ("" if size == 224 else f"-{size}"),
        hub=HubFile(f"timm/{timm_name}_{size}.augreg_in21k_ft_in1k", "model.safetensors", "timm"),
        pretrain=f"ImageNet-21k (AugReg, 300 ep), fine-tuned on ImageNet-1k at {size}",
        preprocess=Preprocess(size, resize="tf") if vit_jax else _timm_pp(size, 0.9 if size == 224 else 1.0),
        num_classes=1000,
        url=f"{GCS_VIT}/augreg/{upstream}--imagenet2012-steps_20k-lr_{lr}-res_{size}.npz",
        accuracy=Accuracy(top1, source),
    )


def _augreg_in21k(timm_name, model, run) -> Weights:
    return Weights(
        tag="augreg-in21k",
        hub=HubFile(f"timm/{timm_name}.augreg_in21k", "model.safetensors", "timm"),
        pretrain="ImageNet-21k (AugReg, 300 ep)",
        preprocess=_timm_pp(224, 0.9),
        num_classes=21843,
        url=f"{GCS_VIT}/augreg/{model}-i21k-300ep-lr_0.001-{run}.npz",
    )


# The hybrid of the paper is on the Hub in timm format only (timm/vit_base_r50_s16_*.orig_*).
R50_B16 = [
    Weights(
        tag="orig-in21k-ft-in1k-384",
        hub=HubFile("timm/vit_base_r50_s16_384.orig_in21k_ft_in1k", "model.safetensors", "timm"),
        pretrain="ImageNet-21k (paper), fine-tuned on ImageNet-1k at 384",
        preprocess=_timm_pp(384, 1.0),
        num_classes=1000,
        url=f"{GCS_VIT}/imagenet21k+imagenet2012/R50+ViT-B_16.npz",
        accuracy=Accuracy(84.988, TIMM_EVAL),
    ),
    Weights(
        tag="orig-in21k",
        hub=HubFile("timm/vit_base_r50_s16_224.orig_in21k", "model.safetensors", "timm"),
        pretrain="ImageNet-21k (paper)",
        preprocess=_timm_pp(224, 0.9),
        num_classes=0,
        url=f"{GCS_VIT}/imagenet21k/R50+ViT-B_16.npz",
        zero_head=True,
        notes="timm removed the zeroed 21k head and the pre_logits layer",
    ),
]


def _vit_weights(name: str, width: int) -> list[Weights]:
    weights = [_orig(*row[1:], width) for row in ORIG if row[0] == name]
    weights += [_augreg_ft(*row[1:]) for row in AUGREG_FT if row[0] == name]
    weights += [_augreg_in21k(*row[1:]) for row in AUGREG_IN21K if row[0] == name]
    return weights + (R50_B16 if name == "vit-r50-b16" else [])


def _bit_weights(name: str, size: int, top1: float) -> list[Weights]:
    timm_name = "resnetv2_" + name.removeprefix("bit-r") + "_bit"
    stem = "BiT-M-R" + name.removeprefix("bit-r")
    weights = [
        Weights(
            tag="bitm-in21k-ft-in1k",
            hub=HubFile(f"timm/{timm_name}.goog_in21k_ft_in1k", "model.safetensors", "timm"),
            pretrain=f"ImageNet-21k (BiT-M), fine-tuned on ImageNet-1k at {size}",
            preprocess=_timm_pp(size, 1.0, "bilinear"),
            num_classes=1000,
            url=f"{GCS_BIT}/{stem}-ILSVRC2012.npz",
            accuracy=Accuracy(top1, TIMM_EVAL),
        ),
        Weights(
            tag="bitm-in21k",
            hub=HubFile(f"timm/{timm_name}.goog_in21k", "model.safetensors", "timm"),
            pretrain="ImageNet-21k (BiT-M)",
            preprocess=_timm_pp(224, 0.875, "bilinear"),
            num_classes=21843,
            url=f"{GCS_BIT}/{stem}.npz",
        ),
    ]
    if name == "bit-r50x1":  # the transformers port of the same BiT-M R50x1 fine-tune
        weights.append(
            Weights(
                tag="bitm-in21k-ft-in1k-hf",
                hub=HubFile("google/bit-50", "pytorch_model.bin", "transformers"),
                pretrain="ImageNet-21k (BiT-M), fine-tuned on ImageNet-1k at 448",
                preprocess=Preprocess(448, resize="shorter", crop_pct=1.0),
                num_classes=1000,
                url=f"{GCS_BIT}/{stem}-ILSVRC2012.npz",
                accuracy=Accuracy(top1, TIMM_EVAL),
            )
        )
    return weights


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
            hub=HubFile("vitzoo/testing", "testing.npz", "vit_jax"),
            pretrain="none (random weights, generated by vitzoo's tests)",
            preprocess=Preprocess(224),
            num_classes=10,
        ),
    ),
    default_tag="random-10cls",
    title="vit_jax testing config",
)


def build_registry() -> Registry:
    """Register every architecture of the zoo."""
    registry = Registry()
    for name, title, size, patch, stages, default, source in VIT_ARCHS:
        width, depth, heads, mlp = SIZES[size]
        backbone = None if stages is None else HybridConfig(stages)
        config = ViTConfig(patch, width, depth, heads, mlp, backbone=backbone)
        weights = tuple(_vit_weights(name, width))
        registry.register(ModelSpec(name, family_of(config), config, source, weights, default, title))
    for name, layers, wf, size, top1 in BIT_ARCHS:
        source = "BiT paper (arXiv 1912.11370); big_transfer bit_pytorch/models.py"
        title = f"BiT ResNet-v2 {sum(layers) * 3 + 2}x{wf}"
        weights = tuple(_bit_weights(name, size, top1))
        registry.register(ModelSpec(name, "bit", BiTConfig(layers, wf), source, weights, "bitm-in21k-ft-in1k", title))
    registry.register(TESTING)
    return registry


REGISTRY = build_registry()
