"""What every renderer draws: camera, floor, lights and colours, decided once in the backend.

Cameras are OpenGL-style camera-to-world matrices (looking down -Z, +Y up in the image), in the
motion's own Y-up metres. Two camera modes keep the whole body in frame over the whole motion:

    fit      one fixed camera, fitted to every posed vertex of every rendered frame
    follow   the camera moves with the body's centre (smoothed) at one fixed distance, fitted to
             the body's largest extent around that centre; a walk across the room stays large
    frame    every frame fitted on its own (stills, and the frames whose CLIP embeddings are cached:
             the body fills the picture whatever the other frames do)

The fit is exact for a pinhole camera: for a view direction, the distance is the smallest at which
every point projects inside the image (less a margin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .bodies import RenderError

CAMERAS = ("fit", "follow", "frame")
WHITE = (1.0, 1.0, 1.0)


@dataclass
class SceneOptions:
    """Everything about the picture that is not the body's pose."""

    size: int | tuple[int, int] = 224        # pixels: one number for a square, or (width, height)
    camera: str = "fit"                     # "fit" | "follow" | "frame"
    azimuth: float = 30.0                   # degrees about +Y, from +Z (the canonical facing) toward +X
    elevation: float = 12.0                 # degrees above the horizon
    yfov: float = 40.0                      # vertical field of view, degrees
    margin: float = 0.06                    # share of the image kept free on each side
    floor: bool = True
    background: tuple[float, float, float] = WHITE
    floor_color: tuple[float, float, float] = (0.50, 0.50, 0.52)  # linear RGB, like the body colours
    body_color: tuple[float, float, float] | None = None  # None: the body's own colour
    light_intensity: float = 2.5

    def __post_init__(self) -> None:
        w, h = self.width_height
        if not (8 <= w <= 4096 and 8 <= h <= 4096):
            raise RenderError(f"image size {w}x{h} is out of range: give 8..4096 pixels per side")
        if self.camera not in CAMERAS:
            raise RenderError(f"unknown camera {self.camera!r}; choose one of {', '.join(CAMERAS)}")
        if not 5.0 <= self.yfov <= 120.0:
            raise RenderError(f"field of view {self.yfov} degrees is out of range 5..120")
        if not 0.0 <= self.margin < 0.4:
            raise RenderError(f"margin {self.margin} must be in [0, 0.4)")
        for name in ("background", "floor_color"):
            _check_color(getattr(self, name), name)
        if self.body_color is not None:
            _check_color(self.body_color, "body_color")

    @property
    def width_height(self) -> tuple[int, int]:
        if isinstance(self.size, (tuple, list)):
            return int(self.size[0]), int(self.size[1])
        return int(self.size), int(self.size)


def _check_color(c, name: str) -> None:
    if len(c) != 3 or not all(isinstance(x, (int, float)) and 0.0 <= x <= 1.0 for x in c):
        raise RenderError(f"{name} must be three numbers in [0, 1] (RGB), got {c!r}")


@dataclass
class SceneSpec:
    """A renderer's whole input besides the geometry: one camera per frame, floor, colours."""

    width: int
    height: int
    yfov: float                      # radians
    cameras: np.ndarray              # [N, 4, 4] camera-to-world
    background: tuple[float, float, float]
    body_color: tuple[float, float, float]
    floor: tuple[float, float, float, float, float] | None  # (y, x_min, x_max, z_min, z_max)
    floor_color: tuple[float, float, float]
    light_dir: np.ndarray = field(default_factory=lambda: np.array([0.0, -1.0, 0.0]))  # world direction light travels
    light_intensity: float = 3.0


def view_basis(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Rows: camera right, up, back (the camera looks along -back) for a view from that direction."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    back = np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])  # target -> camera
    right = np.cross(np.array([0.0, 1.0, 0.0]), back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    return np.stack([right, up, back])


def fit_distance(points: np.ndarray, center: np.ndarray, basis: np.ndarray, tan_x: float, tan_y: float) -> float:
    """Smallest distance from `center` along basis[2] at which every point is inside the view.

    points [..., 3] (or per-frame [N, P, 3] with center [N, 3]); tan_x, tan_y: tangents of the
    half fields of view (already shrunk by the margin)."""
    rel = (points - center[..., None, :] if points.ndim == 3 else points - center) @ basis.T  # camera axes
    x, y, z = np.abs(rel[..., 0]), np.abs(rel[..., 1]), rel[..., 2]
    need = np.maximum(x / tan_x, y / tan_y) + z  # a point at depth d - z needs |x| <= (d - z) tan
    return float(max(need.max(), (z.max() + 0.2)))  # never inside the body


def camera_matrix(eye: np.ndarray, basis: np.ndarray) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = basis.T  # columns: right, up, back
    M[:3, 3] = eye
    return M


def make_scene(vertices: np.ndarray, joints: np.ndarray, options: SceneOptions,
               body_color: Sequence[float]) -> SceneSpec:
    """Camera(s), floor and light for posed vertices [N, V, 3] and joints [N, 24, 3]."""
    if vertices.ndim != 3 or vertices.shape[0] < 1:
        raise RenderError(f"expected posed vertices [frames, vertices, 3], got {list(vertices.shape)}")
    w, h = options.width_height
    yfov = math.radians(options.yfov)
    tan_y = math.tan(yfov / 2) * (1.0 - 2.0 * options.margin)
    tan_x = math.tan(yfov / 2) * (w / h) * (1.0 - 2.0 * options.margin)
    basis = view_basis(options.azimuth, options.elevation)
    lo, hi = vertices.reshape(-1, 3).min(0), vertices.reshape(-1, 3).max(0)
    n = vertices.shape[0]
    if options.camera == "fit":
        center = (lo + hi) / 2
        d = fit_distance(vertices.reshape(-1, 3), center, basis, tan_x, tan_y)
        cams = np.repeat(camera_matrix(center + d * basis[2], basis)[None], n, axis=0)
    elif options.camera == "frame":
        centers = (vertices.min(1) + vertices.max(1)) / 2  # [N, 3]
        cams = np.stack([camera_matrix(c + fit_distance(v, c, basis, tan_x, tan_y) * basis[2], basis)
                         for v, c in zip(vertices, centers)])
    else:
        # Each frame's centre: the middle of its bounding box, smoothed over time (about a third of a
        # second either side at 30 fps), so the camera glides instead of shaking with every step.
        c = (vertices.min(1) + vertices.max(1)) / 2  # [N, 3]
        c = _smooth(c, radius=10)
        d = fit_distance(vertices, c, basis, tan_x, tan_y)
        cams = np.stack([camera_matrix(ci + d * basis[2], basis) for ci in c])
    floor = None
    if options.floor:
        pad = 1.0
        floor = (float(lo[1]), float(lo[0] - pad), float(hi[0] + pad), float(lo[2] - pad), float(hi[2] + pad))
    # Key light from above, in front of and to the side of the camera's view.
    light = -(0.55 * basis[2] + 0.8 * np.array([0.0, 1.0, 0.0]) + 0.35 * basis[0])
    light /= np.linalg.norm(light)
    return SceneSpec(w, h, yfov, cams, tuple(options.background), tuple(options.body_color or body_color), floor,
                     tuple(options.floor_color), light, options.light_intensity)


def _smooth(x: np.ndarray, radius: int) -> np.ndarray:
    """Moving average over frames [N, ...] with a window of 2 * radius + 1, edges padded."""
    if len(x) < 3 or radius < 1:
        return x
    r = min(radius, len(x) - 1)
    pad = np.concatenate([np.repeat(x[:1], r, 0), x, np.repeat(x[-1:], r, 0)])
    k = 2 * r + 1
    cs = np.cumsum(np.concatenate([np.zeros_like(pad[:1]), pad]), axis=0)
    return (cs[k:] - cs[:-k]) / k


def project(points: np.ndarray, camera: np.ndarray, yfov: float, width: int, height: int) -> np.ndarray:
    """Pixel coordinates (x right, y down) [P, 2] of world points [P, 3] through one camera."""
    world_to_cam = np.linalg.inv(camera)
    p = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    f = (height / 2) / math.tan(yfov / 2)
    x = width / 2 + f * p[:, 0] / -p[:, 2]
    y = height / 2 - f * p[:, 1] / -p[:, 2]
    return np.stack([x, y], axis=1)
