#!/usr/bin/env python
"""MMPretrain's ``tools/visualization/vis_tsne.py``, served by vistsne.

Runs ``vistsne run`` with the same argv, so the reference's documented
commands work verbatim from the repository root, now cached:

    python tools/visualization/vis_tsne.py configs/resnet/resnet18_8xb16_cifar10.py \
        --checkpoint resnet18_b16x8_cifar10_20210528-bd6371c8.pth
"""

import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from vistsne.cli import main  # noqa: E402

if __name__ == "__main__":
    main(["run", *sys.argv[1:]])
