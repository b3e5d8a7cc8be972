"""Independent check: our two-set ESPIRiT maps and CG-SENSE against BART (Debian ``bart``).

BART (Uecker et al.) ``ecalib -m2`` and ``pics -l2`` run on the same folded k-space, written
with our cfl I/O. BART's array layout is ``(x, y, z, coil, map)``: our ``(C, H, W)`` k-space
becomes ``(H, W, 1, C)``. Both use the centred FFT (for sides divisible by 4, BART's
``fftmod`` convention equals our ``fftshift`` one). Eigenvectors carry an arbitrary phase
and, where two eigenvalues are close, an arbitrary rotation within their span, so the maps
are compared as per-pixel projectors ``S S^H``. BART's ``-t`` thresholds squared singular
values: its default 0.001 is our ``threshold = sqrt(0.001)``.
"""

import shutil
import subprocess

import numpy as np
import pytest
import torch

from unrolled.data.raw.cfl import read_cfl, write_cfl
from unrolled.data.synth_volume import synthesize_volume
from unrolled.physics.coils import espirit
from unrolled.physics.operators import SenseOp
from unrolled.physics.solvers import conjugate_gradient

pytestmark = pytest.mark.skipif(
    shutil.which("bart") is None,
    reason="BART not installed (Debian package `bart`; run `bash .ci/install-debian-packages`)",
)


def _bart(*args, cwd):
    subprocess.run(["bart", *args], check=True, capture_output=True, cwd=cwd, timeout=300)


def _squeeze_maps(arr):
    """BART ``(H, W, 1, C, M, 1, ...)`` -> ``(M, C, H, W)``."""
    arr = arr.reshape(arr.shape[:5])[:, :, 0]  # (H, W, C, M)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(3, 2, 0, 1)


def _projector(s):
    """``(C, H, W)`` -> per-pixel ``s s^H``, ``(H, W, C, C)``."""
    v = s.permute(1, 2, 0)
    return v[..., :, None] * v[..., None, :].conj()


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    """One 8-coil slice whose field of view is 75 % of the head's: k-space ``(8, 128, 96)``."""
    kspace, _ = synthesize_volume(
        np.random.default_rng([0, 13]), num_slices=1, height=128, fov_fraction=0.75
    )
    work = tmp_path_factory.mktemp("bart")
    write_cfl(work / "k", kspace[0].transpose(1, 2, 0)[:, :, None, :])
    _bart("ecalib", "-m2", "-r", "24", "k", "maps", "ev", cwd=work)
    return work, torch.from_numpy(kspace[0]), _squeeze_maps(read_cfl(work / "maps"))


def test_two_set_espirit_agrees_with_bart_ecalib_m2(folded):
    _, kspace, bart_maps = folded
    ours = espirit(kspace, calib=(24, 24), threshold=0.001**0.5, crop=0.8, num_maps=2)
    sup_ours = ours.abs().amax(dim=1) > 0  # (2, H, W)
    sup_bart = bart_maps.abs().amax(dim=1) > 0
    # the same supports: BART's default crop 0.8 on each set's eigenvalue
    assert sup_bart[1].float().mean() > 0.01  # BART also finds a second set here
    mismatch = (sup_ours != sup_bart).float().mean(dim=(1, 2))
    both = sup_ours[0] & sup_ours[1] & sup_bart[0] & sup_bart[1]
    joint = _projector(ours[0]) + _projector(ours[1]) - _projector(bart_maps[0])
    joint = (joint - _projector(bart_maps[1]))[both].flatten(1).norm(dim=1)  # Frobenius
    first_only = sup_ours[0] & sup_bart[0] & ~sup_ours[1] & ~sup_bart[1]
    first = (_projector(ours[0]) - _projector(bart_maps[0]))[first_only].flatten(1).norm(dim=1)
    print(
        f"\nsupport mismatch set1 {mismatch[0]:.5f} set2 {mismatch[1]:.5f}; "
        f"two-set projector error (Frobenius, {int(both.sum())} px) max {joint.max():.2e} "
        f"mean {joint.mean():.2e}; one-set projector error ({int(first_only.sum())} px) "
        f"max {first.max():.2e} median {first.median():.2e}"
    )
    assert mismatch.max() < 0.002
    assert joint.max() < 1e-3
    assert first.median() < 1e-2


def test_cg_sense_with_two_sets_agrees_with_bart_pics_l2(folded):
    work, kspace, bart_maps = folded
    W = kspace.shape[-1]
    mask = torch.zeros(W)
    mask[::4] = 1
    mask[W // 2 - 8 : W // 2 + 8] = 1  # 4x equispaced with a 16-column centre
    under = kspace * mask
    write_cfl(work / "under", under.numpy().transpose(1, 2, 0)[:, :, None, :], overwrite=True)
    lam, iters = 0.01, 200
    # -w 1: no automatic data scaling, so the weight means the same in both
    _bart(
        "pics", "-l2", "-r", str(lam), "-i", str(iters), "-w", "1", "under", "maps", "x", cwd=work
    )
    x_bart = torch.from_numpy(read_cfl(work / "x").reshape(kspace.shape[1], W, 2))
    x_bart = x_bart.permute(2, 0, 1)  # (M, H, W)

    op = SenseOp(bart_maps[None].to(torch.complex128), mask.double().reshape(1, 1, 1, W))
    y = under[None].to(torch.complex128)
    x = conjugate_gradient(lambda v: op.normal(v) + lam * v, op.H(y), max_iter=iters, tol=1e-10)
    x = x[0].to(torch.complex64)  # (M, H, W)
    err = ((x - x_bart).norm() / x.norm()).item()
    rss_err = (
        (x.abs().pow(2).sum(0).sqrt() - x_bart.abs().pow(2).sum(0).sqrt()).norm()
        / x.abs().pow(2).sum(0).sqrt().norm()
    ).item()
    print(
        f"\nCG-SENSE vs bart pics -l2 (2 sets, lam {lam}): relative error complex {err:.2e}, "
        f"RSS over sets {rss_err:.2e}"
    )
    assert err < 1e-3

    # Our whole pipeline (our maps, BART's thresholds) against BART's: the RSS over the sets
    # does not depend on the phase or rotation of the eigenvectors within their span.
    maps = espirit(kspace, calib=(24, 24), threshold=0.001**0.5, crop=0.8, num_maps=2)
    op = SenseOp(maps[None].to(torch.complex128), mask.double().reshape(1, 1, 1, W))
    x = conjugate_gradient(lambda v: op.normal(v) + lam * v, op.H(y), max_iter=iters, tol=1e-10)
    ours = x[0].abs().pow(2).sum(0).sqrt()
    bart = x_bart.abs().pow(2).sum(0).sqrt().double()
    pipeline_err = ((ours - bart).norm() / bart.norm()).item()
    print(f"our ESPIRiT + CG-SENSE vs ecalib -m2 + pics -l2: RSS relative error {pipeline_err:.2e}")
    assert pipeline_err < 1e-3
