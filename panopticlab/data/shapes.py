"""The four thing shapes (disc, box, triangle, ring), drawn in one place.

:func:`inside` draws them for the built-in dataset's scenes (:mod:`panopticlab.data.scenes`,
which turns and places them) and for the metric's simulated scenes
(:mod:`panopticlab.metrics.simulate`, which places them upright). A shape lies in its
own frame: ``u`` along its axis, ``v`` across it, centred on the origin, with semi-axes
``a`` along ``u`` and ``b`` along ``v``:

* a disc is the ellipse ``(u/a)^2 + (v/b)^2 <= 1``;
* a ring is that ellipse less the ellipse ``hole`` times as large;
* a box is the rectangle ``|u| <= a, |v| <= b``;
* a triangle points along ``+u``, its apex at ``(a, 0)``. Inscribed in the ellipse (the
  dataset's), its base lies at ``u = -a/2`` and it is equilateral when ``a == b``;
  inscribed in the box (the simulation's), its base is the box's side ``u = -a``.

Only operations that IEEE 754 rounds exactly are used, one numpy operation at a time,
so the same points give the same answer on every machine (see
:mod:`panopticlab.data.scenes`).
"""
from __future__ import annotations

import math

import numpy as np

THING_SHAPES = ("disc", "box", "triangle", "ring")
INSCRIBED = ("ellipse", "box")  # the figures a triangle's vertices may lie on


def inside(kind: str, u: np.ndarray, v: np.ndarray, a: float, b: float, hole: float = 0.0,
           inscribed: str = "ellipse") -> np.ndarray:
    """Which points ``(u, v)`` of its own frame a shape covers.

    Args:
        kind: one of :data:`THING_SHAPES`.
        u, v: the points' coordinates along and across the shape's axis, in pixels, as
            arrays that broadcast against each other (a column and a row, say).
        a, b: the semi-axes along and across the axis, in pixels.
        hole: a ring's inner / outer radius.
        inscribed: the figure a triangle's vertices lie on, one of :data:`INSCRIBED`.

    Returns:
        the bool mask, of the shape ``u`` and ``v`` broadcast to.
    """
    if kind == "box":
        return (np.abs(u) <= a) & (np.abs(v) <= b)
    if kind == "triangle" and inscribed == "ellipse":  # vertices (a, 0) and (-a/2, +-b sqrt(3)/2)
        return (u >= -a / 2) & (np.abs(v) * math.sqrt(3) * a <= b * (a - u))
    if kind == "triangle" and inscribed == "box":  # vertices (a, 0) and (-a, +-b)
        p = u / a
        return (p >= -1) & (np.abs(v / b) <= (1 - p) / 2)
    if kind == "triangle":
        raise ValueError(f"a triangle is inscribed in one of {INSCRIBED}, got {inscribed!r}")
    if kind not in ("disc", "ring"):
        raise ValueError(f"unknown shape kind {kind!r}; known: {THING_SHAPES}")
    q = (u / a) ** 2 + (v / b) ** 2
    mask = q <= 1
    if kind == "ring":
        mask &= q >= hole * hole
    return mask
