"""How :data:`colors.PALETTE` was made, and the colour distances it was
measured with. Nothing here runs when figures are drawn.

``python -m vistsne.render.palette`` prints the palette again: a greedy
farthest-point choice (each colour as far as possible from all before it)
over a 48 x 48 x 48 grid of sRGB colours with CIELAB lightness L* from 20 to
80 (no very light colours, so points read on white, and no near-black ones,
which small points make hard to tell apart), starting away from white and
from the grey of "other classes" (and at least 20 CIE76 units from that
grey). The distance of two colours is the smallest of their CIEDE2000,
CAM02-UCS and CIE76 differences, so that no pair is close by any of these
measures. It needs ``colorspacious`` (for CAM02-UCS), which vistsne
does not install: ``pip install colorspacious``.
"""

from __future__ import annotations

import numpy as np

GRID_STEPS = 48
LIGHTNESS = (20.0, 80.0)
AVOID = ("#ffffff", "#bfbfbf")  # the background and OTHER_COLOR (last)
GREY_CIE76 = 20.0  # every colour at least this far (CIE76) from OTHER_COLOR


def hex_to_rgb01(colors) -> np.ndarray:
    """(n, 3) sRGB in [0, 1] from ``"#rrggbb"`` strings."""
    return np.array([[int(c.lstrip("#")[i:i + 2], 16) / 255.0 for i in (0, 2, 4)]
                     for c in colors], dtype=float).reshape(-1, 3)


def rgb01_to_hex(rgb) -> str:
    return "#" + "".join(f"{int(round(float(v) * 255)):02x}" for v in rgb)


def srgb_to_lab(rgb) -> np.ndarray:
    """CIELAB (D65) of sRGB values in [0, 1], shape (..., 3)."""
    rgb = np.asarray(rgb, dtype=float)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def ciede2000(lab1, lab2) -> np.ndarray:
    """CIEDE2000 colour difference (kL = kC = kH = 1) of CIELAB arrays that
    broadcast, after Sharma, Wu and Dalal (2005), whose test data it matches."""
    L1, a1, b1 = np.moveaxis(np.asarray(lab1, dtype=float), -1, 0)
    L2, a2, b2 = np.moveaxis(np.asarray(lab2, dtype=float), -1, 0)
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25.0 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    zero = c1p * c2p == 0
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(zero, 0.0, dh)
    d_l, d_c = L2 - L1, c2p - c1p
    d_h = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    l_mean, cp_mean = (L1 + L2) / 2, (c1p + c2p) / 2
    h_sum = h1p + h2p
    h_mean = np.where(np.abs(h1p - h2p) > 180,
                      np.where(h_sum < 360, (h_sum + 360) / 2, (h_sum - 360) / 2), h_sum / 2)
    h_mean = np.where(zero, h_sum, h_mean)
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    d_theta = 30 * np.exp(-(((h_mean - 275) / 25) ** 2))
    r_c = 2 * np.sqrt(cp_mean ** 7 / (cp_mean ** 7 + 25.0 ** 7))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c = 1 + 0.045 * cp_mean
    s_h = 1 + 0.015 * cp_mean * t
    r_t = -np.sin(np.radians(2 * d_theta)) * r_c
    return np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2
                   + r_t * (d_c / s_c) * (d_h / s_h))


def pairwise_ciede2000(colors) -> np.ndarray:
    """(n, n) CIEDE2000 differences of ``"#rrggbb"`` colours."""
    lab = srgb_to_lab(hex_to_rgb01(colors))
    return ciede2000(lab[:, None], lab[None])


def generate(n: int = 60, steps: int = GRID_STEPS, lightness=LIGHTNESS,
             avoid=AVOID) -> list[str]:
    """The palette of :data:`colors.PALETTE` (see the module doc)."""
    from colorspacious import cspace_convert
    axis = np.linspace(0.0, 1.0, steps)
    rgb = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    lab = srgb_to_lab(rgb)
    grey = srgb_to_lab(hex_to_rgb01([avoid[-1]]))[0]
    keep = (lab[:, 0] >= lightness[0]) & (lab[:, 0] <= lightness[1]) \
        & (np.linalg.norm(lab - grey, axis=-1) > GREY_CIE76)
    rgb, lab = rgb[keep], lab[keep]
    ucs = cspace_convert(rgb, "sRGB1", "CAM02-UCS")

    def distance_to(color: np.ndarray) -> np.ndarray:
        d2000 = ciede2000(lab, srgb_to_lab(color)[None])
        ducs = np.linalg.norm(ucs - cspace_convert(color, "sRGB1", "CAM02-UCS")[None], axis=-1)
        d76 = np.linalg.norm(lab - srgb_to_lab(color)[None], axis=-1)
        return np.minimum(np.minimum(d2000, ducs), d76)

    nearest = np.full(len(rgb), np.inf)
    for color in hex_to_rgb01(avoid):
        nearest = np.minimum(nearest, distance_to(color))
    chosen: list[np.ndarray] = []
    while len(chosen) < n:
        i = int(np.argmax(nearest))
        chosen.append(rgb[i])
        nearest = np.minimum(nearest, distance_to(rgb[i]))
    return [rgb01_to_hex(c) for c in chosen]


if __name__ == "__main__":
    palette = generate()
    for row in range(0, len(palette), 6):
        print("    " + " ".join(f'"{c}",' for c in palette[row:row + 6]))
