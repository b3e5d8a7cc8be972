"""Geometry of exported volumes: spacing and thickness from ISMRMRD headers, positions, affine."""

import numpy as np
import pytest

from unrolled.data.export.geometry import header_spacing, volume_geometry
from unrolled.data.header import build_ismrmrd_header

# a fastMRI knee header: 640 x 368 encoded over 280 x 161.42 mm (2x readout oversampling),
# reconSpace 320 x 320 over 140 x 140 mm, 3 mm slices
KNEE = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>'
    "<encodedSpace><matrixSize><x>640</x><y>368</y><z>1</z></matrixSize>"
    "<fieldOfView_mm><x>280</x><y>161.42</y><z>4.5</z></fieldOfView_mm></encodedSpace>"
    "<reconSpace><matrixSize><x>320</x><y>320</y><z>1</z></matrixSize>"
    "<fieldOfView_mm><x>140</x><y>140</y><z>3</z></fieldOfView_mm></reconSpace>"
    "</encoding></ismrmrdHeader>"
)


def test_fastmri_header_spacing_is_the_recon_pixel_size():
    spacing, thickness = header_spacing(KNEE)
    assert spacing == (0.4375, 0.4375)  # 140 mm / 320, = 280 mm / 640 of the oversampled grid
    assert thickness == 3.0
    # our synthetic files (unrolled.data.synth): encoded 256 x 128 over 220 x 110 mm
    xml = build_ismrmrd_header((256, 128, 1), (128, 128, 1), 4, (220.0, 110.0, 5.0))
    spacing, thickness = header_spacing(xml)
    assert spacing == pytest.approx((220 / 256, 220 / 256)) and thickness == 5.0


def test_header_without_field_of_view_is_refused():
    xml = KNEE.replace("<fieldOfView_mm><x>140</x><y>140</y><z>3</z></fieldOfView_mm>", "")
    xml = xml.replace("<fieldOfView_mm><x>280</x><y>161.42</y><z>4.5</z></fieldOfView_mm>", "")
    with pytest.raises(ValueError, match="lacks a field of view"):
        header_spacing(xml)


def test_default_geometry_is_axial_centred_and_stacked_by_thickness_plus_gap():
    g = volume_geometry(KNEE, (3, 320, 300), slice_gap_mm=0.5)
    np.testing.assert_array_equal(g.row_cosine, [1, 0, 0])  # along a row: patient left
    np.testing.assert_array_equal(g.column_cosine, [0, 1, 0])  # down a column: posterior
    assert g.slice_spacing_mm == 3.5 and not g.from_header
    # the centre pixel (rows // 2, cols // 2) of the middle slice is at the origin
    np.testing.assert_allclose(g.positions_lps[1], [-150 * 0.4375, -160 * 0.4375, 0.0])
    np.testing.assert_allclose(g.slice_locations_mm, [-3.5, 0.0, 3.5])
    a = g.affine_ras()  # voxel (column, row, slice) -> RAS: x and y of LPS negated
    expected = np.array(
        [
            [-0.4375, 0, 0, 150 * 0.4375],
            [0, -0.4375, 0, 160 * 0.4375],
            [0, 0, 3.5, -3.5],
            [0, 0, 0, 1],
        ]
    )
    np.testing.assert_allclose(a, expected)


def test_positions_from_the_file_give_an_oblique_affine():
    """Slice centres and read/phase directions (ISMRMRD acquisition convention, LPS)."""
    t = np.deg2rad(20)
    read = np.array([0, np.cos(t), np.sin(t)])  # rows run along the readout
    phase = np.array([1.0, 0, 0])
    normal = np.cross(phase, read)
    centres = np.array([10, -20, 30]) + np.arange(4)[:, None] * 3.0 * normal
    positions = {
        "slice_position": centres,
        "read_dir": np.tile(read, (4, 1)),
        "phase_dir": np.tile(phase, (4, 1)),
        "slice_dir": np.tile(normal, (4, 1)),
    }
    g = volume_geometry(KNEE, (4, 320, 320), positions)
    # DICOM orientation (along a row, down a column) = (phase_dir, read_dir): our rows are H
    np.testing.assert_allclose(g.row_cosine, phase)
    np.testing.assert_allclose(g.column_cosine, read)
    assert g.from_header and g.slice_spacing_mm == pytest.approx(3.0)
    a = g.affine_ras()
    for k in range(4):  # voxel (cols // 2, rows // 2, k) lies at slice k's centre (RAS)
        ras = a @ np.array([160, 160, k, 1.0])
        np.testing.assert_allclose(ras[:3], centres[k] * [-1, -1, 1], atol=1e-9)
    # NIfTI axis j (rows, k-space H) steps along read_dir, axis i (columns) along phase_dir
    np.testing.assert_allclose(a[:3, 1], read * [-1, -1, 1] * 0.4375, atol=1e-12)
    np.testing.assert_allclose(a[:3, 0], phase * [-1, -1, 1] * 0.4375, atol=1e-12)
    with pytest.raises(ValueError, match="'slice_dir' is not normal"):
        volume_geometry(KNEE, (4, 320, 320), {**positions, "slice_dir": positions["read_dir"]})


def test_irregular_slices_have_no_nifti_affine_and_bad_positions_are_refused():
    ok = {
        "slice_position": np.array([[0, 0, 0], [0, 0, 3.0], [0, 0, 7.0]]),
        "read_dir": np.tile([0, 1.0, 0], (3, 1)),
        "phase_dir": np.tile([1.0, 0, 0], (3, 1)),
    }
    with pytest.raises(ValueError, match="not equally spaced"):
        volume_geometry(KNEE, (3, 8, 8), ok).affine_ras()
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        volume_geometry(KNEE, (2, 8, 8), ok)
    with pytest.raises(ValueError, match="not orthogonal"):
        volume_geometry(KNEE, (3, 8, 8), {**ok, "phase_dir": np.tile([0, 0.6, 0.8], (3, 1))})
