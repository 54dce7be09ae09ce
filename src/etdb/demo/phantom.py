"""A synthetic cell as a 3D density map (numpy only, seeded, deterministic).

The phantom is what a cryo-electron tomogram of a small bacterium or archaeon shows at ~4 nm
voxels: a rod, curved rod, spiral or coccus flattened in thin ice, with an inner and an outer
membrane (or S-layer), ribosome-sized particles that avoid the nucleoid, optional filaments
(flagella with their motors, periplasmic flagella, pili, a stalk), magnetosome chains and
storage granules, and gold fiducial beads near the ice surfaces — very dense dots, as in real
data, because tracking them is one of ETDB's challenges.

Volumes are numpy arrays in MRC order ``(z, y, x)``; density is "excess over ice" (ice is 0).
:mod:`etdb.demo.imaging` turns a phantom into a tilt series and a reconstruction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Shape = Literal["rod", "curved", "spiral", "coccus"]
Array = np.ndarray

# Densities relative to vitreous ice (arbitrary units): protein ~0.4-0.6, lipid head groups ~1,
# gold ~8 (it stops electrons: black dots in every projection).
GOLD = 8.0
MAGNETITE = 3.5


@dataclass(frozen=True)
class CellSpec:
    """Geometry and contents of the cell, in voxels."""

    shape: Shape = "rod"
    radius: float = 34.0  # in the xy plane; z is flattened to fit the ice
    half_length: float = 40.0  # of the cylindrical part (0 for a coccus)
    angle: float = 0.3  # radians, cell axis in the xy plane
    bend: float = 0.0  # curved: bow height at the poles; spiral: wave amplitude
    wavelength: float = 120.0  # spiral period along the axis
    periplasm: float = 6.0  # inner-outer membrane gap
    outer: float = 1.0  # outer layer density (outer membrane 1.0, S-layer ~1.4)
    ribosomes: int = 400
    flagella: int = 0
    periplasmic_flagella: int = 0
    pili: int = 0
    stalk: bool = False
    magnetosomes: int = 0
    granules: int = 0


@dataclass(frozen=True)
class PhantomSpec:
    size: tuple[int, int, int] = (64, 192, 192)  # (nz, ny, nx)
    cell: CellSpec = field(default_factory=CellSpec)
    beads: int = 8
    seed: int = 0


# -- geometry ---------------------------------------------------------------------------------


class _Cell:
    """The cell's frame: axis coordinate ``u``, bent cross coordinate ``v``, and an
    approximate signed distance to the inner membrane (negative inside)."""

    def __init__(self, spec: CellSpec, size: tuple[int, int, int]) -> None:
        nz, ny, nx = size
        self.spec = spec
        self.center = np.array([0.0, (ny - 1) / 2, (nx - 1) / 2])
        # Flatten in z so the cell plus its outer layer fits inside the ice slab.
        self.flat = min(1.0, (nz / 2 - spec.periplasm - 5) / spec.radius)
        self.cos, self.sin = math.cos(spec.angle), math.sin(spec.angle)

    def frame(self, z: Array, y: Array, x: Array) -> tuple[Array, Array, Array]:
        s = self.spec
        dy, dx = y - self.center[1], x - self.center[2]
        u = dx * self.cos + dy * self.sin
        v = -dx * self.sin + dy * self.cos
        if s.shape == "curved":
            v = v - s.bend * (u / max(s.half_length + s.radius, 1.0)) ** 2
        elif s.shape == "spiral":
            v = v - s.bend * np.sin(2 * math.pi * u / s.wavelength)
        return u, v, z / self.flat

    def distance(self, z: Array, y: Array, x: Array) -> Array:
        u, v, w = self.frame(z, y, x)
        along = u - np.clip(u, -self.spec.half_length, self.spec.half_length)
        return np.sqrt(along * along + v * v + w * w) - self.spec.radius

    def to_xyz(self, u: float, v: float, z: float) -> Array:
        """A point given in the straight (unbent) frame, back in volume coordinates."""
        s = self.spec
        if s.shape == "curved":
            v += s.bend * (u / max(s.half_length + s.radius, 1.0)) ** 2
        elif s.shape == "spiral":
            v += s.bend * math.sin(2 * math.pi * u / s.wavelength)
        x = self.center[2] + u * self.cos - v * self.sin
        y = self.center[1] + u * self.sin + v * self.cos
        return np.array([z * self.flat, y, x])


def _grid(size: tuple[int, int, int]) -> tuple[Array, Array, Array]:
    nz, ny, nx = size
    z = (np.arange(nz, dtype=np.float32) - (nz - 1) / 2)[:, None, None]
    y = np.arange(ny, dtype=np.float32)[None, :, None]
    x = np.arange(nx, dtype=np.float32)[None, None, :]
    return z, y, x


def _splat(vol: Array, center: Array, radius: float, density: float) -> None:
    """Add a soft-edged ball (``center`` in (z-from-middle, y, x)); clipped at the borders."""
    nz = vol.shape[0]
    c = np.array([center[0] + (nz - 1) / 2, center[1], center[2]])
    reach = radius + 1.5
    lo = np.maximum(np.floor(c - reach).astype(int), 0)
    hi = np.minimum(np.ceil(c + reach).astype(int) + 1, vol.shape)
    if np.any(hi <= lo):
        return
    zz, yy, xx = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    r = np.sqrt((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2)
    vol[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] += density * np.clip(
        radius + 0.5 - r, 0.0, 1.0
    )


def _tube(vol: Array, points: Array, radius: float, density: float) -> None:
    """A filament: balls every ~0.7 voxel along ``points`` (n, 3), density per unit length."""
    step = np.linalg.norm(np.diff(points, axis=0), axis=1)
    per_ball = density * 0.7 / max(1.0, 1.6 * radius)  # overlapping balls add up
    travelled = 0.0
    for p, d in zip(points[1:], step, strict=True):
        travelled += d
        if travelled >= 0.7:
            travelled = 0.0
            _splat(vol, p, radius, per_ball)


def _wavy_path(
    rng: np.random.Generator,
    start: Array,
    direction: Array,
    length: float,
    amplitude: float,
    nz: int,
) -> Array:
    """A gently waving filament path from ``start`` (z, y, x), kept inside the ice slab."""
    direction = direction / np.linalg.norm(direction)
    side = np.array([0.0, -direction[2], direction[1]])
    side /= max(np.linalg.norm(side), 1e-6)
    t = np.linspace(0.0, length, int(length * 2))[:, None]
    phase = rng.uniform(0, 2 * math.pi)
    wave = amplitude * np.sin(2 * math.pi * t / rng.uniform(45, 80) + phase)
    pts = start + t * direction + wave * side
    limit = nz / 2 - 4
    pts[:, 0] = np.clip(pts[:, 0] + 0.05 * t[:, 0] * rng.uniform(-1, 1), -limit, limit)
    return pts


# -- the phantom ------------------------------------------------------------------------------


def phantom_volume(spec: PhantomSpec) -> Array:
    """The cell's excess density over ice, float32, shape ``spec.size``."""
    rng = np.random.default_rng(spec.seed)
    cs = spec.cell
    cell = _Cell(cs, spec.size)
    z, y, x = _grid(spec.size)
    d = cell.distance(z, y, x)
    # Envelope: inner membrane at d=0, outer layer at d=periplasm, cytoplasm and periplasm
    # slightly denser than ice.
    vol = 1.0 * np.exp(-0.5 * (d / 0.9) ** 2)
    vol += cs.outer * np.exp(-0.5 * ((d - cs.periplasm) / (0.9 + 0.4 * (cs.outer > 1))) ** 2)
    vol += 0.12 / (1 + np.exp(d))
    if cs.outer > 0:  # a periplasm only where there is an outer layer
        vol += 0.05 / (1 + np.exp(d - cs.periplasm))
    vol = vol.astype(np.float32)
    del d

    _ribosomes(vol, cell, rng)
    for _ in range(cs.granules):
        p = _inside_point(cell, rng, margin=10.0)
        _splat(vol, p, rng.uniform(4.0, 7.0), 1.1)
    if cs.magnetosomes:
        u0 = -0.45 * cs.half_length
        for i in range(cs.magnetosomes):
            _splat(vol, cell.to_xyz(u0 + i * 4.2, -0.3 * cs.radius, 0.0), 1.6, MAGNETITE)
    _filaments(vol, cell, rng)
    _beads(vol, spec.beads, rng)
    return vol


def _inside_point(cell: _Cell, rng: np.random.Generator, margin: float) -> Array:
    s = cell.spec
    for _ in range(1000):
        u = rng.uniform(-s.half_length - s.radius, s.half_length + s.radius)
        v = rng.uniform(-s.radius, s.radius)
        w = rng.uniform(-s.radius, s.radius)
        along = u - np.clip(u, -s.half_length, s.half_length)
        if math.sqrt(along * along + v * v + w * w) < s.radius - margin:
            return cell.to_xyz(u, v, w)
    return cell.to_xyz(0.0, 0.0, 0.0)


def _ribosomes(vol: Array, cell: _Cell, rng: np.random.Generator) -> None:
    s = cell.spec
    placed = 0
    for _ in range(s.ribosomes * 20):
        if placed >= s.ribosomes:
            break
        u = rng.uniform(-s.half_length - s.radius, s.half_length + s.radius)
        v, w = rng.uniform(-s.radius, s.radius, 2)
        along = u - np.clip(u, -s.half_length, s.half_length)
        if math.sqrt(along * along + v * v + w * w) > s.radius - 4.0:
            continue
        # The nucleoid (a central DNA region) excludes most ribosomes.
        nucleoid = abs(u) < 0.7 * s.half_length + 0.3 * s.radius and abs(v) < 0.45 * s.radius
        if nucleoid and rng.random() < 0.85:
            continue
        _splat(vol, cell.to_xyz(u, v, w), rng.uniform(2.4, 3.2), 0.55)
        placed += 1


def _filaments(vol: Array, cell: _Cell, rng: np.random.Generator) -> None:
    s = cell.spec
    nz = vol.shape[0]
    pole = s.half_length + s.radius + s.periplasm
    axis = np.array([0.0, cell.sin, cell.cos])
    for i in range(s.flagella):
        sign = 1.0 if i % 2 == 0 else -1.0
        start = cell.to_xyz(sign * (pole - s.periplasm - 2), rng.uniform(-4, 4), 0.0)
        _splat(vol, start, 5.0, 0.35)  # the motor, embedded in the envelope
        tilt = np.array([0.0, *rng.uniform(-0.35, 0.35, 2)])
        path = _wavy_path(rng, start, sign * axis + tilt, rng.uniform(70, 140), 6.0, nz)
        _tube(vol, path, 1.6, 2.6)
    for i in range(s.periplasmic_flagella):
        side = s.radius + s.periplasm / 2
        us = np.linspace(-s.half_length - 0.5 * s.radius, s.half_length + 0.5 * s.radius, 400)
        sign = 1.0 if i % 2 == 0 else -1.0
        pts = np.array([cell.to_xyz(u, sign * side, 0.0) for u in us])
        _tube(vol, pts, 1.3, 2.0)
    for _ in range(s.pili):
        u = rng.uniform(-s.half_length, s.half_length)
        side = rng.choice([-1.0, 1.0]) * (s.radius + s.periplasm)
        start = cell.to_xyz(u, side, 0.0)
        outward = start - cell.to_xyz(u, 0.0, 0.0)
        outward[0] = rng.uniform(-0.2, 0.2) * abs(side)
        path = _wavy_path(rng, start, outward, rng.uniform(30, 70), 1.5, nz)
        _tube(vol, path, 0.9, 1.6)
    if s.stalk:
        start = cell.to_xyz(-pole, 0.0, 0.0)
        path = _wavy_path(rng, start, -axis, 90.0, 2.0, nz)
        _tube(vol, path, 2.6, 1.4)


def _beads(vol: Array, n: int, rng: np.random.Generator) -> None:
    nz, ny, nx = vol.shape
    for _ in range(n):
        # Gold sticks to the ice surfaces, above and below the cell.
        zc = rng.choice([-1.0, 1.0]) * (nz / 2 - rng.uniform(3.0, 7.0))
        _splat(vol, np.array([zc, rng.uniform(8, ny - 8), rng.uniform(8, nx - 8)]), 1.7, GOLD)


def pole(spec: PhantomSpec) -> tuple[float, float]:
    """(y, x) of the cell's first pole (where a flagellum starts), for snapshots."""
    cs = spec.cell
    cell = _Cell(cs, spec.size)
    _, y, x = cell.to_xyz(cs.half_length + cs.radius, 0.0, 0.0)
    return float(y), float(x)
