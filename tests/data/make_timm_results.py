"""Write vitzoo/zoo/timm_results.csv: timm's published top-1/top-5 of the catalogue's timm files on six sets.

Reads timm's ``results/*.csv`` (huggingface/pytorch-image-models, commit aa4b5850c1543fa488abf260f18390eda46cf85d,
Apache-2.0) from ``../shared/data/timm-results`` beside the checkout (or the folder given as the first argument)
and keeps only the rows of the timm model tags that vitzoo's checkpoints name as a source (``HubFile`` repositories
``timm/<tag>``). Not run by the tests; tests/test_timm_results.py checks the file it wrote against numbers copied by
hand from timm's CSVs.

    python tests/data/make_timm_results.py [TIMM_RESULTS_DIR]   # default: ../shared/data/timm-results
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from vitzoo.zoo.catalog import REGISTRY
from vitzoo.zoo.timm_results import DATASETS, RESULTS_FILE, TIMM_FILES, timm_name

HEADER = (
    "# timm's published evaluations (results/*.csv of huggingface/pytorch-image-models, commit "
    "aa4b5850c1543fa488abf260f18390eda46cf85d, Apache-2.0), rows of vitzoo's timm files only; "
    "written by tests/data/make_timm_results.py\n"
)


def main(folder: Path) -> None:
    names = sorted({n for spec in REGISTRY for w in spec.weights if (n := timm_name(w)) is not None})
    table: dict[str, dict[str, tuple[str, str]]] = {n: {} for n in names}
    for dataset, file in TIMM_FILES.items():
        with open(folder / file, newline="") as f:
            for row in csv.DictReader(f):
                if row["model"] in table:
                    table[row["model"]][dataset] = (row["top1"], row["top5"])
    columns = ["model"] + [f"{d}_{k}" for d in DATASETS for k in ("top1", "top5")]
    with open(RESULTS_FILE, "w", newline="") as f:
        f.write(HEADER)
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for name in names:
            if table[name]:  # timm evaluated it (heads without ImageNet-1k classes are not in its results)
                writer.writerow([name] + [v for d in DATASETS for v in table[name].get(d, ("", ""))])
    print(f"wrote {RESULTS_FILE}: {sum(bool(t) for t in table.values())} of {len(names)} timm files")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[2].parent / "shared/data/timm-results")
