"""Numbers from the ViT paper, as data: Table 6 (the data behind Figure 5).

Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", ICLR 2021,
Appendix D (Table 6): models pre-trained on JFT-300M for 7 or 14 epochs, fine-tuned at 384, with the
pre-training compute in exaFLOPs. Figure 5 plots these accuracies against that compute to show that ViTs
reach a given accuracy with 2-4x less pre-training compute than ResNets (BiT), and that hybrids help at
small budgets.
"""

from __future__ import annotations

from dataclasses import dataclass

from vitzoo.zoo.configs import Family

CITATION = (
    "Dosovitskiy et al., An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale, "
    "ICLR 2021, Table 6 (JFT-300M pre-training; the data of Figure 5)"
)


@dataclass(frozen=True)
class ScalingRow:
    """One row of Table 6: top-1 accuracies (%) after fine-tuning, and pre-training exaFLOPs."""

    model: str  # the paper's name, e.g. "ViT-B/32", "ResNet50x1", "R50x1+ViT-B/16"
    family: Family
    epochs: int  # JFT-300M pre-training epochs
    imagenet: float
    real: float  # ImageNet ReaL
    cifar10: float
    cifar100: float
    pets: float
    flowers: float
    exaflops: float  # pre-training compute

    @property
    def label(self) -> str:
        """The model with its epochs, e.g. "ViT-L/16 (14 ep)"."""
        return f"{self.model} ({self.epochs} ep)"


def _rows(family: Family, table: str) -> tuple[ScalingRow, ...]:
    out = []
    for line in table.strip().splitlines():
        model, epochs, *accs, flops = line.split()
        out.append(ScalingRow(model, family, int(epochs), *map(float, accs), float(flops)))  # type: ignore[arg-type]
    return tuple(out)


# model  epochs  ImageNet  ReaL  C10  C100  Pets  Flowers  exaFLOPs
TABLE6: tuple[ScalingRow, ...] = (
    *_rows(
        "vit",
        """
        ViT-B/32 7 80.73 86.27 98.61 90.49 93.40 99.27 55
        ViT-B/16 7 84.15 88.85 99.00 91.87 95.80 99.56 224
        ViT-L/32 7 84.37 88.28 99.19 92.52 95.83 99.45 196
        ViT-L/16 7 86.30 89.43 99.38 93.46 96.81 99.66 783
        ViT-L/16 14 87.12 89.99 99.38 94.04 97.11 99.56 1567
        ViT-H/14 14 88.08 90.36 99.50 94.71 97.11 99.71 4262
        """,
    ),
    *_rows(
        "bit",
        """
        ResNet50x1 7 77.54 84.56 97.67 86.07 91.11 94.26 50
        ResNet50x2 7 82.12 87.94 98.29 89.20 93.43 97.02 199
        ResNet101x1 7 80.67 87.07 98.48 89.17 94.08 95.95 96
        ResNet152x1 7 81.88 87.96 98.82 90.22 94.17 96.94 141
        ResNet152x2 7 84.97 89.69 99.06 92.05 95.37 98.62 563
        ResNet152x2 14 85.56 89.89 99.24 91.92 95.75 98.75 1126
        ResNet200x3 14 87.22 90.15 99.34 93.53 96.32 99.04 3306
        """,
    ),
    *_rows(
        "hybrid",
        """
        R50x1+ViT-B/32 7 84.90 89.15 99.01 92.24 95.75 99.46 106
        R50x1+ViT-B/16 7 85.58 89.65 99.14 92.63 96.65 99.40 274
        R50x1+ViT-L/32 7 85.68 89.04 99.24 92.93 96.97 99.43 246
        R50x1+ViT-L/16 7 86.60 89.72 99.18 93.64 97.03 99.40 859
        R50x1+ViT-L/16 14 87.12 89.76 99.31 93.89 97.36 99.11 1668
        """,
    ),
)
