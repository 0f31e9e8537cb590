"""Rotation conversions: every pair round-trips, near 0 and near pi too, with finite gradients."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from motionclip.core import rotations as R



@pytest.fixture(autouse=True)
def float64():
    """These tests check precision: run them in double, and restore the default afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def random_rotmats(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g, dtype=torch.float64)
    return R.quat_to_matrix(q / q.norm(dim=-1, keepdim=True))


def edge_rotmats() -> torch.Tensor:
    """Identity, tiny angles, and rotations by (nearly) pi about several axes."""
    axes = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -2, 3], [-1, -1, -1]], dtype=torch.float64)
    axes = axes / axes.norm(dim=-1, keepdim=True)
    angles = torch.tensor([0.0, 1e-9, 1e-6, 1e-3, math.pi - 1e-3, math.pi - 1e-6, math.pi], dtype=torch.float64)
    aa = (axes[:, None, :] * angles[None, :, None]).reshape(-1, 3)
    return R.axis_angle_to_matrix(aa)


ALL = torch.cat([random_rotmats(500), edge_rotmats()])

# Every representation, as (to, from) functions relative to matrices.
REPS = {
    "matrix": (lambda m: m, lambda m: m),
    "quat": (R.matrix_to_quat, R.quat_to_matrix),
    "axis_angle": (R.matrix_to_axis_angle, R.axis_angle_to_matrix),
    "rot6d": (R.matrix_to_rot6d, R.rot6d_to_matrix),
    **{f"euler_{o}": (lambda m, o=o: R.matrix_to_euler(m, o), lambda e, o=o: R.euler_to_matrix(e, o))
       for o in ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")},
}


@pytest.mark.parametrize("a", sorted(REPS))
@pytest.mark.parametrize("b", sorted(REPS))
def test_every_pair_round_trips(a: str, b: str) -> None:
    to_a, from_a = REPS[a]
    to_b, from_b = REPS[b]
    x = to_a(ALL)
    back = from_b(to_b(from_a(x)))  # a -> matrix -> b -> matrix
    assert torch.allclose(back, ALL, atol=1e-6), (a, b, float((back - ALL).abs().max()))
    # and a -> b -> a, compared as rotations (representations like axis-angle at pi are not unique)
    again = from_a(to_a(from_b(to_b(from_a(x)))))
    assert torch.allclose(again, ALL, atol=1e-6)


def test_quaternion_axis_angle_values() -> None:
    aa = torch.tensor([[0.0, 0.0, math.pi / 2]])
    q = R.axis_angle_to_quat(aa)
    assert torch.allclose(q, torch.tensor([[math.cos(math.pi / 4), 0, 0, math.sin(math.pi / 4)]]))
    m = R.axis_angle_to_matrix(aa)[0]
    assert torch.allclose(m @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1.0, 0]), atol=1e-12)


def test_axis_angle_angle_is_at_most_pi() -> None:
    aa = R.matrix_to_axis_angle(random_rotmats(1000, seed=3))
    assert (aa.norm(dim=-1) <= math.pi + 1e-9).all()


def test_euler_is_intrinsic_in_bvh_order() -> None:
    a = torch.tensor([0.3, -0.7, 1.1])
    expected = (R.axis_angle_to_matrix(torch.tensor([0, 0, 0.3])) @ R.axis_angle_to_matrix(torch.tensor([-0.7, 0, 0]))
                @ R.axis_angle_to_matrix(torch.tensor([0, 1.1, 0])))
    assert torch.allclose(R.euler_to_matrix(a, "ZXY"), expected, atol=1e-12)


def test_euler_gimbal_lock_still_round_trips() -> None:
    e = torch.tensor([[0.4, math.pi / 2, -0.2], [0.1, -math.pi / 2, 0.5]])
    m = R.euler_to_matrix(e, "ZYX")
    assert torch.allclose(R.euler_to_matrix(R.matrix_to_euler(m, "ZYX"), "ZYX"), m, atol=1e-7)


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-4, 1.0, math.pi - 1e-4])
def test_gradients_are_finite(angle: float) -> None:
    aa = torch.tensor([[angle, 0.0, 0.0], [0.0, angle / 2, angle / 2]], requires_grad=True)
    for f in (lambda x: R.axis_angle_to_matrix(x), lambda x: R.quat_to_axis_angle(R.axis_angle_to_quat(x)),
              lambda x: R.rot6d_to_matrix(R.axis_angle_to_rot6d(x)), lambda x: R.matrix_to_quat(R.axis_angle_to_matrix(x))):
        (g,) = torch.autograd.grad(f(aa).sum(), aa)
        assert torch.isfinite(g).all()


def test_rot6d_accepts_any_vector() -> None:
    m = R.rot6d_to_matrix(torch.randn(100, 6) * 5)
    eye = torch.eye(3).expand(100, 3, 3)
    assert torch.allclose(m.transpose(-1, -2) @ m, eye, atol=1e-9)
    assert torch.allclose(torch.det(m), torch.ones(100))


def test_slerp_endpoints_and_midpoint() -> None:
    a = R.axis_angle_to_quat(torch.tensor([0.0, 0.0, 0.0]))
    b = R.axis_angle_to_quat(torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(R.quat_slerp(a, b, torch.tensor(0.0)), a)
    assert torch.allclose(R.quat_slerp(a, b, torch.tensor(1.0)), b)
    mid = R.quat_to_axis_angle(R.quat_slerp(a, b, torch.tensor(0.5)))
    assert torch.allclose(mid, torch.tensor([0.0, 0.5, 0.0]), atol=1e-9)
    # takes the short way round when given the antipodal quaternion
    assert torch.allclose(R.quat_to_axis_angle(R.quat_slerp(a, -b, torch.tensor(0.5))), mid, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=3),
       st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=3))
def test_rotation_between_maps_a_to_b(a, b) -> None:
    a, b = torch.tensor(a), torch.tensor(b)
    if a.norm() < 1e-3 or b.norm() < 1e-3:
        return
    m = R.rotation_between(a, b)
    assert torch.allclose(m @ (a / a.norm()), b / b.norm(), atol=1e-7)
    assert torch.allclose(torch.det(m), torch.tensor(1.0))


@pytest.mark.parametrize("eps", [0.0, 1e-9, 1e-5, 1e-2])
def test_rotation_between_opposite_directions(eps) -> None:
    for a in (torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.6, 0.0, 0.8])):
        b = -a + torch.tensor([eps, -eps, 2 * eps])
        m = R.rotation_between(a, b)
        assert torch.allclose(m @ a, b / b.norm(), atol=1e-9)


def test_kabsch_recovers_a_rotation() -> None:
    m = random_rotmats(1, seed=7)[0]
    src = torch.randn(10, 3)
    assert torch.allclose(R.kabsch(src, src @ m.T), m, atol=1e-9)
