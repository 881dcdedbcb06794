"""The one place where the training flags are defined (train.py and the presets/ flagfiles use them).

eval.py, predict.py and make_knn_list.py define only their own few flags and read a run's configuration
from the run directory (model.run_config).

Flag names and defaults mirror the baseline's ``main.py`` (baseline §9) so that its ``run.sh`` lines
translate one to one into flagfiles (see ``presets/``). New flags (the study's KRO loss and GT
supervision, the corrected forms of the baseline's quirks, the projection/Chamfer back-ends, data paths,
reliability) are grouped after the baseline's. The defaults of the flags that configure the step are those
of :class:`model.config.TrainConfig`, and every choice list is the constant of the module that implements it.
Library code never reads these flags: :func:`train_config_from_flags` turns them into an explicit
:class:`model.config.TrainConfig` (through :func:`model.run_config.train_config_from_flag_values`).
"""

from absl import flags

from data.neighbours import BASELINE_RANKS
from data.tfrecords import parse_categories
from losses import chamfer, cycle, image, kro
from model import layers, monitor, optimizer, projection
from model.config import GT_TYPES, TrainConfig
from model.run_config import train_config_from_flag_values
from model.trainer import STRATEGY_MODES, parse_strategy_mode

FLAGS = flags.FLAGS
_TRAIN, _KRO = TrainConfig(), TrainConfig().kro  # the defaults of the step's configuration
#: The flags that weight a loss term: refused when negative.
WEIGHT_FLAGS = ("lambda_ae", "lambda_ae_pose", "lambda_ae_mask", "lambda_mask_fwd", "lambda_mask_bwd",
                "lambda_mask_pose", "lambda_3d", "lambda_pose", "lambda_symm", "lambda_kro", "lambda_gt",
                "kro_angle_weight")


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines the training flags in ``flag_values`` (train.py: the global FLAGS; tests: a fresh FlagValues)."""
    # --- Baseline flags (baseline §9; defaults of main.py, not of run.sh) -----------------------------------
    flags.DEFINE_string("exp", None, "Run directory: checkpoints, logs, renders, clouds and the flags used.",
                        flag_values=flag_values)
    flags.DEFINE_string("gpu", "1", "Accepted for compatibility with the baseline's scripts and ignored: the baseline "
                        "set CUDA_VISIBLE_DEVICES from it (§8, §13.8); we never touch that variable, set it yourself "
                        "to restrict the GPUs used.", flag_values=flag_values)
    flags.DEFINE_string("dataset", "shapenet_train", "Accepted for compatibility; unused, as in the baseline (§9).",
                        flag_values=flag_values)
    flags.DEFINE_boolean("use_gt_pose", _TRAIN.use_gt_pose, "Render the first projection at the ground-truth pose "
                         "instead of the pose net's prediction; the pose net is then not trained (§6, §7.8).",
                         flag_values=flag_values)
    flags.DEFINE_boolean("optimise_pose", _TRAIN.optimise_pose, "Train the pose net with its own Adam optimiser "
                         "(§7.8).", flag_values=flag_values)
    flags.DEFINE_boolean("overfit", False, "Draw the first batch once and reuse it every step (§2.4).",
                         flag_values=flag_values)
    flags.DEFINE_boolean("load_model", False, "Accepted for compatibility and ignored: training always resumes from "
                         "the newest checkpoint in <exp>/checkpoints when there is one.", flag_values=flag_values)
    flags.DEFINE_boolean("affinity_loss", _TRAIN.affinity_loss, "Add the 2D Chamfer ('affinity') mask terms (§7.3).",
                         flag_values=flag_values)
    flags.DEFINE_boolean("symmetry_loss", _TRAIN.symmetry_loss, "Add the symmetry loss with weight --lambda_symm "
                         "(§7.6).", flag_values=flag_values)
    flags.DEFINE_enum("loss", _TRAIN.mask_loss, image.MASK_LOSS_KINDS, "Mask loss: 'bce' = the baseline's sigmoid "
                      "cross entropy on the tanh silhouette used as logits; 'bce_prob' = true BCE (§7.2).",
                      flag_values=flag_values)
    flags.DEFINE_enum("_3d_loss_type", _TRAIN.cycle_mode, cycle.CYCLE_MODES, "Geometric cycle loss: Chamfer to the "
                      "first reconstruction or between neighbours (§7.4).", flag_values=flag_values)
    flags.DEFINE_integer("N_ITERS", 100001, "Number of training steps (the run stops when the step counter reaches "
                         "it; resumed runs count from their checkpoint).", lower_bound=0, flag_values=flag_values)
    flags.DEFINE_integer("batch_size", 1, "Global batch size B (split evenly over the devices).", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_integer("H", _TRAIN.image_size, "Image height (must equal --W; images are square).",
                         flag_values=flag_values)
    flags.DEFINE_integer("W", _TRAIN.image_size, "Image width (must equal --H).", flag_values=flag_values)
    flags.DEFINE_integer("bottleneck", _TRAIN.bottleneck, "Width of the first dense layer of each branch (§3, §4).",
                         flag_values=flag_values)
    flags.DEFINE_integer("N_PTS", _TRAIN.n_points, "Number N of predicted points.", flag_values=flag_values)
    flags.DEFINE_integer("N_PROJ", _TRAIN.n_proj, "Number P of projections: 1 at the predicted pose + P-1 random "
                         "(§6).", flag_values=flag_values)
    flags.DEFINE_string("categ", "car", "Category to train on ('car', 'chair', ...; comma-separated list or 'all' for "
                        "every category of the data set).", flag_values=flag_values)
    flags.DEFINE_float("sigma_sq", _TRAIN.sigma_sq, "Variance (px²) of the silhouette's Gaussian splat (§5.3).",
                       flag_values=flag_values)
    flags.DEFINE_float("lr", _TRAIN.lr, "Learning rate of both Adam optimisers (§7.8).", flag_values=flag_values)
    flags.DEFINE_float("beta1", _TRAIN.beta1, "Adam beta_1 of both optimisers (§7.8).", flag_values=flag_values)
    flags.DEFINE_integer("print_n", 100, "Log the running mean of every loss every print_n steps (§8).",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("save_n", 1000, "Save renders and clouds of the current batch every save_n steps (§8).",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("save_model_n", 5000, "Save a checkpoint every save_model_n steps (§8).",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_float("lambda_ae", _TRAIN.lambda_ae, "Weight of the image loss in the recon loss (§7.8).",
                       flag_values=flag_values)
    flags.DEFINE_float("lambda_ae_pose", _TRAIN.lambda_ae_pose, "Weight of the image loss in the pose loss (§7.8).",
                       flag_values=flag_values)
    flags.DEFINE_float("lambda_ae_mask", _TRAIN.lambda_ae_mask, "Weight of the mask loss in the recon loss (§7.8).",
                       flag_values=flag_values)
    flags.DEFINE_float("lambda_mask_fwd", _TRAIN.lambda_mask_fwd, "Weight of the forward affinity term (§7.3, §7.8).",
                       flag_values=flag_values)
    flags.DEFINE_float("lambda_mask_bwd", _TRAIN.lambda_mask_bwd, "Weight of the backward affinity term (§7.3, "
                       "§7.8).", flag_values=flag_values)
    flags.DEFINE_float("lambda_mask_pose", _TRAIN.lambda_mask_pose, "Weight of the mask loss in the pose loss (§7.8).",
                       flag_values=flag_values)
    flags.DEFINE_float("lambda_3d", _TRAIN.lambda_3d, "Weight of the geometric cycle loss (§7.4, §7.8).",
                       flag_values=flag_values)
    flags.DEFINE_float("lambda_pose", _TRAIN.lambda_pose, "Weight of the pose cycle loss in the pose loss (§7.5, "
                       "§7.8).", flag_values=flag_values)
    flags.DEFINE_float("lambda_symm", _TRAIN.lambda_symm, "Weight of the symmetry loss when --symmetry_loss (§7.6).",
                       flag_values=flag_values)
    flags.DEFINE_boolean("use_mult_proj", _TRAIN.use_mult_proj, "Add the nearest-neighbour mask terms of the "
                         "baseline's multiple_mask_main.py (§7.7) to the recon loss, weighted like the main mask "
                         "terms; needs --knn_list (the baseline's own NN script only logged them).",
                         flag_values=flag_values)

    # --- Corrected forms of the baseline's quirks (baseline §7, §13.6); off = the baseline's code ----------
    flags.DEFINE_enum("affinity_form", _TRAIN.affinity_form, image.AFFINITY_FORMS, "Affinity terms: the closed form "
                      "the baseline's code computes, or a real distance-weighted 2D Chamfer (the paper's intent, "
                      "§7.3).", flag_values=flag_values)
    flags.DEFINE_boolean("include_last_render", _TRAIN.include_last_render, "Geometric cycle loss: also use the "
                         "reconstruction of the last render, which the baseline's init_model loop skips (§7.4).",
                         flag_values=flag_values)
    flags.DEFINE_boolean("pose_wrap", _TRAIN.pose_wrap, "Pose cycle loss: wrap angle differences to (-pi, pi] (§7.5).",
                         flag_values=flag_values)
    flags.DEFINE_enum("symmetry_kind", _TRAIN.symmetry_kind, cycle.SYMMETRY_KINDS, "Symmetry loss of main.py (Chamfer "
                      "between the two halves) or of multiple_mask_main.py (§7.6).", flag_values=flag_values)
    flags.DEFINE_boolean("weight_decay", _TRAIN.weight_decay, "Add the declared L2 regularisers (§3) to the losses; "
                         "the baseline declares them but never applies them.", flag_values=flag_values)

    # --- Departures that make training learn (README "Why training collapses"); off = the baseline ---------
    flags.DEFINE_enum("dense_init", _TRAIN.dense_init, layers.DENSE_INITS, "Initialiser of the dense layers: "
                      "'tflearn' = the baseline's truncated normal (0, 0.02), which shrinks the signal of each "
                      "128-wide layer about 4x, so that training first fits the mean shape; 'he' = He-normal for "
                      "the ReLU layers and Glorot-uniform for the linear heads (model/layers.py).",
                      flag_values=flag_values)

    # --- The study's additions (mission.md, baseline §11) ---------------------------------------------------
    flags.DEFINE_boolean("k_random_octant_loss", _KRO.enabled, "Add the K-Random-Octant loss with weight "
                         "--lambda_kro.", flag_values=flag_values)
    flags.DEFINE_float("lambda_kro", _KRO.weight, "Weight of the KRO loss.", flag_values=flag_values)
    flags.DEFINE_integer("max_k", _KRO.max_k, "KRO: k is drawn uniformly from [min_k, max_k] every step.",
                         flag_values=flag_values)
    flags.DEFINE_integer("min_k", _KRO.min_k, "KRO: smallest k.", flag_values=flag_values)
    flags.DEFINE_enum("kro_variant", _KRO.variant, kro.VARIANTS, "KRO form: the authors' signed difference "
                      "('faithful'), the bounded scale-normalised one ('sound'), or the report's two future-work "
                      "variants.", flag_values=flag_values)
    flags.DEFINE_boolean("kro_round_k", _KRO.round_k, "KRO: draw k = round(U(min_k, max_k)) as the authors' code did "
                         "(end values half as likely) instead of a uniform integer.", flag_values=flag_values)
    flags.DEFINE_boolean("kro_squared", _KRO.squared, "KRO faithful: sum squared anchor distances (the report's "
                         "formula) instead of the code's unsquared ones.", flag_values=flag_values)
    flags.DEFINE_boolean("kro_safe_norm", _KRO.safe_norm, "KRO faithful: zero instead of NaN gradient where an anchor "
                         "is the centre point (every odd k); the default reproduces the NaN, whose steps are skipped.",
                         flag_values=flag_values)
    flags.DEFINE_enum("kro_cell_penalty", _KRO.cell_penalty, kro.CELL_PENALTIES, "KRO sound variants: per-cell "
                      "penalty.", flag_values=flag_values)
    flags.DEFINE_float("kro_angle_weight", _KRO.angle_weight, "KRO anchor_angle variant: weight of the angle "
                       "regulariser.", flag_values=flag_values)
    flags.DEFINE_boolean("use_gt_pcl", _TRAIN.use_gt_pcl, "Supervise the first reconstruction with the ground-truth "
                         "cloud (Chamfer, weight --lambda_gt); KRO then compares against that cloud instead of the "
                         "pseudo ground truth (the first reconstruction).", flag_values=flag_values)
    flags.DEFINE_enum("gt_type", _TRAIN.gt_type, GT_TYPES, "Ground-truth cloud: the baseline's (16k uniform -> FPS "
                      "1024) or the study's area-based sampling.", flag_values=flag_values)
    flags.DEFINE_float("lambda_gt", _TRAIN.lambda_gt, "Weight of the ground-truth Chamfer loss when --use_gt_pcl.",
                       flag_values=flag_values)

    # --- Back-ends, data, reproducibility, reliability -------------------------------------------------------
    flags.DEFINE_enum("projection", _TRAIN.projection, projection.METHODS, "Renderer (§5.3–5.4, all with the "
                      "same values and gradients): the custom op Projection ('fused'), the sparse TF form ('fast'), "
                      "the baseline's dense form ('faithful'), or 'auto': the op when it is built and loads, else "
                      "'fast' (the choice is logged).", flag_values=flag_values)
    flags.DEFINE_enum("chamfer_backend", _TRAIN.chamfer_backend, chamfer.BACKEND_CHOICES, "Nearest-neighbour back-end "
                      "of every Chamfer distance: the custom op, pure TensorFlow, or the best available.",
                      flag_values=flag_values)
    flags.DEFINE_enum("adam", _TRAIN.adam, optimizer.ADAM_UPDATES, "Update of both Adam optimisers (§7.8; the same "
                      "arithmetic and checkpoints either way): 'fused', one ResourceApplyAdam kernel per variable as "
                      "TF1's AdamOptimizer ran it, or 'keras', keras.optimizers.Adam's element-wise ops.",
                      flag_values=flag_values)
    flags.DEFINE_integer("seed", _TRAIN.seed, "Seed of the weights, the data order and the random poses.",
                         flag_values=flag_values)
    flags.DEFINE_string("data_dir", "", "Data set built by `python -m data.build`. Empty: the built-in sample at "
                        "generated/datasets/sample_<H>[_v<data_views>], built automatically when missing.",
                        flag_values=flag_values)
    flags.DEFINE_integer("data_views", 4, "Views per model when the built-in sample is built automatically.",
                         flag_values=flag_values)
    flags.DEFINE_integer("procedural_models", 0, "Without --data_dir: when > 0, train on the procedural source "
                         "(data/procedural: generated cars and chairs for development and tests, never ShapeNet) "
                         "with this many models per category, one view each, split 80/20, built automatically "
                         "when missing into generated/datasets/procedural_<H>_m<N>; 0: the built-in sample.",
                         lower_bound=0, flag_values=flag_values)
    flags.DEFINE_string("split", "train", "Split of the data set to train on.", flag_values=flag_values)
    flags.DEFINE_string("knn_list", "", "Nearest-neighbour list (.npy: the baseline's knn_list_<synset>.npy or one "
                        "written by `python make_knn_list.py`): train on its anchors, each paired every step with a "
                        "listed neighbour; the §7.7 terms are then logged (and trained with --use_mult_proj).",
                        flag_values=flag_values)
    flags.DEFINE_integer("knn_ranks", BASELINE_RANKS, "Neighbour ranks drawn from, 1..knn_ranks (the baseline's "
                         "writer: 5, §2.7).", lower_bound=1, flag_values=flag_values)
    flags.DEFINE_integer("monitor_images", monitor.DEFAULT_PROBE_IMAGES, "Collapse monitor: the first this many "
                         "training images are probed every --print_n steps for dead units and the across-image "
                         "spread of every layer and of the cloud (<exp>/monitor.csv, TensorBoard); 0 turns it off.",
                         lower_bound=0, flag_values=flag_values)
    flags.DEFINE_integer("max_nonfinite", _TRAIN.max_nonfinite, "Stop training after this many steps in a row with a "
                         "non-finite loss or gradient (each such step is skipped and logged).", lower_bound=1,
                         flag_values=flag_values)
    flags.DEFINE_integer("keep_checkpoints", 2, "Checkpoints kept in <exp>/checkpoints (the baseline kept 2, §8).",
                         lower_bound=1, flag_values=flag_values)
    flags.DEFINE_string("distribute", "auto", f"One of {', '.join(STRATEGY_MODES)}. 'auto': "
                        "MultiWorkerMirroredStrategy when TF_CONFIG is set, MirroredStrategy over the local GPUs "
                        "when there are any, else the default strategy; 'none': always the default strategy; "
                        "'gpu' / 'gpu:N': MirroredStrategy over every GPU / the first N; 'cpu:N': over N logical "
                        "devices made of the CPU (for development).", flag_values=flag_values)
    flags.register_validator("distribute", _valid_strategy_mode, flag_values=flag_values)


def _valid_strategy_mode(mode: str) -> bool:
    try:
        parse_strategy_mode(mode)
    except ValueError as err:
        raise flags.ValidationError(str(err)) from None
    return True


def flag_names(flag_values: flags.FlagValues = FLAGS) -> tuple[str, ...]:
    """Every flag :func:`define_flags` defined, in definition order (what train.py writes to <exp>/flags.txt)."""
    return tuple(flag.name for flag in flag_values.get_flags_for_module(__name__))


def flags_dict(flag_values: flags.FlagValues = FLAGS) -> dict:
    """Values of every training flag, by name (JSON-serialisable)."""
    return {name: flag_values[name].value for name in flag_names(flag_values)}


def flagfile_text(flag_values: flags.FlagValues = FLAGS) -> str:
    """The training flags as an absl flagfile (one ``--name=value`` line each)."""
    return "".join(flag_values[name].serialize() + "\n" for name in flag_names(flag_values))


def categories_from_flag(categ: str) -> list[str] | None:
    """``--categ`` as a list of category names, or None for 'all'."""
    try:
        return parse_categories(categ)
    except ValueError as err:
        raise ValueError(f"--categ: {err}") from None


def train_config_from_flags(flag_values: flags.FlagValues = FLAGS) -> TrainConfig:
    """The training configuration the parsed flags describe.

    Raises:
        ValueError: inconsistent flags (non-square images, a negative loss weight, --use_mult_proj without
            --knn_list, ...).
    """
    f = flag_values
    if f.H != f.W:
        raise ValueError(f"--H={f.H} and --W={f.W} differ; images are square")
    negative = [f"--{name}={f[name].value}" for name in flag_names(f) if name in WEIGHT_FLAGS and f[name].value < 0]
    if negative:
        raise ValueError(f"{', '.join(negative)}: a loss weight must be >= 0 (a negative weight maximises its "
                         "loss)")
    if f.use_mult_proj and not f.knn_list:
        raise ValueError("--use_mult_proj (§7.7) needs nearest-neighbour pairs: give --knn_list (compute one "
                         "from a trained run with `python make_knn_list.py`)")
    return train_config_from_flag_values(flags_dict(f))
