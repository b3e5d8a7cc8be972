"""Shared fixtures: a tiny embedded data set in fastMRI's layout, the team's real data, one
torch thread, and the small training configuration (helpers in ``tests/helpers/common.py``)."""

import logging
from pathlib import Path

import pytest
from helpers.common import one_thread, small_train_config

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_BRAIN = SHARED / "data" / "brain_t2_4coil" / "img_brain_4ch.mat"


@pytest.fixture(autouse=True)
def _logging_as_found():
    """Undo what an in-process CLI run did to logging (``hydra/job_logging=disabled`` sets the
    root level to ERROR and disables every existing logger), so that a later test in the same
    worker still sees the package's warnings."""
    root_level = logging.root.level
    yield
    logging.root.setLevel(root_level)
    for logger in list(logging.root.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.disabled = False


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """4 volumes (train 2 / val 1 / test 1) x 2 slices, 4 coils, 64 x 64 k-space."""
    from unrolled.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("embedded_tiny")
    generate_dataset(
        root,
        num_volumes=4,
        slices_per_volume=2,
        num_coils=4,
        height=64,
        width=64,
        split=(2, 1, 1),
        seed=3,
        progress=False,
    )
    return root


@pytest.fixture
def real_brain_images():
    """The real 4-coil brain slice, complex coil images (4, 256, 256), max |x| = 1."""
    if not REAL_BRAIN.is_file():
        pytest.skip("../shared/data/brain_t2_4coil not present (team-only real data)")
    import numpy as np
    import scipy.io
    import torch

    img = scipy.io.loadmat(REAL_BRAIN)["img"].transpose(2, 0, 1)  # (C, H, W)
    img = img / np.abs(img).max()
    return torch.from_numpy(img.astype(np.complex64))


@pytest.fixture
def one_thread_test():
    """One torch thread for a test (``pytestmark = pytest.mark.usefixtures(...)``)."""
    with one_thread():
        yield


@pytest.fixture(scope="module")
def one_thread_module():
    """One torch thread for a whole module, its module-scoped fixtures included."""
    with one_thread():
        yield


@pytest.fixture(scope="session")
def small_train_cfg():
    """``cfg(root, out, *overrides)``: the training config of the small network on ``root``
    (:func:`helpers.common.small_train_config`), outputs in ``out``."""
    return small_train_config
