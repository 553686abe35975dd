"""scikit-learn's digits as a real mmpretrain dataset: the built-in default data.

The 1,797 8x8 digit images ship inside the scikit-learn wheel, so nothing is
downloaded. They are split once into a fixed, stratified train/test split,
upscaled to ``image_size`` RGB uint8 images and served like CIFAR-10 (the
``img`` array goes straight into the test pipeline).

``expand=N`` grows a split to N distinct images by deterministic augmentation
(small shifts, rotations and scalings); the benchmarks use it to get real
features at N = 2,000 ... 70,000.

Importing this module registers ``Digits`` in mmpretrain's ``DATASETS``
registry; configs name it through ``custom_imports``.
"""

from __future__ import annotations

import numpy as np
from mmpretrain.datasets.base_dataset import BaseDataset
from mmpretrain.registry import DATASETS

DIGIT_CLASSES = tuple(str(i) for i in range(10))


def split_indices(split: str, test_fraction: float = 0.3, seed: int = 0) -> np.ndarray:
    """Sorted indices into ``sklearn.datasets.load_digits()`` of the fixed stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    target = load_digits().target
    train_idx, test_idx = train_test_split(
        np.arange(len(target)), test_size=test_fraction, stratify=target, random_state=seed)
    return np.sort(train_idx if split == "train" else test_idx)


def digits_split(split: str, test_fraction: float = 0.3, seed: int = 0):
    """The fixed stratified split: ``(images 8x8 float in [0, 16], labels)``."""
    from sklearn.datasets import load_digits

    data = load_digits()
    pick = split_indices(split, test_fraction, seed)
    return data.images[pick], data.target[pick]


def to_rgb(images8: np.ndarray, size: int) -> np.ndarray:
    """(N, 8, 8) digits in [0, 16] -> (N, size, size, 3) uint8, white on black."""
    from PIL import Image

    out = np.empty((len(images8), size, size, 3), dtype=np.uint8)
    for i, im in enumerate(images8):
        arr = np.clip(im * (255.0 / 16.0), 0, 255).astype(np.uint8)
        big = np.asarray(Image.fromarray(arr).resize((size, size), Image.BILINEAR))
        out[i] = big[:, :, None]
    return out


def augment(images: np.ndarray, labels: np.ndarray, n: int, seed: int = 0):
    """Deterministically grow ``images`` to ``n`` distinct images.

    The originals come first; every further image is a random original under a
    small rotation (+-12 deg), scaling (0.85-1.15) and shift (+-2 px).
    """
    from PIL import Image

    if n <= len(images):
        return images[:n], labels[:n]
    rng = np.random.default_rng(seed)
    extra = n - len(images)
    src = rng.integers(0, len(images), size=extra)
    angles = rng.uniform(-12, 12, size=extra)
    scales = rng.uniform(0.85, 1.15, size=extra)
    shifts = rng.uniform(-2, 2, size=(extra, 2))
    size = images.shape[1]
    out = np.empty((extra,) + images.shape[1:], dtype=np.uint8)
    for j in range(extra):
        img = Image.fromarray(images[src[j]])
        img = img.rotate(angles[j], resample=Image.BILINEAR)
        s = scales[j]
        new = max(2, int(round(size * s)))
        img = img.resize((new, new), Image.BILINEAR)
        canvas = Image.new("RGB", (size, size))
        off = (size - new) // 2
        canvas.paste(img, (off + int(round(shifts[j, 0])), off + int(round(shifts[j, 1]))))
        out[j] = np.asarray(canvas)
    return np.concatenate([images, out]), np.concatenate([labels, labels[src]])


@DATASETS.register_module(force=True)
class Digits(BaseDataset):
    """scikit-learn's digits, CIFAR-style: ``dict(type='Digits', split='test')``.

    Args:
        split: ``'train'`` or ``'test'`` (a fixed stratified 70/30 split).
        image_size: side of the square RGB images (32 like CIFAR-10).
        expand: grow the split to this many images by augmentation.
        seed: the seed of the augmentation.
    """

    METAINFO = {"classes": DIGIT_CLASSES}

    def __init__(self, split: str = "test", image_size: int = 32,
                 expand: int | None = None, seed: int = 0, **kwargs):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', not {split!r}")
        self.split = split
        self.image_size = int(image_size)
        self.expand = expand
        self.seed = seed
        kwargs.setdefault("ann_file", "")
        super().__init__(**kwargs)

    def load_data_list(self):
        images8, labels = digits_split(self.split)
        images = to_rgb(images8, self.image_size)
        if self.expand:
            images, labels = augment(images, labels, int(self.expand), self.seed)
        tag = f"digits-{self.split}" + (f"-x{self.expand}-s{self.seed}" if self.expand else "")
        return [dict(img=img, gt_label=int(lab), sample_id=f"{tag}/{i:05d}")
                for i, (img, lab) in enumerate(zip(images, labels))]
