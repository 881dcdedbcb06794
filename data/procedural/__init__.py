"""Procedural source of cars and chairs: seeded, parametrised, watertight coloured meshes.

A development and test source (`python -m data.build --source procedural`), never a stand-in for
ShapeNet: it gives thousands of distinct shapes where the real development meshes number 80, so that
training and evaluation on a CPU can be checked for generalisation. The meshes go through the same
pipeline as any mesh source (data.build: canonical frame, renders, masks, poses, both GT clouds).

Model ids: ``proc-<category>-v<GENERATOR_VERSION>-<index:06d>``, e.g. ``proc-car-v1-000123``. The
mesh is a function of the id alone: its parameters are drawn from a numpy generator seeded by the
SHA-256 of the id (data.splits.stable_hash), so the same id always gives the same mesh (byte for byte,
with the pinned numpy and manifold3d), on any machine and in any worker, whatever the build's --seed
(which, as for every source, draws the poses, GT samples and splits). The first N indices of a
category are its N models, so a build of N models is a subset of a build of more. A change of any
generator that changes a mesh must bump GENERATOR_VERSION, which changes every id.

Frame of the generated meshes: metres, y up with the floor at y = 0, the object's front towards +z:
the canonical frame's up axis and the front direction of the shared real chairs and Sweet Home 3D cars
after data.meshes.normalise (see README, "Procedural source"), so no --rotate_y_deg is needed.

Generators: `data.procedural.cars` (sedan, hatchback, wagon, coupe, sports, city, SUV, van, pickup) and
`data.procedural.chairs` (four-legged, splayed, office, sled, stool, bench, lounge armchair).
Each mesh is one boolean union of its parts (data.procedural.solid), with per-face colours.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import trimesh

from data import splits
from data.procedural import cars, chairs

GENERATOR_VERSION = 1
CATEGORIES = ("car", "chair")
MAX_MODELS = 1_000_000  # per category: six-digit indices
DEFAULT_MODELS = 1000   # per category, for data.build --procedural_models
_GENERATORS = {"car": cars, "chair": chairs}
_ID = re.compile(r"^proc-(?P<category>[a-z]+)-v(?P<version>\d+)-(?P<index>\d{6})$")


@dataclasses.dataclass(frozen=True)
class ProceduralItem:
    """One procedural model: its id and category (the counterpart of data.meshes.MeshItem)."""

    model_id: str
    category: str

    @property
    def path(self) -> str:
        """What build reports and skip entries name as this model's input."""
        return f"procedural:{self.model_id}"


def model_id(category: str, index: int) -> str:
    """The id of model `index` (0-based) of `category` at the current GENERATOR_VERSION."""
    _check_category(category)
    if not 0 <= index < MAX_MODELS:
        raise ValueError(f"procedural model index must be in 0..{MAX_MODELS - 1}, got {index}")
    return f"proc-{category}-v{GENERATOR_VERSION}-{index:06d}"


def discover(n_models: int, category: str | None = None) -> list[ProceduralItem]:
    """The first `n_models` models of each category (or of `category` only), sorted by (category, id).

    Raises:
        ValueError: n_models outside 1..MAX_MODELS, or a category the source does not make.
    """
    if not 1 <= n_models <= MAX_MODELS:
        raise ValueError(f"--procedural_models must be in 1..{MAX_MODELS} (models per category), "
                         f"got {n_models}")
    categories = CATEGORIES if category is None else (_check_category(category),)
    return [ProceduralItem(model_id(c, i), c) for c in categories for i in range(n_models)]


def describe(n_models: int) -> dict:
    """The index.json entry that makes a data set built from this source identifiable as procedural."""
    return {"name": "data.procedural", "version": GENERATOR_VERSION, "models_per_category": n_models,
            "id_pattern": f"proc-<category>-v{GENERATOR_VERSION}-<index:06d>",
            "note": "synthetic cars and chairs for development and tests; not ShapeNet, never to be "
                    "reported as ShapeNet results"}


def params(model_id_: str):
    """The generator parameters of a model (cars.CarParams or chairs.ChairParams)."""
    category, version, _ = _parse(model_id_)
    if version != GENERATOR_VERSION:
        raise ValueError(f"procedural model {model_id_!r} was made by generator v{version}; this is "
                         f"v{GENERATOR_VERSION}, which cannot reproduce it")
    return _GENERATORS[category].sample_params(np.random.default_rng(splits.stable_hash(model_id_)))


def generate(model_id_: str) -> trimesh.Trimesh:
    """The mesh of a model: closed, consistently oriented, per-face colours, in the frame above.

    Returns:
        trimesh.Trimesh with vertices [V, 3] float64 (metres), faces [F, 3], face colours [F, 4] uint8.

    Raises:
        ValueError: a malformed id, an unknown category or another generator version.
    """
    category = _parse(model_id_)[0]
    return _GENERATORS[category].build(params(model_id_))


def _parse(model_id_: str) -> tuple[str, int, int]:
    """(category, generator version, index) of a procedural id."""
    match = _ID.match(model_id_)
    if match is None:
        raise ValueError(f"{model_id_!r} is not a procedural model id "
                         "(proc-<category>-v<version>-<6 digits>)")
    return _check_category(match["category"]), int(match["version"]), int(match["index"])


def _check_category(category: str) -> str:
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r} for the procedural source: it makes "
                         f"{', '.join(CATEGORIES)}")
    return category
