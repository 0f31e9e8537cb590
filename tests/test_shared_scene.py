"""render/shared_scene.py's look-at matrices, the one copy pyrender, the capsule skeleton and both
headless Blender pipelines use (Blender-side use is covered by tests/test_render_blender.py and
tests/test_blender_batch.py)."""

from __future__ import annotations

import numpy as np
import pytest

from motionclip.render.shared_scene import align_z, basis_z, look_along

DIRECTIONS = [np.array(d, float) for d in ([0, -1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, -1], [0.1, 0.99, 0],
                                             [0.3, -0.2, 0.9], [-2.0, 0.5, 0.1])]


@pytest.mark.parametrize("up", [np.eye(3)[0], np.eye(3)[1], np.eye(3)[2]])
@pytest.mark.parametrize("d", DIRECTIONS, ids=str)
def test_frames_are_rotations_with_z_where_asked(d, up) -> None:
    R = basis_z(d, up)
    assert np.allclose(R.T @ R, np.eye(3)) and np.isclose(np.linalg.det(R), 1.0)
    assert np.allclose(R[:, 2], d / np.linalg.norm(d))
    M = look_along(d, up=up, position=(1.0, 2.0, 3.0))
    assert np.allclose(-M[:3, 2], d / np.linalg.norm(d))  # cameras and lights look down their -Z
    assert np.allclose(M[:3, 3], (1.0, 2.0, 3.0)) and np.allclose(M[3], (0, 0, 0, 1))
    T = align_z(d, (0.5, 0.0, -1.0))
    assert np.allclose(T[:3, :3] @ (0, 0, 1), d / np.linalg.norm(d)) and np.allclose(T[:3, 3], (0.5, 0.0, -1.0))


def test_up_stays_up_unless_it_is_the_view_direction() -> None:
    M = look_along([1.0, -0.2, 0.0], up=(0, 0, 1))
    assert np.allclose(M[:3, 1], (0, 0, 1))  # a level view: the image's up is the world's
    M = look_along([0.0, 0.0, -1.0], up=(0, 0, 1))  # straight down: up falls back to X
    assert np.allclose(np.cross(M[:3, 0], M[:3, 1]), M[:3, 2]) and abs(M[:3, 1] @ (0, 0, 1)) < 1e-12
