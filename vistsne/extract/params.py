"""Extract parameters: one frozen dataclass, validated in one place."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..errors import ParamError
from ..selection import DEFAULT_MAX_NUM_CLASS, DEFAULT_MAX_NUM_SAMPLES, RowSelection

VIS_STAGES = ("backbone", "neck", "pre_logits", "all")
POOLS = ("avg", "cls")
DTYPES = ("float32", "float16")
#: how the model computes (autocast), apart from how the features are stored (``dtype``)
PRECISIONS = ("float32", "bfloat16", "float16")
LAUNCHERS = ("none", "pytorch", "slurm")  # as vistsne.extract.distributed (which imports torch lazily)


def parse_backbone_stages(text) -> str | tuple[int, ...] | None:
    """``--backbone-stages``: ``all`` -> "all"; ``0,1,2`` (or ``0 1 2``) -> (0, 1, 2); None -> None."""
    if text is None:
        return None
    if str(text).strip().lower() == "all":
        return "all"
    try:
        out = tuple(int(t) for t in str(text).replace(",", " ").split())
    except ValueError:
        out = ()
    if not out:
        raise ParamError(f"--backbone-stages {text!r} is not all or a list of indices",
                         "pass all, or indices such as 0,1,2,3")
    return out


#: The default thumbnail side by the number of rows selected: (most rows, px), first match. Chosen by
#: what the thumbnails cost, uncompressed (side x side x 3 bytes a row): 48 px is 6,912 B a row, 138 MB
#: at 20,000 rows; 32 px is 3,072 B, 307 MB at 100,000; 16 px is 768 B, 768 MB at 1,000,000 (48 px
#: there would be 6.9 GB, read back whole by every page render).
THUMB_DEFAULTS = ((20_000, 48), (100_000, 32))
THUMB_BEYOND = 16


def thumb_default(rows: int) -> int:
    """The default ``--thumb-size`` for a selection of ``rows`` rows (see :data:`THUMB_DEFAULTS`)."""
    for most, px in THUMB_DEFAULTS:
        if rows <= most:
            return px
    return THUMB_BEYOND


@dataclass(frozen=True)
class ExtractParams:
    config: str
    checkpoint: str | None = None
    test_cfg: str | None = None
    cfg_options: tuple[str, ...] = ()
    images: str | None = None
    vis_stage: str = "all"
    class_idx: tuple[int, ...] | None = None
    max_num_class: int | None = DEFAULT_MAX_NUM_CLASS    # None: all classes
    max_num_samples: int | None = DEFAULT_MAX_NUM_SAMPLES  # None: every sample
    device: str | None = None          # None: cuda when available, else cpu (as the reference)
    batch_size: int | None = None      # None: the config's test_dataloader batch size
    num_workers: int | None = None     # None: the config's
    pool: str = "avg"
    dtype: str = "float32"
    precision: str = "float32"         # float32, or autocast to bfloat16 / float16 (channels-last convolutions)
    trust_checkpoint: bool = False
    allow_partial_checkpoint: bool = False  # use a checkpoint that leaves model weights unloaded
    image_size: int | None = None      # resize every image to this square size (a Resize in the pipeline)
    backbone_stages: str | tuple[int, ...] | None = None  # "all" or indices: override the backbone's out_indices
    thumb_size: int | None = None      # px per side; 0: none stored; None: by the selection's size (thumb_default)
    init_seed: int = 0                 # seeds random init when there is no checkpoint
    flush_rows: int = 1024             # rows buffered before a part is committed
    flush_seconds: float = 20.0        # ... or seconds
    launcher: str = "none"             # none | pytorch (torchrun) | slurm: how the ranks were started

    def validate(self) -> "ExtractParams":
        if self.vis_stage not in VIS_STAGES:
            raise ParamError(f"unknown --vis-stage {self.vis_stage!r}", f"choose from {', '.join(VIS_STAGES)}")
        if self.pool not in POOLS:
            raise ParamError(f"unknown --pool {self.pool!r}", "choose avg or cls")
        if self.dtype not in DTYPES:
            raise ParamError(f"unknown --dtype {self.dtype!r}", "choose float32 or float16")
        if self.precision not in PRECISIONS:
            raise ParamError(f"unknown --precision {self.precision!r}", f"choose from {', '.join(PRECISIONS)}")
        self.selection.validate()
        if self.batch_size is not None and self.batch_size < 1:
            raise ParamError("--batch-size must be at least 1", "pass a positive number")
        if self.num_workers is not None and self.num_workers < 0:
            raise ParamError("--num-workers must be 0 or more", "pass 0 to load in the main process")
        if self.device is not None and not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ParamError(f"unknown --device {self.device!r}", "use cpu, cuda or cuda:N")
        if self.backbone_stages is not None and self.backbone_stages != "all":
            if isinstance(self.backbone_stages, str) or not all(
                    isinstance(i, int) and not isinstance(i, bool) for i in self.backbone_stages) \
                    or not self.backbone_stages:
                raise ParamError(f"--backbone-stages {self.backbone_stages!r} is not 'all' or a list of indices",
                                 "pass all, or indices such as 0,1,2,3")
        if self.image_size is not None and not 8 <= int(self.image_size) <= 4096:
            raise ParamError(f"--image-size {self.image_size} is out of range", "pass 8 to 4096 pixels")
        if self.launcher not in LAUNCHERS:
            raise ParamError(f"unknown --launcher {self.launcher!r}", f"choose from {', '.join(LAUNCHERS)}")
        if self.thumb_size is not None and (isinstance(self.thumb_size, bool) or not (
                self.thumb_size == 0 or 8 <= int(self.thumb_size) <= 256)):
            raise ParamError(f"--thumb-size {self.thumb_size} is out of range",
                             "pass 8 to 256 pixels, 0 for no thumbnails, or leave it out for the default")
        return self

    @property
    def selection(self) -> RowSelection:
        """The rows asked for, as the other stages name them."""
        return RowSelection(self.class_idx, self.max_num_class, self.max_num_samples)

    def key_fields(self) -> dict:
        """The parameters that change stored values (the rest do not enter the key).

        ``thumb_size`` enters as resolved (:func:`thumb_default` when unset:
        ``extract.entry.entry_key`` resolves it before it computes the key), so
        entries made at 48 px before ``--thumb-size`` existed keep their keys.
        """
        out = {"pool": self.pool, "dtype": self.dtype,
               "thumb_size": None if self.thumb_size is None else int(self.thumb_size),
               "init_seed": self.init_seed if self.checkpoint is None else None}
        if self.precision != "float32":  # absent when float32: keys of entries made before it stay the same
            out["precision"] = self.precision
        if self.backbone_stages is not None:  # absent when unset: keys of entries made without it stay the same
            out["backbone_stages"] = self.backbone_stages if self.backbone_stages == "all" \
                else sorted(int(i) for i in self.backbone_stages)
        return out

    def with_thumb_size(self, rows: int) -> "ExtractParams":
        """These parameters with ``thumb_size`` resolved for a selection of ``rows`` rows (if unset)."""
        return self if self.thumb_size is not None else replace(self, thumb_size=thumb_default(int(rows)))

    def to_dict(self) -> dict:
        return asdict(self)
