"""Synthetic axial head anatomy: tissue maps and MR contrast, without coils or noise.

The anatomy comes from the MNI152 2009a symmetric templates that ``nilearn``
ships in its package data (T1, grey-matter and white-matter probability maps,
1 mm, 197 x 233 x 189). They are skull-stripped averages of 152 brains, so a
volume gets, on top of the brain, layers built from the signed distance to the
closed brain hull (CSF rim, inner table, diploe, outer table, fat, skin and
muscle) with random thickness, a random pose and smooth deformation, random
axial slice positions in the range that holds brain, partial-volume averaging
over the slice thickness and a fine multiplicative texture. Where the
templates are missing (``nilearn`` not installed), a procedural head phantom
with the same channels takes their place, with a warning.

Everything here is float numpy/torch on the CPU and deterministic for a given
``numpy.random.Generator``.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

TEMPLATE_FILES = {
    name: f"mni_icbm152_{name}_tal_nlin_sym_09a_converted.nii.gz" for name in ("t1", "gm", "wm")
}

# Relative tissue intensities per acquisition (fastMRI brain names). Each volume
# jitters every value by up to +-5 %.
CONTRASTS: dict[str, dict[str, float]] = {
    "AXT1": dict(wm=1.00, gm=0.62, csf=0.16, fat=1.20, marrow=0.90, skin=0.50, bone=0.04),
    "AXT2": dict(wm=0.40, gm=0.60, csf=1.25, fat=0.95, marrow=0.70, skin=0.32, bone=0.03),
    "AXPD": dict(wm=0.66, gm=0.85, csf=1.00, fat=1.00, marrow=0.80, skin=0.55, bone=0.04),
}
_HEAD_HALF_MM = 135.0  # no head reaches further from the image centre
_LAYERS = ("csf", "bone", "marrow", "bone", "fat", "skin")  # outward from the brain hull
_LAYER_MM = ((1.0, 2.5), (0.8, 1.8), (1.0, 3.5), (0.8, 1.5), (2.0, 5.0), (1.0, 2.5))


@dataclass(frozen=True)
class HeadTemplate:
    """A 3D head model on an axis-aligned grid, ready for ``grid_sample``.

    Attributes:
        volume: channels (t1 / white-matter level, grey matter, white matter,
            signed distance to the brain hull in mm, negative inside),
            ``(1, 4, Z, Y, X)`` float32.
        origin_mm: RAS position of voxel ``(0, 0, 0)``, ``(x, y, z)``.
        spacing_mm: voxel size ``(x, y, z)``.
        center_mm: centre of the brain in ``(x, y)``.
        z_range_mm: axial range whose slices hold a large section of brain.
        source: ``"mni152"`` or ``"procedural"``.
    """

    volume: torch.Tensor
    origin_mm: tuple[float, float, float]
    spacing_mm: tuple[float, float, float]
    center_mm: tuple[float, float]
    z_range_mm: tuple[float, float]
    source: str


@dataclass(frozen=True)
class HeadSlices:
    """Sampled anatomy of one volume.

    Attributes:
        image: real, non-negative magnitude image, ``(S, H, W)`` float32.
        acquisition: contrast name, a key of :data:`CONTRASTS`.
        slice_mm: template axial position of each slice centre, ``(S,)``.
        slice_thickness_mm: slab thickness averaged per slice.
        source: ``"mni152"`` or ``"procedural"``.
    """

    image: np.ndarray
    acquisition: str
    slice_mm: np.ndarray
    slice_thickness_mm: float
    source: str


def template_dir() -> Path | None:
    """The folder of nilearn's MNI152 templates, or ``None`` if absent.

    Located through ``importlib`` without importing ``nilearn`` (which would
    pull in scikit-learn and take seconds).
    """
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return folder if all((folder / f).is_file() for f in TEMPLATE_FILES.values()) else None


def head_template(rng: np.random.Generator, pixel_mm: float) -> HeadTemplate:
    """The MNI152 head model (cached), or a fresh procedural one with a warning.

    Args:
        rng: used only by the procedural fallback.
        pixel_mm: in-plane pixel size the model will be sampled at; coarser
            pixels get a matching anti-aliasing blur.
    """
    folder = template_dir()
    if folder is None:
        warnings.warn(
            "nilearn's MNI152 templates were not found (pip install nilearn); "
            "using procedural head phantoms instead",
            stacklevel=2,
        )
        return _blurred(_procedural_template(rng), pixel_mm)
    return _mni_template(str(folder), round(pixel_mm, 1))


def sample_head(
    rng: np.random.Generator,
    template: HeadTemplate,
    num_slices: int,
    shape: tuple[int, int],
    pixel_mm: float,
    acquisition: str,
) -> HeadSlices:
    """Random axial slices of one head in one contrast.

    The head is centred in the ``(H, W)`` grid with anterior at the top (row 0)
    and the patient's right on the image left (radiological convention).

    Args:
        rng: the volume's random generator.
        template: from :func:`head_template`.
        num_slices: ``S``, ordered inferior to superior.
        shape: image grid ``(H, W)``.
        pixel_mm: isotropic in-plane pixel size.
        acquisition: a key of :data:`CONTRASTS`.
    """
    if acquisition not in CONTRASTS:
        raise ValueError(f"unknown acquisition {acquisition!r}; use one of {list(CONTRASTS)}")
    # Only the central part of an oversampled grid can hold the head.
    H, W = shape
    h, w = (min(n, 2 * math.ceil(_HEAD_HALF_MM / pixel_mm)) for n in shape)
    maps, z_mm, thickness = _sample_maps(rng, template, num_slices, (h, w), pixel_mm)
    image = np.zeros((num_slices, H, W), dtype=np.float32)
    r0, c0 = H // 2 - h // 2, W // 2 - w // 2
    image[:, r0 : r0 + h, c0 : c0 + w] = _render(rng, maps, acquisition, pixel_mm)
    return HeadSlices(image, acquisition, z_mm, thickness, template.source)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma_px: float) -> np.ndarray:
    """Gaussian-filtered white noise over the last two axes, unit std per image.

    Returns:
        float32 array of ``shape``; independent fields over the leading axes.
    """
    white = rng.standard_normal(shape, dtype=np.float32)
    fy = np.fft.fftfreq(shape[-2])[:, None]
    fx = np.fft.rfftfreq(shape[-1])[None, :]
    lowpass = np.exp(-2.0 * (math.pi * sigma_px) ** 2 * (fy**2 + fx**2)).astype(np.float32)
    spectrum = np.fft.rfft2(white) * lowpass
    field = np.fft.irfft2(spectrum, s=shape[-2:]).astype(np.float32)
    field -= field.mean(axis=(-2, -1), keepdims=True)
    return field / (field.std(axis=(-2, -1), keepdims=True) + 1e-12)


# --------------------------------------------------------------------------- templates


@lru_cache(maxsize=2)
def _mni_template(folder: str, pixel_mm: float) -> HeadTemplate:
    return _blurred(_mni_full(folder), pixel_mm)


@lru_cache(maxsize=1)
def _mni_full(folder: str) -> HeadTemplate:
    import nibabel as nib

    arrays, affine = [], None
    for name in ("t1", "gm", "wm"):
        img = nib.load(Path(folder) / TEMPLATE_FILES[name])
        affine = img.affine
        arrays.append(np.asarray(img.dataobj, dtype=np.float32) / 255.0)  # (X, Y, Z)
    assert affine is not None
    t1, gm, wm = arrays
    brain = (t1 > 0) | (gm + wm > 0.3)
    t1 = t1 / np.median(t1[wm > 0.9])
    spacing = tuple(float(s) for s in np.abs(np.diag(affine)[:3]))
    origin = tuple(float(o) for o in affine[:3, 3])
    return _assemble(t1, gm, wm, brain, origin, spacing, "mni152")  # type: ignore[arg-type]


def _procedural_template(rng: np.random.Generator) -> HeadTemplate:
    """A head-like 3D phantom at 2 mm: folded cortex, white matter, ventricles, nuclei."""
    spacing = 2.0
    origin = (-98.0, -134.0, -72.0)
    x, y, z = np.meshgrid(
        *(o + spacing * np.arange(n) for o, n in zip(origin, (99, 117, 95), strict=True)),
        indexing="ij",
    )
    cy, cz = -18.0 + rng.uniform(-4, 4), 18.0
    ax, ay, az = np.array([68.0, 84.0, 62.0]) * rng.uniform(0.92, 1.08, 3)
    shape = x.shape

    def field(sigma_vox: float) -> np.ndarray:
        f = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma_vox)
        return f / f.std()

    r = np.sqrt((x / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2)
    r = r + 0.03 * field(6.0) + np.where(z < cz - 35, (cz - 35 - z) / 30, 0)  # flat base
    brain = r < 1.0
    folds = field(1.6)  # gyri: band-limited noise
    wm = (r + 0.10 * folds < 0.78).astype(np.float32)
    gm = brain.astype(np.float32) - wm
    sulci = brain & (r > 0.82) & (np.abs(field(1.6)) < 0.35)
    sulci |= brain & (np.abs(x) < 2.0) & (z > cz - 10)  # interhemispheric fissure
    csf = sulci.astype(np.float32)
    for sx in (-1, 1):  # lateral ventricles and thalami
        s = rng.uniform(0.8, 1.2)
        vent = ((x - sx * 9) / (5 * s)) ** 2 + ((y - cy + 2) / 26) ** 2 + ((z - cz) / (7 * s)) ** 2
        csf = np.maximum(csf, (vent < 1).astype(np.float32))
        thal = ((x - sx * 13) / 10) ** 2 + ((y - cy + 14) / 13) ** 2 + ((z - cz + 14) / 9) ** 2
        gm = np.where(thal < 1, 0.7, gm)
        wm = np.where(thal < 1, 0.3, wm)
    gm, wm = gm * (1 - csf), wm * (1 - csf)
    gm, wm = ndi.gaussian_filter(gm, 0.6), ndi.gaussian_filter(wm, 0.6)
    t1 = wm + 0.7 * gm + 0.2 * ndi.gaussian_filter(csf, 0.6) * brain
    return _assemble(t1, gm, wm, brain, origin, (spacing,) * 3, "procedural")


def _assemble(
    t1: np.ndarray,
    gm: np.ndarray,
    wm: np.ndarray,
    brain: np.ndarray,
    origin: tuple[float, float, float],
    spacing: tuple[float, float, float],
    source: str,
) -> HeadTemplate:
    """Add the signed distance to the closed brain hull and the geometry."""
    hull, hull_spacing = _closed_hull(brain, spacing[0])
    sd = _signed_distance(hull, hull_spacing)
    if sd.shape != brain.shape:  # computed on a 2x coarser grid: upsample, drop the padding
        fine = tuple(2 * n for n in sd.shape)
        sd = F.interpolate(torch.from_numpy(sd)[None, None], size=fine, mode="trilinear")
        sd = sd[0, 0, : brain.shape[0], : brain.shape[1], : brain.shape[2]].numpy()
    channels = np.stack([t1, gm, wm, sd]).astype(np.float32)  # (4, X, Y, Z)
    volume = torch.from_numpy(np.ascontiguousarray(channels.transpose(0, 3, 2, 1)))[None]

    area = brain.sum(axis=(0, 1))  # per axial index
    zs = np.nonzero(area >= 0.5 * area.max())[0]
    xs, ys = (np.nonzero(brain.any(axis=a))[0] for a in ((1, 2), (0, 2)))
    center = tuple(
        origin[i] + spacing[i] * 0.5 * (idx[0] + idx[-1]) for i, idx in enumerate((xs, ys))
    )
    z_range = (origin[2] + spacing[2] * zs[0], origin[2] + spacing[2] * zs[-1])
    return HeadTemplate(volume, origin, spacing, center, z_range, source)  # type: ignore[arg-type]


def _closed_hull(
    brain: np.ndarray, spacing: float, radius_mm: float = 6.0
) -> tuple[np.ndarray, float]:
    """Brain mask with sulci and fissures closed, and its voxel size (>= 2 mm, for speed)."""
    if spacing < 1.5:
        pad = [(0, n % 2) for n in brain.shape]
        b = np.pad(brain.astype(np.float32), pad)
        b = b.reshape(b.shape[0] // 2, 2, b.shape[1] // 2, 2, b.shape[2] // 2, 2).mean((1, 3, 5))
        brain, spacing = b > 0.5, spacing * 2
    r = radius_mm / spacing
    dilated = ndi.distance_transform_edt(~brain) <= r
    closed = ndi.distance_transform_edt(dilated) > r
    hull = ndi.binary_fill_holes(closed | brain)
    for k in range(hull.shape[2]):  # axial holes open to the skull base
        hull[:, :, k] = ndi.binary_fill_holes(hull[:, :, k])
    return hull, spacing


def _signed_distance(mask: np.ndarray, spacing: float) -> np.ndarray:
    inside = ndi.distance_transform_edt(mask)
    outside = ndi.distance_transform_edt(~mask)
    return ((outside - inside) * spacing).astype(np.float32)


def _blurred(template: HeadTemplate, pixel_mm: float) -> HeadTemplate:
    """Anti-alias the tissue channels for pixels much coarser than the voxels.

    Where the pixels are at least twice the voxel size, the blurred grid is
    also subsampled by 2 (same origin), which keeps the cache small.
    """
    spacing = np.array(template.spacing_mm)[::-1]  # (Z, Y, X)
    sigma_vox = 0.4 * pixel_mm / spacing
    if sigma_vox.max() < 0.6:
        return template
    vol = template.volume[0].numpy()
    blurred = np.stack([ndi.gaussian_filter(c, sigma_vox) for c in vol[:3]] + [vol[3]])
    step = 2 if pixel_mm >= 2 * spacing.max() else 1
    blurred = np.ascontiguousarray(blurred[:, ::step, ::step, ::step])
    return replace(
        template,
        volume=torch.from_numpy(blurred)[None],
        spacing_mm=tuple(step * s for s in template.spacing_mm),
    )


# --------------------------------------------------------------------------- sampling


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cz, sz, cx, sx, cy, sy = (f(a) for a in (yaw, pitch, roll) for f in (math.cos, math.sin))
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return rz @ rx @ ry


def _sample_maps(
    rng: np.random.Generator,
    template: HeadTemplate,
    num_slices: int,
    shape: tuple[int, int],
    pixel_mm: float,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Sample the template channels on a randomly posed, deformed slab.

    Returns:
        channels ``(4, S, H, W)``, slice centres in template mm ``(S,)``, and
        the slice thickness in mm.
    """
    H, W = shape
    z_lo, z_hi = template.z_range_mm
    span = z_hi - z_lo
    gap = float(np.clip(rng.uniform(0.55, 1.0) * span / max(num_slices - 1, 1), 1.0, 12.0))
    start = rng.uniform(z_lo, max(z_lo, z_hi - gap * (num_slices - 1)))
    z_mm = start + gap * np.arange(num_slices)
    thickness = min(gap, 5.0)
    z_c = float(z_mm.mean())

    scale = rng.uniform(0.92, 1.03) * np.array([rng.uniform(0.95, 1.05), 1.0])
    rot = _rotation(
        math.radians(rng.normal(0, 4)),
        math.radians(rng.uniform(-12, 6)),
        math.radians(rng.normal(0, 2)),
    )
    shift = rng.normal(0, 3.0, 2)  # in-plane offset of the head in the image, mm

    # Head-aligned coordinates (x right of patient, y anterior, z superior), mm.
    v = (np.arange(H) - H // 2) * pixel_mm  # rows, downwards = posterior
    u = (np.arange(W) - W // 2) * pixel_mm  # columns, rightwards = patient left
    sub = np.array([-1.0, 0.0, 1.0]) * thickness / 3  # partial-volume sub-slices
    zz = (z_mm[:, None] + sub[None, :]).reshape(-1) - z_c  # (S*K,)
    qx = np.broadcast_to(-(u[None, None, :] - shift[0]) / scale[0], (len(zz), H, W))
    qy = np.broadcast_to(-(v[None, :, None] - shift[1]) / scale[1], (len(zz), H, W))
    qz = np.broadcast_to(zz[:, None, None], (len(zz), H, W))
    q = np.stack([qx, qy, qz], axis=-1).astype(np.float32)  # (S*K, H, W, 3)
    p = q @ rot.T.astype(np.float32)
    p += np.array([*template.center_mm, z_c], dtype=np.float32)
    p += _displacement(rng, len(zz), shape)

    grid = torch.from_numpy(p)
    sizes = template.volume.shape[2:][::-1]  # (X, Y, Z)
    for i in range(3):
        idx = (grid[..., i] - template.origin_mm[i]) / template.spacing_mm[i]
        grid[..., i] = 2.0 * idx / (sizes[i] - 1) - 1.0
    out = F.grid_sample(
        template.volume, grid[None], mode="bilinear", padding_mode="border", align_corners=True
    )[0]  # (4, S*K, H, W)
    out = out.reshape(4, num_slices, len(sub), H, W).mean(2)
    return out.numpy(), z_mm, thickness


def _displacement(rng: np.random.Generator, n: int, shape: tuple[int, int]) -> np.ndarray:
    """A smooth random displacement field in mm, ``(n, H, W, 3)``, slowly varying over n."""
    H, W = shape
    amp = rng.uniform(1.5, 4.0)
    coarse = torch.from_numpy(rng.normal(0, amp, (2, 3, 6, 5)).astype(np.float32))
    coarse[:, 2] *= 0.3  # little through-plane motion
    fine = F.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=True)  # (2, 3, H, W)
    t = torch.linspace(0, 1, n)[:, None, None, None]
    field = (1 - t) * fine[0] + t * fine[1]  # (n, 3, H, W)
    return field.permute(0, 2, 3, 1).numpy()


# --------------------------------------------------------------------------- contrast


def _render(
    rng: np.random.Generator, maps: np.ndarray, acquisition: str, pixel_mm: float
) -> np.ndarray:
    """Tissue fractions -> magnitude image ``(S, H, W)`` float32."""
    t1, gm, wm, sd = maps
    S, H, W = t1.shape
    level = {k: v * rng.uniform(0.95, 1.05) for k, v in CONTRASTS[acquisition].items()}
    edge = 0.5 * pixel_mm  # soft Heaviside width: about one pixel from 12 % to 88 %

    def step(d: np.ndarray) -> np.ndarray:  # soft Heaviside
        return 0.5 * (1.0 + np.tanh(d / edge))

    # Brain: sharpen the averaged probability maps a little, CSF fills the hull.
    k = rng.uniform(1.5, 2.5)
    gm_s, wm_s = (1 / (1 + np.exp(-k * 4 * (m - 0.5))) * (m > 0.02) for m in (gm, wm))
    total = np.maximum(gm_s + wm_s, 1.0)
    gm_s, wm_s = gm_s / total, wm_s / total
    inside = step(-sd)
    csf = np.clip(inside - gm_s - wm_s, 0.0, 1.0)
    brain = level["wm"] * wm_s + level["gm"] * gm_s + level["csf"] * csf
    # The template T1 carries detail the two maps lack (deep grey nuclei, tracts): add
    # half of its deviation from the two-tissue model, mapped to this contrast's scale.
    t1_ref = CONTRASTS["AXT1"]
    deviation = (t1 - wm_s - t1_ref["gm"] * gm_s - t1_ref["csf"] * csf) * (gm_s + wm_s)
    gain = (level["wm"] - level["gm"]) / (t1_ref["wm"] - t1_ref["gm"])  # < 0 for T2, PD
    brain = brain + 0.5 * gain * deviation
    image = inside * np.maximum(brain, 0.0)

    # Extra-cerebral layers, each with its own random, spatially varying thickness.
    depth = np.maximum(sd, 0.0)
    lower = np.zeros_like(depth)
    for i, (tissue, (lo, hi)) in enumerate(zip(_LAYERS, _LAYER_MM, strict=True)):
        wobble = smooth_noise(rng, (S, H, W), 20.0 / pixel_mm)
        upper = lower + rng.uniform(lo, hi) * np.exp(0.3 * wobble)
        frac = (1.0 - inside) * step(upper - depth)
        if i > 0:  # the CSF rim starts at the hull itself
            frac = frac * step(depth - lower)
        image = image + level[tissue] * frac
        lower = upper

    # Fine texture (a few % contrast) and a gentle large-scale shading.
    fine = smooth_noise(rng, (S, H, W), max(1.5 / pixel_mm, 1.0))
    coarse = smooth_noise(rng, (S, H, W), 12.0 / pixel_mm)
    texture = 1.0 + rng.uniform(0.015, 0.04) * fine + rng.uniform(0.02, 0.05) * coarse
    return (image * texture).astype(np.float32)
