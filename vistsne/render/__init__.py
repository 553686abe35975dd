"""Render stage: static figures, sweep sheets, thumbnail mosaics, the depth
figure, contact sheets and an interactive HTML page from plain numpy arrays
(see :class:`MapData`).

Importing this package is cheap: matplotlib, bokeh and Pillow are imported
inside the functions that need them.
"""

from .colors import MAX_COLORED, OTHER_COLOR, OTHER_LABEL, PALETTE, class_colors
from .contact import build_contact_sheet, render_contact_sheet
from .depth import build_depth_figure, render_depth
from .html import render_html, thumbnail_data_uris
from .params import (COLOR_FIELDS, FIELD_HINT, FIELD_HINT_COMMAND, FIELD_MISSING_WHY,
                     FIELD_TITLES, FORMATS, STATIC_FORMATS, MapData, RenderParams,
                     check_out_dir, color_suffix, missing_field_error, normalize_coords,
                     show_available)
from .static import (auto_point_size, build_map_figure, build_mosaic_image, build_sheet_figure,
                     draw_order, mosaic_subsample, render_map, render_maps, render_mosaic,
                     render_sheet)

__all__ = [
    "FORMATS", "STATIC_FORMATS", "RenderParams", "MapData", "class_colors", "check_out_dir",
    "render_map", "render_maps", "render_sheet", "render_mosaic", "render_html",
    "show_available", "build_map_figure", "build_sheet_figure", "build_mosaic_image",
    "normalize_coords", "auto_point_size", "draw_order", "mosaic_subsample",
    "thumbnail_data_uris", "PALETTE", "MAX_COLORED", "OTHER_COLOR", "OTHER_LABEL",
    "COLOR_FIELDS", "FIELD_TITLES", "FIELD_HINT", "FIELD_HINT_COMMAND", "FIELD_MISSING_WHY",
    "color_suffix", "missing_field_error", "build_depth_figure", "render_depth",
    "build_contact_sheet", "render_contact_sheet",
]
