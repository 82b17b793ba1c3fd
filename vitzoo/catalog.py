"""The zoo as data: every architecture and checkpoint vitzoo knows, one row each, with its source.

This is the only module that calls ``Registry.register``. To add a variant, add a row.
Hub repositories and files are those listed in ``shared/spec/formats.md`` §5 (the google/* transformers
ports, the timm/* ports); the original files live in Google's public buckets (``url``).
"""

from __future__ import annotations

from vitzoo.models import BiTConfig, HybridConfig, ViTConfig
from vitzoo.registry import Accuracy, HubFile, ModelSpec, Preprocess, Registry, Weights, family_of

# Citations, short enough for a table column. "vit_jax README" = google-research/vision_transformer README;
# "timm eval" = timm's results-imagenet.csv, a re-evaluation of this very file with its timm preprocessing.
PAPER = "ViT paper"
VIT_README_2020 = "vit_jax README (2020)"
AUGREG_README = "vit_jax README (AugReg)"
TIMM_EVAL = "timm eval"
GCS_VIT = "https://storage.googleapis.com/vit_models"
GCS_BIT = "https://storage.googleapis.com/bit_models"

# Model sizes: (width D, depth L, heads H, MLP size M). Ti and S: vit_jax configs/models.py (AugReg paper).
SIZES = {
    "Ti": (192, 12, 3, 768),
    "S": (384, 12, 6, 1536),
    "B": (768, 12, 12, 3072),  # ViT paper Table 1
    "L": (1024, 24, 16, 4096),  # ViT paper Table 1
    "H": (1280, 32, 16, 5120),  # ViT paper Table 1
}

# name, paper name, size, patch, hybrid ResNet stages (None = plain ViT), source of the architecture
VIT_ARCHS = [
    ("vit-ti16", "ViT-Ti/16", "Ti", 16, None, "AugReg (arXiv 2106.10270); vit_jax configs/models.py ViT-Ti_16"),
    ("vit-s16", "ViT-S/16", "S", 16, None, "AugReg (arXiv 2106.10270); vit_jax configs/models.py ViT-S_16"),
    ("vit-s32", "ViT-S/32", "S", 32, None, "AugReg (arXiv 2106.10270); vit_jax configs/models.py ViT-S_32"),
    ("vit-b8", "ViT-B/8", "B", 8, None, "AugReg (arXiv 2106.10270); vit_jax configs/models.py ViT-B_8"),
    ("vit-b16", "ViT-B/16", "B", 16, None, "arXiv 2010.11929 Table 1, ViT-B/16"),
    ("vit-b32", "ViT-B/32", "B", 32, None, "arXiv 2010.11929 Table 1, ViT-B/32"),
    ("vit-l16", "ViT-L/16", "L", 16, None, "arXiv 2010.11929 Table 1, ViT-L/16"),
    ("vit-l32", "ViT-L/32", "L", 32, None, "arXiv 2010.11929 Table 1, ViT-L/32"),
    ("vit-h14", "ViT-H/14", "H", 14, None, "arXiv 2010.11929 Table 1, ViT-H/14"),
    (
        "vit-r50-b16",
        "R50+ViT-B/16",
        "B",
        1,
        (3, 4, 9),
        "arXiv 2010.11929 Sec. 3.1; vit_jax R50+ViT-B_16 (ResNet-50 stages 1-3)",
    ),
    (
        "vit-r50-l32",
        "R50+ViT-L/32",
        "L",
        1,
        (3, 4, 6, 3),
        "AugReg (arXiv 2106.10270); vit_jax configs/models.py R50+ViT-L_32",
    ),
    (
        "vit-r26-s32",
        "R26+ViT-S/32",
        "S",
        1,
        (2, 2, 2, 2),
        "AugReg (arXiv 2106.10270); vit_jax configs/models.py R26+ViT-S_32",
    ),
    (
        "vit-r-ti16",
        "R+ViT-Ti/16",
        "Ti",
        8,
        (),
        "AugReg (arXiv 2106.10270); vit_jax R+ViT-Ti_16 (root only, 8x8 patches: /32)",
    ),
]

# name, stage depths, width factor; BiT paper (arXiv 1912.11370) and big_transfer README.
BIT_ARCHS = [
    ("bit-r50x1", (3, 4, 6, 3), 1),
    ("bit-r50x3", (3, 4, 6, 3), 3),
    ("bit-r101x1", (3, 4, 23, 3), 1),
    ("bit-r101x3", (3, 4, 23, 3), 3),
    ("bit-r152x2", (3, 8, 36, 3), 2),
    ("bit-r152x4", (3, 8, 36, 3), 4),
]

# Preprocessing. vit_jax evaluates by resizing straight to the square (as HF's ViTImageProcessor does);
# timm's numbers were measured with its cfg: short side to size/crop_pct, centre crop, bicubic (ViT) or
# bilinear (BiT).
ORIG_PP = {224: Preprocess(224), 384: Preprocess(384)}


def _timm_pp(size: int, crop_pct: float, interpolation: str = "bicubic") -> Preprocess:
    return Preprocess(size, resize="shorter", crop_pct=crop_pct, interpolation=interpolation)  # type: ignore[arg-type]


def _orig(
    tag: str, repo: str, filename: str, size: int, gcs: str, classes: int, top1: float | None, source: str, rep=None
) -> Weights:
    """A 2020 paper checkpoint, in its transformers port on the Hub (google/*, converted via timm)."""
    in21k = classes == 0
    return Weights(
        tag=tag,
        hub=HubFile(repo, filename, "transformers"),
        pretrain="ImageNet-21k (paper)" + ("" if in21k else f", fine-tuned on ImageNet-1k at {size}"),
        preprocess=ORIG_PP[size],
        num_classes=classes,
        url=f"{GCS_VIT}/{gcs}",
        representation_size=rep,
        accuracy=None if top1 is None else Accuracy(top1, source),
        zero_head=in21k,
        notes="the authors zeroed the 21k head; the Hub copy keeps only the pre_logits 'pooler'" if in21k else "",
    )


def _augreg(tag: str, timm_name: str, size: int, upstream: str, lr: str, top1: float, source: str) -> Weights:
    """An AugReg checkpoint (Steiner et al., 2021) in its timm port; ``tag`` ends in -384 at 384."""
    in1k = "ft-in1k" in tag
    gcs = f"{GCS_VIT}/augreg/{upstream}.npz"
    if in1k:
        gcs = f"{GCS_VIT}/augreg/{upstream}--imagenet2012-steps_20k-lr_{lr}-res_{size}.npz"
    return Weights(
        tag=tag,
        hub=HubFile(f"timm/{timm_name}", "model.safetensors", "timm"),
        pretrain="ImageNet-21k (AugReg, 300 ep)" + (f", fine-tuned on ImageNet-1k at {size}" if in1k else ""),
        preprocess=_timm_pp(size, 0.9 if size == 224 else 1.0),
        num_classes=1000 if in1k else 21843,
        url=gcs,
        accuracy=Accuracy(top1, source) if in1k else None,
    )


_I21K = "i21k-300ep-lr_0.001"
VIT_WEIGHTS: dict[str, list[Weights]] = {
    "vit-ti16": [
        _augreg(
            "augreg-in21k-ft-in1k",
            "vit_tiny_patch16_224.augreg_in21k_ft_in1k",
            224,
            f"Ti_16-{_I21K}-aug_none-wd_0.03-do_0.0-sd_0.0",
            "0.03",
            75.452,
            TIMM_EVAL,
        ),
        _augreg(
            "augreg-in21k-ft-in1k-384",
            "vit_tiny_patch16_384.augreg_in21k_ft_in1k",
            384,
            f"Ti_16-{_I21K}-aug_none-wd_0.03-do_0.0-sd_0.0",
            "0.03",
            78.22,
            AUGREG_README,
        ),
    ],
    "vit-s16": [
        _augreg(
            "augreg-in21k-ft-in1k",
            "vit_small_patch16_224.augreg_in21k_ft_in1k",
            224,
            f"S_16-{_I21K}-aug_light1-wd_0.03-do_0.0-sd_0.0",
            "0.03",
            81.402,
            TIMM_EVAL,
        ),
        _augreg(
            "augreg-in21k-ft-in1k-384",
            "vit_small_patch16_384.augreg_in21k_ft_in1k",
            384,
            f"S_16-{_I21K}-aug_light1-wd_0.03-do_0.0-sd_0.0",
            "0.03",
            83.73,
            AUGREG_README,
        ),
    ],
    "vit-s32": [
        _augreg(
            "augreg-in21k-ft-in1k",
            "vit_small_patch32_224.augreg_in21k_ft_in1k",
            224,
            f"S_32-{_I21K}-aug_light1-wd_0.03-do_0.0-sd_0.0",
            "0.03",
            76.010,
            TIMM_EVAL,
        ),
        _augreg(
            "augreg-in21k-ft-in1k-384",
            "vit_small_patch32_384.augreg_in21k_ft_in1k",
            384,
            f"S_32-{_I21K}-aug_light1-wd_0.03-do_0.0-sd_0.0",
            "0.03",
            80.476,
            TIMM_EVAL,
        ),
    ],
    "vit-b8": [
        _augreg(
            "augreg-in21k-ft-in1k",
            "vit_base_patch8_224.augreg_in21k_ft_in1k",
            224,
            f"B_8-{_I21K}-aug_medium1-wd_0.1-do_0.0-sd_0.0",
            "0.01",
            85.838,
            TIMM_EVAL,
        ),
    ],
    "vit-b16": [
        _orig(
            "orig-in21k-ft-in1k",
            "google/vit-base-patch16-224",
            "model.safetensors",
            224,
            "imagenet21k+imagenet2012/ViT-B_16-224.npz",
            1000,
            81.2,
            VIT_README_2020,
        ),
        _orig(
            "orig-in21k-ft-in1k-384",
            "google/vit-base-patch16-384",
            "pytorch_model.bin",
            384,
            "imagenet21k+imagenet2012/ViT-B_16.npz",
            1000,
            83.97,
            f"{PAPER} Table 5",
        ),
        _orig(
            "orig-in21k",
            "google/vit-base-patch16-224-in21k",
            "model.safetensors",
            224,
            "imagenet21k/ViT-B_16.npz",
            0,
            None,
            "",
            rep=768,
        ),
        _augreg(
            "augreg-in21k-ft-in1k",
            "vit_base_patch16_224.augreg_in21k_ft_in1k",
            224,
            f"B_16-{_I21K}-aug_medium1-wd_0.1-do_0.0-sd_0.0",
            "0.01",
            84.534,
            TIMM_EVAL,
        ),
        _augreg(
            "augreg-in21k-ft-in1k-384",
            "vit_base_patch16_384.augreg_in21k_ft_in1k",
            384,
            f"B_16-{_I21K}-aug_medium1-wd_0.1-do_0.0-sd_0.0",
            "0.01",
            86.010,
            TIMM_EVAL,
        ),
        _augreg(
            "augreg-in21k",
            "vit_base_patch16_224.augreg_in21k",
            224,
            f"B_16-{_I21K}-aug_medium1-wd_0.1-do_0.0-sd_0.0",
            "",
            0.0,
            "",
        ),
    ],
    "vit-b32": [
        _orig(
            "orig-in21k-ft-in1k-384",
            "google/vit-base-patch32-384",
            "pytorch_model.bin",
            384,
            "imagenet21k+imagenet2012/ViT-B_32.npz",
            1000,
            81.28,
            f"{PAPER} Table 5",
        ),
        _orig(
            "orig-in21k",
            "google/vit-base-patch32-224-in21k",
            "pytorch_model.bin",
            224,
            "imagenet21k/ViT-B_32.npz",
            0,
            None,
            "",
            rep=768,
        ),
        _augreg(
            "augreg-in21k-ft-in1k",
            "vit_base_patch32_224.augreg_in21k_ft_in1k",
            224,
            f"B_32-{_I21K}-aug_medium1-wd_0.03-do_0.0-sd_0.0",
            "0.03",
            80.732,
            TIMM_EVAL,
        ),
        _augreg(
            "augreg-in21k-ft-in1k-384",
            "vit_base_patch32_384.augreg_in21k_ft_in1k",
            384,
            f"B_32-{_I21K}-aug_light1-wd_0.1-do_0.0-sd_0.0",
            "0.03",
            83.358,
            TIMM_EVAL,
        ),
    ],
    "vit-l16": [
        _orig(
            "orig-in21k-ft-in1k",
            "google/vit-large-patch16-224",
            "pytorch_model.bin",
            224,
            "imagenet21k+imagenet2012/ViT-L_16-224.npz",
            1000,
            82.7,
            VIT_README_2020,
        ),
        _orig(
            "orig-in21k-ft-in1k-384",
            "google/vit-large-patch16-384",
            "pytorch_model.bin",
            384,
            "imagenet21k+imagenet2012/ViT-L_16.npz",
            1000,
            85.15,
            f"{PAPER} Table 5",
        ),
        _orig(
            "orig-in21k",
            "google/vit-large-patch16-224-in21k",
            "pytorch_model.bin",
            224,
            "imagenet21k/ViT-L_16.npz",
            0,
            None,
            "",
            rep=1024,
        ),
        _augreg(
            "augreg-in21k-ft-in1k",
            "vit_large_patch16_224.augreg_in21k_ft_in1k",
            224,
            f"L_16-{_I21K}-aug_medium1-wd_0.1-do_0.1-sd_0.1",
            "0.01",
            85.856,
            TIMM_EVAL,
        ),
        _augreg(
            "augreg-in21k-ft-in1k-384",
            "vit_large_patch16_384.augreg_in21k_ft_in1k",
            384,
            f"L_16-{_I21K}-aug_medium1-wd_0.1-do_0.1-sd_0.1",
            "0.01",
            87.096,
            TIMM_EVAL,
        ),
    ],
    "vit-l32": [
        _orig(
            "orig-in21k-ft-in1k-384",
            "google/vit-large-patch32-384",
            "pytorch_model.bin",
            384,
            "imagenet21k+imagenet2012/ViT-L_32.npz",
            1000,
            80.99,
            f"{PAPER} Table 5",
        ),
        _orig(
            "orig-in21k",
            "google/vit-large-patch32-224-in21k",
            "pytorch_model.bin",
            224,
            "imagenet21k/ViT-L_32.npz",
            0,
            None,
            "",
            rep=1024,
        ),
    ],
    "vit-h14": [
        _orig(
            "orig-in21k",
            "google/vit-huge-patch14-224-in21k",
            "model.safetensors",
            224,
            "imagenet21k/ViT-H_14.npz",
            0,
            None,
            "",
            rep=1280,
        ),
    ],
    "vit-r50-b16": [
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
    ],
    "vit-r50-l32": [
        _augreg(
            "augreg-in21k-ft-in1k",
            "vit_large_r50_s32_224.augreg_in21k_ft_in1k",
            224,
            f"R50_L_32-{_I21K}-aug_medium1-wd_0.1-do_0.1-sd_0.1",
            "0.01",
            84.434,
            TIMM_EVAL,
        ),
        _augreg(
            "augreg-in21k-ft-in1k-384",
            "vit_large_r50_s32_384.augreg_in21k_ft_in1k",
            384,
            f"R50_L_32-{_I21K}-aug_medium2-wd_0.1-do_0.0-sd_0.0",
            "0.01",
            86.188,
            TIMM_EVAL,
        ),
    ],
    "vit-r26-s32": [
        _augreg(
            "augreg-in21k-ft-in1k",
            "vit_small_r26_s32_224.augreg_in21k_ft_in1k",
            224,
            f"R26_S_32-{_I21K}-aug_light0-wd_0.03-do_0.1-sd_0.1",
            "0.03",
            81.856,
            TIMM_EVAL,
        ),
        _augreg(
            "augreg-in21k-ft-in1k-384",
            "vit_small_r26_s32_384.augreg_in21k_ft_in1k",
            384,
            f"R26_S_32-{_I21K}-aug_medium2-wd_0.03-do_0.0-sd_0.0",
            "0.03",
            84.066,
            TIMM_EVAL,
        ),
    ],
    "vit-r-ti16": [
        _augreg(
            "augreg-in21k-ft-in1k",
            "vit_tiny_r_s16_p8_224.augreg_in21k_ft_in1k",
            224,
            f"R_Ti_16-{_I21K}-aug_none-wd_0.03-do_0.0-sd_0.0",
            "0.03",
            71.800,
            TIMM_EVAL,
        ),
        _augreg(
            "augreg-in21k-ft-in1k-384",
            "vit_tiny_r_s16_p8_384.augreg_in21k_ft_in1k",
            384,
            f"R_Ti_16-{_I21K}-aug_none-wd_0.03-do_0.0-sd_0.0",
            "0.03",
            75.40,
            AUGREG_README,
        ),
    ],
}

VIT_DEFAULTS = {
    "vit-ti16": "augreg-in21k-ft-in1k-384",
    "vit-s16": "augreg-in21k-ft-in1k-384",
    "vit-s32": "augreg-in21k-ft-in1k-384",
    "vit-b8": "augreg-in21k-ft-in1k",
    "vit-b16": "orig-in21k-ft-in1k",
    "vit-b32": "orig-in21k-ft-in1k-384",
    "vit-l16": "orig-in21k-ft-in1k",
    "vit-l32": "orig-in21k-ft-in1k-384",
    "vit-h14": "orig-in21k",  # no ImageNet-1k fine-tune of the paper's H/14 was published
    "vit-r50-b16": "orig-in21k-ft-in1k-384",
    "vit-r50-l32": "augreg-in21k-ft-in1k-384",
    "vit-r26-s32": "augreg-in21k-ft-in1k-384",
    "vit-r-ti16": "augreg-in21k-ft-in1k-384",
}

# BiT-M (ImageNet-21k) checkpoints, timm ports; (fine-tune resolution, timm top-1 at it).
BIT_FT = {
    "bit-r50x1": (448, 80.386),
    "bit-r50x3": (448, 83.982),
    "bit-r101x1": (448, 82.332),
    "bit-r101x3": (448, 84.430),
    "bit-r152x2": (448, 84.468),
    "bit-r152x4": (480, 84.936),
}


def _bit_weights(name: str) -> list[Weights]:
    size, top1 = BIT_FT[name]
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
    for name, title, size, patch, stages, source in VIT_ARCHS:
        width, depth, heads, mlp = SIZES[size]
        backbone = None if stages is None else HybridConfig(stages)
        config = ViTConfig(patch, width, depth, heads, mlp, backbone=backbone)
        weights = tuple(VIT_WEIGHTS[name])
        registry.register(ModelSpec(name, family_of(config), config, source, weights, VIT_DEFAULTS[name], title))
    for name, layers, wf in BIT_ARCHS:
        config = BiTConfig(layers, wf)
        source = "BiT paper (arXiv 1912.11370); big_transfer bit_pytorch/models.py"
        title = f"BiT ResNet-v2 {sum(layers) * 3 + 2}x{wf}"
        registry.register(
            ModelSpec(name, "bit", config, source, tuple(_bit_weights(name)), "bitm-in21k-ft-in1k", title)
        )
    registry.register(TESTING)
    return registry


REGISTRY = build_registry()
