"""Build the model and read every stage's features in one forward pass (torch)."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from ..errors import DatasetError, ParamError, StageError

log = logging.getLogger("vistsne")


def pick_device(device: str | None) -> str:
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParamError(f"device {device} is not available on this machine", "use --device cpu")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            raise ParamError(f"device {device} does not exist ({torch.cuda.device_count()} GPUs)",
                             "use --device cuda:0")
    return device


def _import_custom(cfg) -> None:
    ci = cfg.get("custom_imports")
    if ci:
        from mmengine.utils import import_modules_from_strings

        import_modules_from_strings(**ci)


def backbone_depth(backbone) -> int | None:
    """How many stages (CNNs, Swin) or layers (ViT) a backbone has, whatever it outputs."""
    for attr in ("num_stages", "num_layers"):
        n = getattr(backbone, attr, None)
        if isinstance(n, int) and n > 0:
            return n
    for attr in ("stages", "layers", "res_layers"):
        seq = getattr(backbone, attr, None)
        if seq is not None and hasattr(seq, "__len__") and len(seq) > 0:
            return len(seq)
    return None


def build_model(cfg, device: str, seed: int = 0, backbone_stages=None):
    """The model of ``cfg``, in eval mode on ``device``; seeded random init.

    ``backbone_stages``: ``"all"`` or indices, to output those backbone stages
    (ViT: layers) in this pass instead of the config's ``out_indices``. The
    model is then built a second time with them; ``model.vistsne_added_keys``
    names the weights that exist only because of them (the per-stage norms of
    ConvNeXt and Swin), which no checkpoint of the config holds.
    """
    import torch
    from mmengine.registry import DefaultScope

    import mmpretrain.models  # noqa: F401  (fills the registry)
    from mmpretrain.registry import MODELS

    _import_custom(cfg)
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        model = MODELS.build(cfg.model)
        added: set[str] = set()
        if backbone_stages is not None:
            bb = getattr(model, "backbone", None)
            n = backbone_depth(bb) if bb is not None else None
            if n is None or not hasattr(bb, "out_indices"):
                raise ParamError(f"--backbone-stages needs a backbone with stages; {type(bb).__name__} has none "
                                 "that vistsne knows", "leave --backbone-stages out")
            wanted = list(range(n)) if backbone_stages == "all" else [int(i) for i in backbone_stages]
            bad = [i for i in wanted if not -n <= i < n]
            if bad:
                raise ParamError(f"--backbone-stages {bad[0]} is out of range: {type(bb).__name__} has {n} "
                                 f"{'layers' if hasattr(bb, 'num_layers') and not hasattr(bb, 'num_stages') else 'stages'}"
                                 f" (0 to {n - 1})", f"pass indices from 0 to {n - 1}, or all")
            wanted = sorted({i % n for i in wanted})
            before = set(model.state_dict())
            cfg.model.backbone.out_indices = tuple(wanted)
            torch.manual_seed(seed)
            model = MODELS.build(cfg.model)
            added = set(model.state_dict()) - before
    model.vistsne_added_keys = added
    return model.to(device).eval()


def build_dataset(cfg):
    """The test dataset, in test mode, never downloading."""
    import mmpretrain.datasets  # noqa: F401
    from mmengine.registry import DefaultScope

    from mmpretrain.registry import DATASETS

    _import_custom(cfg)
    ds_cfg = cfg.test_dataloader.dataset.copy()
    ds_cfg["test_mode"] = True
    with DefaultScope.overwrite_default_scope("mmpretrain"):
        cls = DATASETS.get(ds_cfg["type"]) if isinstance(ds_cfg["type"], str) else ds_cfg["type"]
        if cls is None:
            raise DatasetError(f"dataset type {ds_cfg['type']} is not registered",
                               "check the config's test_dataloader.dataset.type")
        if "download" in inspect.signature(cls.__init__).parameters:
            ds_cfg["download"] = False
        try:
            return DATASETS.build(ds_cfg)
        except (FileNotFoundError, RuntimeError, AssertionError, ValueError) as e:
            raise DatasetError(f"cannot build the test dataset {ds_cfg['type']}: {str(e).strip()[:300]}",
                               "check the dataset path in the config, or use --images DIR") from e


def dataset_labels_and_classes(dataset) -> tuple[Any, list[str]]:
    import numpy as np

    labels = np.asarray(dataset.get_gt_labels(), dtype=np.int64)
    if len(labels) == 0:
        raise DatasetError("the test dataset is empty", "check the dataset path, or use --images DIR")
    classes = dataset.metainfo.get("classes")
    n = int(labels.max()) + 1
    names = [str(c) for c in classes] if classes else [str(i) for i in range(n)]
    if len(names) < n:
        names += [str(i) for i in range(len(names), n)]
    return labels, names


def _same(a, b) -> bool:
    """Two stages' pooled features are the same numbers, up to float rounding (relative 1e-5)."""
    import torch

    if a.shape != b.shape:
        return False
    scale = float(a.abs().max()) if a.numel() else 0.0
    return bool(torch.allclose(a, b, rtol=1e-5, atol=1e-6 * max(scale, 1e-12)))


def identical_stages(out: dict, order: list[str], known: dict | None = None) -> dict[str, str]:
    """``{alias: canonical}`` for stages whose features equal an earlier stage's in ``order``.

    A ResNet's GAP neck is its pooled last stage and a linear head's
    ``pre_logits`` is the neck: such stages are stored once, under the first
    name in network order. ``known`` (from an earlier run): only those pairs
    are checked, so an entry never gains an alias for rows already stored apart.
    """
    if known is not None:
        return {a: c for a, c in known.items() if c and a in out and c in out and _same(out[a], out[c])}
    aliases: dict[str, str] = {}
    canon: list[str] = []
    for name in order:
        hit = next((c for c in canon if _same(out[name], out[c])), None)
        if hit is None:
            canon.append(name)
        else:
            aliases[name] = hit
    return aliases


def sample_ids(dataset) -> list[str]:
    """Each sample's identity: its file path relative to the dataset's image folder, else the
    dataset's own id (``sample_id`` in its data list), else ``<DatasetType>#<index>``."""
    import os

    prefix = getattr(dataset, "data_prefix", {}) or {}
    root = prefix.get("img_path") if isinstance(prefix, dict) else None
    root = root or getattr(dataset, "data_root", None) or ""
    name = type(dataset).__name__
    out = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        path = info.get("img_path")
        if path:
            path = str(path)
            if root and "://" not in path:
                try:
                    path = os.path.relpath(path, root)
                except ValueError:
                    pass
            out.append(path.replace(os.sep, "/"))
        elif info.get("sample_id") is not None:
            out.append(str(info["sample_id"]))
        else:
            out.append(f"{name}#{i}")
    return out


def pool(t, mode: str, has_cls_token: bool, n: int | None = None):
    """(N,C,H,W) -> global average; (N,L,C) -> token mean or class token; (N,C) as is.

    ``n``, the batch size, restores the batch axis that a module squeezed away
    from a batch of one (``x.squeeze()``), so that it pools as larger batches do.
    """
    if n == 1 and (t.ndim < 2 or t.shape[0] != 1):
        t = t.unsqueeze(0)
    if t.ndim == 4:
        return t.mean(dim=(2, 3))
    if t.ndim == 3:
        if mode == "cls":
            if not has_cls_token:
                raise ParamError("--pool cls needs a class token, and this backbone outputs none",
                                 "use --pool avg")
            return t[:, 0]
        return t.mean(dim=1)
    if t.ndim == 2:
        return t
    return t.reshape(t.shape[0], -1)


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


class StageReader:
    """Calls the model's parts once and returns every wanted stage, pooled.

    Stage names: ``backbone.<out index>`` per backbone output, ``neck`` (or
    ``neck.<i>`` when the neck returns several), ``pre_logits``.
    """

    #: how many top classes (and their softmax scores) are kept per row
    TOP_K = 5

    def __init__(self, model, vis_stage: str = "all", pool_mode: str = "avg", predictions: bool = True):
        self.model = model
        self.vis_stage = vis_stage
        self.pool_mode = pool_mode
        #: the head's class scores of the last batch (N x classes), when the model predicts
        self.scores = None
        head = getattr(model, "head", None)
        self.predicts = bool(predictions and vis_stage == "all" and head is not None
                             and callable(getattr(head, "predict", None)))
        bb = getattr(model, "backbone", None)
        self.has_cls_token = bool(getattr(bb, "with_cls_token", False)) and getattr(bb, "cls_token", None) is not None
        sig = inspect.signature(model.extract_feat).parameters if hasattr(model, "extract_feat") else {}
        self.staged = "stage" in sig  # ImageClassifier-like; else a self-supervisor
        self.notes: list[str] = []
        self._cls_note = False
        if vis_stage in ("neck", "pre_logits") and not self.staged:
            raise StageError(f"stage {vis_stage} is unknown for {type(model).__name__}, whose "
                             "extract_feat has no stage", "use --vis-stage backbone or all")
        if self.staged:
            if vis_stage == "neck" and not getattr(model, "with_neck", False):
                raise StageError(f"stage neck is unknown for this model: it has no neck",
                                 "use --vis-stage backbone, pre_logits or all")
            if vis_stage == "pre_logits" and not hasattr(getattr(model, "head", None), "pre_logits"):
                raise StageError("stage pre_logits is unknown for this model: its head has no pre_logits",
                                 "use --vis-stage backbone, neck or all")
        else:
            self._note(f"{type(model).__name__} extracts backbone features only; "
                       "no neck or pre_logits stage stored")
        if predictions and vis_stage == "all" and not self.predicts:
            self._note(f"{type(model).__name__} has no classification head: no predictions stored")
            self.predicts = False

    def _note(self, text: str) -> None:
        """Record a note once (the reader runs once per batch)."""
        if text not in self.notes:
            self.notes.append(text)

    def _backbone_names(self, n: int) -> list[str]:
        """``backbone.<out index>`` per output.

        Backbones emit their outputs in stage order whatever the order of
        ``out_indices`` (``(3, 1)`` gives stage 1, then stage 3), so the
        indices are sorted; numbering falls back to positions when they do
        not account for the outputs.
        """
        idx = getattr(getattr(self.model, "backbone", None), "out_indices", None)
        if isinstance(idx, int):
            idx = [idx]
        try:
            idx = sorted({int(i) for i in idx}) if idx is not None else None
        except (TypeError, ValueError):
            idx = None
        if idx is not None and len(idx) == n and idx[0] >= 0:
            return [f"backbone.{i}" for i in idx]
        return [f"backbone.{i}" for i in range(n)]

    def _pool(self, name: str, t, n: int):
        if self.pool_mode == "cls" and t.ndim == 4 and not self._cls_note:
            self._cls_note = True
            self._note(f"{name} is a feature map without tokens; --pool cls applies to token "
                       "outputs, so feature maps are averaged")
        return pool(t, self.pool_mode, self.has_cls_token, n)

    def __call__(self, inputs) -> dict:
        want = self.vis_stage
        out = {}
        m = self.model
        n = int(inputs.shape[0])
        if not self.staged:
            feats = _as_tuple(m.extract_feat(inputs))
            for name, t in zip(self._backbone_names(len(feats)), feats):
                out[name] = self._pool(name, t, n)
            return out
        x = m.backbone(inputs)
        feats = _as_tuple(x)
        if want in ("backbone", "all"):
            for name, t in zip(self._backbone_names(len(feats)), feats):
                out[name] = self._pool(name, t, n)
        if want == "backbone":
            return out
        with_neck = getattr(m, "with_neck", False)
        if with_neck:
            x = m.neck(x)
            if want in ("neck", "all"):
                nf = _as_tuple(x)
                names = ["neck"] if len(nf) == 1 else [f"neck.{i}" for i in range(len(nf))]
                for name, t in zip(names, nf):
                    out[name] = self._pool(name, t, n)
        elif want == "all":
            self._note("the model has no neck; no neck stage stored")
        if want in ("pre_logits", "all"):
            head = getattr(m, "head", None)
            if head is not None and hasattr(head, "pre_logits"):
                try:
                    out["pre_logits"] = self._pool("pre_logits", _as_tuple(head.pre_logits(x))[-1], n)
                except Exception as e:  # noqa: BLE001 - a head that cannot give pre-logits here
                    if want == "pre_logits":
                        raise StageError(f"stage pre_logits failed for this model: {e}",
                                         "use --vis-stage backbone or neck") from e
                    self._note(f"the head's pre_logits failed ({e.__class__.__name__}); not stored")
            elif want == "all":
                self._note("the model's head has no pre_logits; no pre_logits stage stored")
        if self.predicts:
            self.scores = self._predict(x)
        return out

    def _predict(self, x):
        """The head's own ``predict`` on the neck's output (as ``model.predict`` calls it): N x classes."""
        import torch

        try:
            samples = self.model.head.predict(x)
            return torch.stack([s.pred_score for s in samples]).float()
        except Exception as e:  # noqa: BLE001 - heads of self-supervised models and the like
            self._note(f"the head's predict failed ({e.__class__.__name__}): no predictions stored")
            self.predicts = False
            return None

    def top_k(self):
        """``(classes int32 N x k, scores float32 N x k)`` of the last batch, best first; None without."""
        import torch

        if self.scores is None:
            return None
        k = min(self.TOP_K, int(self.scores.shape[1]))
        scores, classes = torch.topk(self.scores, k, dim=1)
        return classes.to(torch.int32).cpu().numpy(), scores.cpu().numpy().astype("float32")


def default_stage(model) -> str:
    """The reference tool's stage when ``--vis-stage`` is not given."""
    sig = inspect.signature(model.extract_feat).parameters if hasattr(model, "extract_feat") else {}
    if "stage" in sig and sig["stage"].default is not inspect.Parameter.empty:
        return str(sig["stage"].default)
    return "backbone"


def thumbnails(inputs, size: int, bgr: bool):
    """uint8 (N, size, size, 3) RGB thumbnails of the pipeline's images."""
    import torch
    import torch.nn.functional as F

    x = inputs.float()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = x[:, :3]
    if bgr:
        x = x.flip(1)
    h, w = x.shape[-2:]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", antialias=True, align_corners=False)
    out = torch.zeros((x.shape[0], 3, size, size))
    top, left = (size - nh) // 2, (size - nw) // 2
    out[:, :, top:top + nh, left:left + nw] = x
    return out.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def native_cpu_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX), where oneDNN's bfloat16
    convolutions are fast; elsewhere torch emulates them."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


class Precision:
    """How the model computes: ``float32`` as built, or autocast to ``bfloat16`` / ``float16``.

    Reduced precision also puts the model and its 4-D inputs in channels-last
    layout, where oneDNN's (CPU) and cuDNN's (GPU) low-precision convolutions are
    fastest. ``float32`` changes nothing, so its features stay bit for bit those
    of every earlier run. Measured in the README (extraction, ``--precision``).
    """

    def __init__(self, precision: str, device: str):
        import torch

        self.name = precision
        self.device_type = "cuda" if str(device).startswith("cuda") else "cpu"
        if precision == "float16" and self.device_type == "cpu":
            raise ParamError("--precision float16 needs a CUDA device; float16 on the CPU is slower than float32",
                             "use --precision bfloat16 on the CPU")
        if precision == "bfloat16" and self.device_type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ParamError(f"{device} has no bfloat16 support", "use --precision float16 on this GPU")
        self.dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(precision)
        if precision == "bfloat16" and self.device_type == "cpu" and not native_cpu_bfloat16():
            log.warning(
                "this CPU has no bfloat16 units (AVX512-BF16 or AMX): bfloat16 is emulated, several times "
                "slower than float32 (measured: 14 against 115 img/s); use --precision float32 here")

    def model(self, model):
        """``model`` laid out for this precision (channels-last when reduced)."""
        import torch

        return model if self.dtype is None else model.to(memory_format=torch.channels_last)

    def inputs(self, x):
        import torch

        if self.dtype is None or getattr(x, "ndim", 0) != 4:
            return x
        return x.contiguous(memory_format=torch.channels_last)

    def autocast(self):
        """The context the forward pass runs in."""
        import contextlib

        import torch

        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)
