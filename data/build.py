"""Builds a training-ready data set: meshes (or the baseline's layout) → model cache → TFRecords.

Usage::

    python -m data.build --source builtin                      # → generated/datasets/sample_64
    python -m data.build --source <ShapeNetCore v1 dir | folder of meshes> --out DIR --workers N
    python -m data.build --baseline_layout <dir with ShapeNet_rendered/, ShapeNet_v1/> --out DIR
    python -m data.build ... --shard i --num_shards n           # one of n disjoint parts (any machine)
    python -m data.build ... --pack_only                         # TFRecords + index from the cache

Stages:

1. Enumerate the models (`data.meshes.discover` or `data.shapenet.discover_layout`), sorted by
   (category, model id); keep the first `max_models` of each category; with split files keep the
   models they list (and their view). Shard i of n takes the models whose position in that list is
   i mod n.
2. Build each model (in `workers` spawned processes; 0 = in this process) into an atomically written
   cache file ``<out>/models/<category>/<model_id>.npz``, or a ``.skip.json`` file holding the reason
   it cannot be built. Cache files made with the same parameters are reused (resume); delete a
   ``.skip.json`` to retry that model. From a mesh: load, normalise, rotate into the render frame
   (`data.meshes`), both GT clouds (`data.sampling`), V views rendered (`data.render`) at poses drawn
   from a generator seeded by (seed, category, model id, view), so nothing depends on model order,
   sharding or worker count.
3. Pack, once every model of the whole build has a cache entry (or with `pack_only`): assign splits
   (`data.splits`) over the models built, write ``<split>-<i>-of-<n>.tfrecord`` and ``index.json``
   (`data.tfrecords`). ``skipped.json`` lists every skipped model with its reason.

A bad model never stops a build and is never silent (summary + skipped.json); the CLI exits non-zero
only when no model could be built.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
from absl import app, flags
from tqdm import tqdm

from data import meshes, render, sampling, shapenet, splits, tfrecords

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "generated" / "datasets"


def builtin_out_dir(image_size: int, views: int = 1) -> Path:
    """Default data directory of the built-in sample: ``generated/datasets/sample_<size>[_v<views>]``.

    The view count is part of the name (beyond the default 1) so that builds with different view counts
    never overwrite each other's cache.
    """
    return DEFAULT_OUT / (f"sample_{image_size}" if views == 1 else f"sample_{image_size}_v{views}")
MAX_VIEWS = 10  # views per model in the baseline's renders (baseline §2.1)
EXAMPLES_PER_SHARD = 2048  # ~30 kB per 64-px example with two 1024-point clouds: ~60 MB files
SKIPPED_FILE = "skipped.json"
MODELS_DIR = "models"
_SEED_GT_UNIFORM, _SEED_GT_AREA, _SEED_VIEW = 0, 1, 2  # streams of a model's seed sequence


@dataclasses.dataclass(frozen=True)
class ModelTask:
    """One model to build: where it comes from, which views, with which parameters."""

    category: str
    model_id: str
    source: str  # "mesh" or "baseline_layout"
    item: object  # data.meshes.MeshItem or data.shapenet.LayoutItem
    views: tuple[int, ...]
    image_size: int
    n_points: int
    seed: int
    rotate_y_deg: float = 0.0

    @property
    def params(self) -> dict:
        """What the cache entry depends on; a cached entry with other params is rebuilt."""
        return {"source": self.source, "views": list(self.views), "image_size": self.image_size,
                "n_points": self.n_points, "seed": self.seed, "rotate_y_deg": self.rotate_y_deg}

    @property
    def path(self) -> Path:
        """The model's input: its mesh file, or its render directory in the baseline's layout."""
        return self.item.path if self.source == "mesh" else self.item.render_dir


def cache_path(out_dir, category: str, model_id: str, suffix: str = ".npz") -> Path:
    """``<out>/models/<category>/<model_id><suffix>`` (suffix ".npz" or ".skip.json")."""
    return Path(out_dir) / MODELS_DIR / category / f"{model_id}{suffix}"


def model_seed(seed: int, category: str, model_id: str, stream: int, *more: int) -> list[int]:
    """Seed sequence of one model's random stream (GT uniform, GT area, or a view's pose)."""
    return [seed, splits.stable_hash(f"{category}/{model_id}"), stream, *more]


def view_pose(seed: int, category: str, model_id: str, view: int) -> np.ndarray:
    """(az, el) radians float32 [2] of view `view` of a model, independent of the other views."""
    rng = np.random.default_rng(model_seed(seed, category, model_id, _SEED_VIEW, view))
    return np.asarray(render.sample_views(1, rng)[0], np.float32)


_RENDERERS: dict = {}


def _renderer(image_size: int):
    """This process's renderer for `image_size` (each spawned worker creates its own)."""
    if image_size not in _RENDERERS:
        _RENDERERS[image_size] = render.Renderer(image_size=image_size)
    return _RENDERERS[image_size]


def mesh_record(task: ModelTask) -> dict:
    """Builds one model from its mesh: the record layout of `data.shapenet.load_layout_model`.

    Returns:
        {"views" int64 [V], "images" uint8 [V, H, W, 3], "masks" uint8 [V, H, W] in {0, 255},
        "poses" float32 [V, 2], "gt_uniform" float32 [N, 3], "gt_area" float32 [N, 3]}, render frame.

    Raises:
        data.meshes.MeshError: the mesh cannot be used.
    """
    mesh = meshes.to_render_frame(meshes.normalise(meshes.load_mesh(task.item.path), task.rotate_y_deg))
    key = (task.seed, task.category, task.model_id)
    record = {
        "views": np.asarray(task.views, np.int64),
        "gt_uniform": sampling.baseline_gt(mesh.vertices, mesh.faces, task.n_points,
                                           seed=model_seed(*key, _SEED_GT_UNIFORM)),
        "gt_area": sampling.area_gt(mesh.vertices, mesh.faces, task.n_points,
                                    seed=model_seed(*key, _SEED_GT_AREA)),
    }
    poses = np.stack([view_pose(*key, v) for v in task.views])
    colour = render.model_colour(task.model_id)  # used only when the mesh has no colours
    renders = [_renderer(task.image_size).render(mesh, az, el, colour) for az, el in poses]
    record.update(poses=poses, images=np.stack([rgb for rgb, _ in renders]),
                  masks=np.stack([mask for _, mask in renders]))
    return record


def _cache_state(task: ModelTask, out_dir) -> str | None:
    """"built" or "skipped" when the model has a cache entry made with the task's parameters, else None."""
    for state, suffix in (("built", ".npz"), ("skipped", ".skip.json")):
        path = cache_path(out_dir, task.category, task.model_id, suffix)
        if path.is_file() and _read_params(path) == task.params:
            return state
    return None


def _read_params(path: Path) -> dict | None:
    """The params stored in a cache entry (None when it is unreadable, e.g. truncated by a crash)."""
    try:
        if path.suffix == ".npz":
            with np.load(path) as data:
                return json.loads(str(data["params"]))
        return json.loads(path.read_text())["params"]
    except (OSError, ValueError, KeyError):
        return None


def _write_atomic(path: Path, write) -> None:
    """Calls write(tmp_path) then renames tmp_path to path, so a cache entry is complete or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _save_npz(path: Path, arrays: dict) -> None:
    with path.open("wb") as file:
        np.savez_compressed(file, **arrays)


def build_model(task: ModelTask, out_dir) -> str | None:
    """Builds one model into its cache entry; never raises for bad input.

    Returns:
        None when built, else the reason the model was skipped (also written to its ``.skip.json``).
    """
    npz = cache_path(out_dir, task.category, task.model_id)
    try:
        if task.source == "mesh":
            record = mesh_record(task)
        else:
            record = shapenet.load_layout_model(task.item, task.views, task.image_size, task.n_points)
    except meshes.MeshError as exc:  # shapenet.LayoutError is one too
        reason = f"{exc.path.name}: {exc.reason}"
    except Exception as exc:  # a library failing on odd input must not stop the build: report it
        where = traceback.extract_tb(exc.__traceback__)[-1]
        reason = f"unexpected {type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})"
    else:
        record["params"] = np.asarray(json.dumps(task.params))
        _write_atomic(npz, lambda tmp: _save_npz(tmp, record))
        cache_path(out_dir, task.category, task.model_id, ".skip.json").unlink(missing_ok=True)
        return None
    entry = {"category": task.category, "model_id": task.model_id, "path": str(task.path),
             "reason": reason, "params": task.params}
    _write_atomic(cache_path(out_dir, task.category, task.model_id, ".skip.json"),
                  lambda tmp: tmp.write_text(json.dumps(entry, indent=1) + "\n"))
    npz.unlink(missing_ok=True)
    return reason


def _run(tasks: list[ModelTask], out_dir, workers: int, progress: bool) -> None:
    """Runs build_model on every task, in this process (workers=0) or in `workers` spawned processes.

    Spawn, not fork: a forked child of a process that has imported TensorFlow can hang or crash
    (rendering-notes.md); a spawned worker starts a fresh interpreter and creates its own renderer.
    """
    with tqdm(total=len(tasks), desc="models", unit="model", disable=not progress,
              file=sys.stdout) as bar:
        if workers == 0:
            for task in tasks:
                build_model(task, out_dir)
                bar.update()
            return
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(build_model, task, out_dir) for task in tasks]
            for future in concurrent.futures.as_completed(futures):
                future.result()
                bar.update()


def _plan(source, baseline_layout, category, views, image_size, n_points, split, seed, max_models,
          rotate_y_deg):
    """All models of the build (every shard), as ModelTasks, plus the split weights or split files.

    Returns:
        (tasks, weights, listed, not_found): weights {split: w} for a ratio split (else None); listed
        {(category, model_id): split} for split files (else None); not_found: skip entries for models
        listed in split files but absent from the source.
    """
    if (source is None) == (baseline_layout is None):
        raise ValueError("give exactly one of source (meshes) and baseline_layout")
    if not 1 <= views <= MAX_VIEWS:
        raise ValueError(f"views must be in 1..{MAX_VIEWS} (baseline §2.1), got {views}")
    if source is not None:
        kind, items = "mesh", meshes.discover(source, category)
    else:
        kind, items = "baseline_layout", shapenet.discover_layout(baseline_layout, category)
    weights = splits.parse_ratio(split)
    per_category = {}
    for item in items:
        per_category.setdefault(item.category, []).append(item)
    tasks, listed, not_found = [], None, []
    if weights is None:
        if not Path(split).is_dir():
            raise ValueError(f"split {split!r} is neither a ratio like 50/50 or 70/10/20 nor a "
                             "directory of split files images_list_<synset>_<split>.npy")
        listed = {}
    for cat, cat_items in per_category.items():
        if weights is not None:
            chosen = [(item, tuple(range(views))) for item in cat_items[:max_models]]
        else:
            synset = meshes.SYNSETS.get(cat, cat)
            by_id = {item.model_id: item for item in cat_items}
            entries = [(s, m, v) for s, pairs in splits.read_split_files(split, synset).items()
                       for m, v in pairs]
            entries.sort(key=lambda e: e[1])
            chosen = []
            for s, model_id, view in entries[:max_models]:
                listed[(cat, model_id)] = s
                if model_id in by_id:
                    chosen.append((by_id[model_id], (view,)))
                else:
                    not_found.append({"category": cat, "model_id": model_id, "path": str(split),
                                      "reason": f"listed in the {s} split file of {synset} but not in "
                                                "the source"})
        tasks += [ModelTask(cat, item.model_id, kind, item, v, image_size, n_points, seed, rotate_y_deg)
                  for item, v in chosen]
    return tasks, weights, listed, not_found


def build_dataset(source=None, out_dir=None, views: int = 1, image_size: int = 64, n_points: int = 1024,
                  split: str = "50/50", seed: int = 0, workers: int = 0, category: str | None = None,
                  max_models: int | None = None, shard: int = 0, num_shards: int = 1,
                  pack_only: bool = False, baseline_layout=None,
                  examples_per_shard: int = EXAMPLES_PER_SHARD, progress: bool = False,
                  rotate_y_deg: float = 0.0) -> dict:
    """Builds (or resumes, or packs) a data set; see the module docstring for the stages.

    Args:
        source: "builtin", a ShapeNetCore v1 root or a folder of meshes (or None with baseline_layout).
        out_dir: output directory (default: generated/datasets/sample_<image_size> for "builtin").
        views: V views per model, 1..10 (ignored with split files: they name one view per model).
        image_size: H = W of the renders.
        n_points: N points per GT cloud.
        split: "50/50", "70/10/20" (any "a/b" or "a/b/c") or a directory of the baseline's split files.
        seed: seed of poses, GT sampling, splits and example order.
        workers: worker processes (0: build in this process).
        category: only this category.
        max_models: at most this many models per category (the first ids in sorted order).
        shard, num_shards: build only the models at positions shard mod num_shards.
        pack_only: build nothing; pack the cache (fails if models are missing).
        baseline_layout: root of the baseline's layout (instead of source).
        examples_per_shard: TFRecord files hold at most about this many examples.
        progress: show a progress bar.
        rotate_y_deg: turn every mesh of this source about its up axis by this many degrees before
            normalising (`data.meshes.normalise`), for a source whose objects face another way than the
            rest of the data when the source documents it.

    Returns:
        Summary dict: "built" / "skipped" {category: models} of the whole build so far, "skipped_models"
        (entries with "reason"), "missing" (models no run has built yet), "packed" (bool), "examples"
        {split: count} (when packed), "seconds", "out_dir", "line" (the one-line summary).
    """
    start = time.time()
    if out_dir is None:
        if source != "builtin":
            raise ValueError("out_dir is required unless source is 'builtin'")
        out_dir = builtin_out_dir(image_size, views)
    out_dir = Path(out_dir)
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in 0..num_shards-1, got shard={shard}, num_shards={num_shards}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    tasks, weights, listed, not_found = _plan(source, baseline_layout, category, views, image_size,
                                              n_points, split, seed, max_models, rotate_y_deg)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not pack_only:
        mine = [t for i, t in enumerate(tasks) if i % num_shards == shard]
        _run([t for t in mine if _cache_state(t, out_dir) is None], out_dir, workers, progress)
    built, skipped, missing = _collect(tasks, out_dir)
    skipped += not_found
    _write_atomic(out_dir / SKIPPED_FILE,
                  lambda tmp: tmp.write_text(json.dumps(skipped, indent=1) + "\n"))
    examples = None
    if missing and pack_only:
        raise ValueError(f"cannot pack {out_dir}: {len(missing)} models have no cache entry yet "
                         f"(e.g. {missing[0].category}/{missing[0].model_id}); build every shard first")
    if not missing and built:
        source_text = str(source) if source is not None else f"baseline_layout:{baseline_layout}"
        examples = _pack(out_dir, built, weights, listed, seed, split, views, source_text,
                         image_size, n_points, examples_per_shard, progress)
    return _summary(tasks, built, skipped, missing, examples, out_dir, time.time() - start)


def ensure_dataset(out_dir, source, views: int = 1, image_size: int = 64, progress: bool = False,
                   log=print) -> Path:
    """Builds `source` into `out_dir` unless `out_dir` already holds a built data set (its index.json).

    The one "build it if missing" step of the drivers (train.py's built-in sample, the experiment runner's
    and the benchmarks' data sets).

    Args:
        out_dir: the data set's folder.  source, views, image_size, progress: as `build_dataset`.
        log: where the two lines of a build go (what is built, then the summary line).

    Returns:
        `out_dir` as a Path.

    Raises:
        ValueError: `out_dir` holds an index that is not a valid one (`data.tfrecords.read_index`).
    """
    out_dir = Path(out_dir)
    try:
        tfrecords.read_index(out_dir)
    except FileNotFoundError:
        log(f"building {out_dir} from {source} (once: it is reused when present)")
        log(build_dataset(source=source, out_dir=out_dir, views=views, image_size=image_size,
                          progress=progress)["line"])
    return out_dir


def _collect(tasks, out_dir):
    """Sorts all tasks by cache state: (built tasks, skipped entries, tasks no run has built yet)."""
    built, skipped, missing = [], [], []
    for task in tasks:
        state = _cache_state(task, out_dir)
        if state == "built":
            built.append(task)
        elif state == "skipped":
            entry = json.loads(cache_path(out_dir, task.category, task.model_id, ".skip.json").read_text())
            skipped.append({k: entry[k] for k in ("category", "model_id", "path", "reason")})
        else:
            missing.append(task)
    return built, skipped, missing


def _assign_splits(built, weights, listed, seed) -> dict[str, list[ModelTask]]:
    """{split: built tasks}: ratio splits over the models built, or the split files' assignment."""
    by_split: dict[str, list[ModelTask]] = {}
    if weights is None:
        for task in built:
            by_split.setdefault(listed[(task.category, task.model_id)], []).append(task)
        return by_split
    by_category: dict[str, dict[str, ModelTask]] = {}
    for task in built:
        by_category.setdefault(task.category, {})[task.model_id] = task
    for cat, tasks in by_category.items():
        for name, ids in splits.ratio_split(list(tasks), weights, seed, cat).items():
            by_split.setdefault(name, []).extend(tasks[i] for i in ids)
    return {name: tasks for name, tasks in by_split.items() if tasks}


def _split_rank(name: str) -> tuple:
    """Sort key putting train, val, test first, in that order."""
    return (splits.SPLIT_NAMES_3.index(name) if name in splits.SPLIT_NAMES_3 else 3, name)


def _examples(tasks: list[ModelTask], out_dir, gt_types):
    """Yields the examples of `tasks` (in that order, views consecutive) from their cache files."""
    for task in tasks:
        with np.load(cache_path(out_dir, task.category, task.model_id)) as record:
            clouds = {gt: record[gt] for gt in gt_types}
            for i, view in enumerate(record["views"]):
                yield dict(clouds, model_id=task.model_id, category=task.category, view=int(view),
                           image=record["images"][i], mask=record["masks"][i], pose=record["poses"][i])


def _gt_params(source_kind: str, gt_types, n_points: int) -> dict:
    """How each ground-truth type present was made (for the index)."""
    if source_kind == "mesh":
        made = {"gt_uniform": {"method": "uniform surface samples, then farthest point sampling "
                                         "(baseline §2.6)", "n_dense": sampling.BASELINE_N_DENSE},
                "gt_area": {"method": "triangle chosen with probability proportional to its area, "
                                      "uniform inside it (baseline §11.2)"}}
    else:
        made = {gt: {"method": "read from the baseline's layout: "
                               + " or ".join(f.format(n=n_points) for f in shapenet.CLOUD_FILES[gt])}
                for gt in shapenet.CLOUD_FILES}
    return {gt: dict(made[gt], n_points=n_points) for gt in gt_types}


def _pack(out_dir: Path, built, weights, listed, seed, split, views, source_text, image_size, n_points,
          examples_per_shard, progress) -> dict[str, int]:
    """Writes the TFRecords of every split and the index; returns {split: examples}."""
    present = [set(np.load(cache_path(out_dir, t.category, t.model_id)).files) for t in built]
    gt_types = [gt for gt in tfrecords.GT_FEATURES.values() if all(gt in files for files in present)]
    for old in out_dir.glob("*-of-*.tfrecord"):
        old.unlink()
    index_splits, examples = {}, {}
    by_split = _assign_splits(built, weights, listed, seed)
    for name in sorted(by_split, key=_split_rank):
        tasks = by_split[name]
        order = np.random.default_rng([seed, splits.stable_hash(f"order/{name}")]).permutation(len(tasks))
        tasks = [tasks[i] for i in order]
        count = sum(len(t.views) for t in tasks)
        models = tqdm(tasks, desc=f"pack {name}", unit="model", disable=not progress, file=sys.stdout)
        shards = tfrecords.write_shards(_examples(models, out_dir, gt_types), out_dir, name,
                                        max(1, math.ceil(count / examples_per_shard)))
        per_cat = {}
        for task in tasks:
            models, n = per_cat.get(task.category, (0, 0))
            per_cat[task.category] = (models + 1, n + len(task.views))
        index_splits[name] = {"shards": shards,
                              "examples": {c: n for c, (_, n) in sorted(per_cat.items())},
                              "models": {c: m for c, (m, _) in sorted(per_cat.items())}}
        examples[name] = count
    source_kind = built[0].source
    tfrecords.write_index(out_dir, {
        "image_size": image_size, "n_points": n_points, "gt_types": gt_types,
        "gt_params": _gt_params(source_kind, gt_types, n_points),
        "views": views if weights is not None else "one per model, from the split files",
        "frame": "render frame of data.meshes: canonical (y up, centred on the bounding box, longest "
                 "side 1) rotated by CANONICAL_TO_RENDER",
        "pose": "(azimuth, elevation) radians, baseline camera (geometry.camera, baseline §5.1)"
                + (" as drawn by data.render.sample_views" if source_kind == "mesh"
                   else "; DRC's view.txt angles (baseline §2.5, §15)"),
        "seed": seed, "source": source_text, "split_rule": split, "splits": index_splits,
    })
    return examples


def _summary(tasks, built, skipped, missing, examples, out_dir: Path, seconds: float) -> dict:
    """The summary dict of build_dataset, with its one-line text under "line"."""
    def per_category(categories):
        counts = {}
        for c in categories:
            counts[c] = counts.get(c, 0) + 1
        return dict(sorted(counts.items()))

    def text(counts):
        return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"

    built_counts = per_category(t.category for t in built)
    skipped_counts = per_category(s["category"] for s in skipped)
    line = (f"built {len(built)} models ({text(built_counts)}); skipped {len(skipped)} "
            f"({text(skipped_counts)})")
    if examples is not None:
        line += f"; examples: {text(examples)}"
    if missing:
        line += f"; {len(missing)} models not built yet (other shards), TFRecords not written"
    line += f"; {seconds:.1f} s; {out_dir}"
    return {"built": built_counts, "skipped": skipped_counts, "skipped_models": skipped,
            "missing": len(missing), "packed": examples is not None, "examples": examples,
            "seconds": seconds, "out_dir": str(out_dir), "line": line}


def define_flags() -> None:
    """The CLI's flags (defined only when run as a program, so importing this module defines none)."""
    flags.DEFINE_string("source", None, "'builtin', a ShapeNetCore v1 root (<synset>/<model>/model.obj) "
                        "or a folder of meshes (one category per sub-folder, or use --category)")
    flags.DEFINE_string("baseline_layout", None, "instead of --source: the baseline's data directory "
                        "holding ShapeNet_rendered/ and ShapeNet_v1/ (baseline §2.1)")
    flags.DEFINE_string("out", None, "output directory (default for builtin: generated/datasets/"
                        "sample_<size>[_v<views>])")
    flags.DEFINE_integer("views", 1, "views per model, 1..10", lower_bound=1, upper_bound=MAX_VIEWS)
    flags.DEFINE_integer("size", 64, "image size H = W in pixels", lower_bound=8)
    flags.DEFINE_integer("n_points", 1024, "points per ground-truth cloud", lower_bound=1)
    flags.DEFINE_string("split", "50/50", "'50/50' (train/test), '70/10/20' (train/val/test), any "
                        "'a/b[/c]', or a directory of the baseline's images_list_<synset>_<split>.npy")
    flags.DEFINE_integer("seed", 0, "seed of poses, GT sampling, splits and example order")
    flags.DEFINE_integer("workers", 0, "worker processes (0: build in this process)", lower_bound=0)
    flags.DEFINE_string("category", None, "only this category (name or synset); for a flat folder of "
                        "meshes, their category")
    flags.DEFINE_integer("max_models", None, "at most this many models per category", lower_bound=1)
    flags.DEFINE_integer("shard", 0, "build only the models at positions shard mod num_shards",
                         lower_bound=0)
    flags.DEFINE_integer("num_shards", 1, "number of disjoint parts of the build", lower_bound=1)
    flags.DEFINE_bool("pack_only", False, "build nothing; write TFRecords + index from the cache")
    flags.DEFINE_integer("examples_per_shard", EXAMPLES_PER_SHARD, "examples per TFRecord file",
                         lower_bound=1)
    flags.DEFINE_float("rotate_y_deg", 0.0, "turn every mesh of this source about its up axis by this many "
                       "degrees (right-handed) before normalising, so that its objects face the same way as "
                       "the rest of the data when the source says how")


def main(argv) -> int:
    """CLI entry point: builds, prints every skipped model and the summary line; 1 if nothing built."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if (f.source is None) == (f.baseline_layout is None):
        raise app.UsageError("give exactly one of --source and --baseline_layout")
    summary = build_dataset(source=f.source, out_dir=f.out, views=f.views, image_size=f.size,
                            n_points=f.n_points, split=f.split, seed=f.seed, workers=f.workers,
                            category=f.category, max_models=f.max_models, shard=f.shard,
                            num_shards=f.num_shards, pack_only=f.pack_only,
                            baseline_layout=f.baseline_layout,
                            examples_per_shard=f.examples_per_shard, progress=True,
                            rotate_y_deg=f.rotate_y_deg)
    for entry in summary["skipped_models"]:
        print(f"skipped {entry['category']}/{entry['model_id']}: {entry['reason']}")
    print(summary["line"])
    return 0 if summary["built"] else 1


if __name__ == "__main__":
    define_flags()
    app.run(main)
