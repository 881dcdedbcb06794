"""Point-cloud pictures: input image | for each view, the predicted cloud and the GT cloud from that viewpoint.

An evaluation's clouds.png (`evaluation_grid`) shows several different models of every category (not views of
one model), each row titled with its category and model id, each panel with its view angles in degrees.

Shape legend: M models, N/K points, H image size. Clouds are float `[N, 3]` in the RENDER frame of
`data.meshes` (object up = -x, the frame of the stored GT clouds and of aligned predictions). For display
they are turned into matplotlib's z-up frame: render -> canonical (y up) -> display (x, -z, y), so the
object stands upright. Figures are written with the Agg backend (no display needed) at a fixed size:
`FIGURE_INCHES_PER_PANEL * DPI` pixels per panel, which the tests check.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from data.meshes import CANONICAL_TO_RENDER  # noqa: E402

DPI = 100
FIGURE_INCHES_PER_PANEL = 2.0
# (elevation, azimuth) in degrees of matplotlib's 3D camera: a three-quarter view, the side, the top.
# 3D axes leave a wide empty margin; this zoom makes a unit object fill most of its panel.
PANEL_ZOOM = 1.4
TITLE_INCHES = 0.35  # room above every row of panels for its titles (two lines)
TITLE_CHARS = 34  # longest model id written in full over a 2-inch panel at the titles' font size
DEFAULT_VIEWS = ((20.0, -60.0), (10.0, 0.0), (80.0, -90.0))
EVALUATION_PNG = "clouds.png"  # the picture of an evaluation, beside its metrics.json
EVALUATION_MODELS = 3  # different models per category drawn in it (eval.py --plot_models)
# Canonical (y up) -> matplotlib display (z up): (x, y, z) -> (x, -z, y), a proper rotation.
_CANONICAL_TO_DISPLAY = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
RENDER_TO_DISPLAY = _CANONICAL_TO_DISPLAY @ CANONICAL_TO_RENDER.T


def to_display(points: np.ndarray) -> np.ndarray:
    """Render-frame points `[N, 3]` -> matplotlib display frame (z up) `[N, 3]` float64."""
    return np.asarray(points, dtype=np.float64) @ RENDER_TO_DISPLAY.T


def draw_cloud(ax, points: np.ndarray, view=DEFAULT_VIEWS[0], colours=None, title: str | None = None,
               point_size: float = 1.5) -> None:
    """Scatters one render-frame cloud on a 3D axis, equal aspect, no ticks.

    Args:
      ax: a matplotlib 3D axis.
      points: float `[N, 3]` render-frame cloud.
      view: (elevation, azimuth) in degrees.
      colours: optional float `[N, 3]` RGB in [0, 1]; otherwise coloured by height.
      title: optional axis title.
      point_size: marker area in points².
    """
    xyz = to_display(points)
    centre = (xyz.max(axis=0) + xyz.min(axis=0)) / 2.0
    half = max(float(np.max(xyz.max(axis=0) - xyz.min(axis=0))) / 2.0, 1e-6)
    colour_kw = {"c": np.clip(colours, 0.0, 1.0)} if colours is not None else {"c": xyz[:, 2], "cmap": "viridis"}
    ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], s=point_size, linewidths=0, depthshade=False, **colour_kw)
    for setter, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre):
        setter(c - half, c + half)
    ax.set_box_aspect((1.0, 1.0, 1.0), zoom=PANEL_ZOOM)
    ax.view_init(elev=view[0], azim=view[1])
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def new_figure(rows: int, cols: int):
    """A figure of rows × cols panels of FIGURE_INCHES_PER_PANEL inches at DPI (exact pixel size)."""
    return plt.figure(figsize=(cols * FIGURE_INCHES_PER_PANEL, rows * FIGURE_INCHES_PER_PANEL), dpi=DPI)


def save_figure(fig, out_path) -> Path:
    """Writes a figure as PNG (creating the folder), closes it and returns the path."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=DPI, format="png")
    plt.close(fig)
    return out_path


def view_label(view) -> str:
    """A matplotlib view (elevation, azimuth) as a title: "el 20°, az -60°"."""
    return f"el {view[0]:.0f}°, az {view[1]:.0f}°"


def cloud_grid(images, preds, gts, out_path, titles=None, pred_colours=None, views=DEFAULT_VIEWS) -> Path:
    """One row per model: input image | for each view, the prediction and (when given) the GT from that view.

    Args:
      images: float `[M, H, H, 3]` in [0, 1] (or uint8).
      preds: float `[M, N, 3]` predictions (align them to the GT frame first for a side-by-side reading).
      gts: float `[M, K, 3]` GT clouds, or None (no GT panels: inference on a new image).
      out_path: PNG to write.
      titles: optional M strings (model ids) shown over the image column.
      pred_colours: optional float `[M, N, 3]` predicted RGB per point.
      views: (elevation, azimuth) pairs in degrees of matplotlib's camera, written in the panel titles.

    Returns:
      The PNG path. Size: (1 + len(views) · (1 + (gts is not None))) × M panels of
      FIGURE_INCHES_PER_PANEL · DPI px.
    """
    n_gts = len(images) if gts is None else len(gts)
    if not len(images) == len(preds) == n_gts or len(images) == 0:
        raise ValueError(f"viz.clouds: need the same number (>= 1) of images, predictions and GT clouds, "
                         f"got {len(images)}, {len(preds)}, {n_gts}")
    per_view = 1 + (gts is not None)
    rows, cols = len(images), 1 + len(views) * per_view
    fig = new_figure(rows, cols)
    for m in range(rows):
        ax = fig.add_subplot(rows, cols, m * cols + 1)
        ax.imshow(np.asarray(images[m]))
        ax.set_axis_off()
        ax.set_title(titles[m] if titles is not None else "input", fontsize=7)
        for v, view in enumerate(views):
            first = m * cols + 2 + v * per_view
            colours = pred_colours[m] if pred_colours is not None else None
            draw_cloud(fig.add_subplot(rows, cols, first, projection="3d"), preds[m], view, colours,
                       title=f"prediction, {view_label(view)}")
            if gts is not None:
                draw_cloud(fig.add_subplot(rows, cols, first + 1, projection="3d"), gts[m], view,
                           title=f"GT, {view_label(view)}")
    height = rows * FIGURE_INCHES_PER_PANEL
    fig.subplots_adjust(left=0.01, right=0.99, top=1.0 - TITLE_INCHES / height, bottom=0.01, wspace=0.02,
                        hspace=TITLE_INCHES / (FIGURE_INCHES_PER_PANEL - TITLE_INCHES))
    return save_figure(fig, out_path)


def distinct_models(model_ids, categories, per_category: int) -> np.ndarray:
    """Indices of the first example of up to `per_category` different models of each category (file order).

    Args:
      model_ids, categories: str `[M]`.  per_category: models drawn per category.

    Returns:
      int `[<= per_category · categories]`, grouped by category (sorted), each model once.
    """
    chosen = []
    for category in sorted(set(categories)):
        seen = set()
        for i in np.flatnonzero(np.asarray(categories) == category):
            if model_ids[i] not in seen and len(seen) < per_category:
                seen.add(model_ids[i])
                chosen.append(i)
    return np.array(chosen, dtype=int)


def _shorten(text: str, limit: int = TITLE_CHARS) -> str:
    """`text`, cut to `limit` characters with an ellipsis when longer (a title that fits its panel)."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def evaluation_grid(evaluation, per_category: int) -> Path:
    """clouds.png of an evaluation: `per_category` different models of every category, aligned, each beside
    the first GT type's cloud seen from the same viewpoints.

    Args:
      evaluation: an `evaluation.run.Evaluation` (its predictions, rotated predictions and output folder).
      per_category: models drawn per category (at most those of the split).

    Returns:
      The PNG path, `<evaluation.out_dir>/clouds.png` (see `cloud_grid`).
    """
    preds, first = evaluation.predictions, next(iter(evaluation.rotated))
    shown = distinct_models(preds.model_id, preds.category, per_category)
    return cloud_grid(preds.images[shown], evaluation.rotated[first][shown], preds.gt[first][shown],
                      evaluation.out_dir / EVALUATION_PNG,
                      titles=[f"{preds.category[i]}\n{_shorten(preds.model_id[i])}" for i in shown],
                      pred_colours=preds.rgb[shown])
