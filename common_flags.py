"""The one place where the training flags are defined (train.py and the presets/ flagfiles use them).

eval.py and predict.py define only their own few flags and read a run's training flags back from
``<exp>/flags.json``.

Flag names and defaults mirror the baseline's ``main.py`` (baseline §9) so that its ``run.sh`` lines
translate one to one into flagfiles (see ``presets/``). New flags (the study's KRO loss and GT
supervision, the corrected forms of the baseline's quirks, the projection/Chamfer back-ends, data paths,
reliability) are grouped after the baseline's. Library code never reads these flags:
:func:`train_config_from_flags` turns them into an explicit :class:`model.trainer.TrainConfig`.
"""

from absl import flags

from model.config import TrainConfig

FLAGS = flags.FLAGS

# --- Baseline flags (baseline §9; defaults of main.py, not of run.sh) -----------------------------------
flags.DEFINE_string("exp", None, "Run directory: checkpoints, logs, renders, clouds and the flags used.")
flags.DEFINE_string("gpu", "1", "Accepted for compatibility with the baseline's scripts and ignored: the "
                    "baseline set CUDA_VISIBLE_DEVICES from it (§8, §13.8); we never touch that variable, "
                    "set it yourself to restrict the GPUs used.")
flags.DEFINE_string("dataset", "shapenet_train", "Accepted for compatibility; unused, as in the baseline (§9).")
flags.DEFINE_boolean("use_gt_pose", False, "Render the first projection at the ground-truth pose instead of "
                     "the pose net's prediction; the pose net is then not trained (§6, §7.8).")
flags.DEFINE_boolean("optimise_pose", False, "Train the pose net with its own Adam optimiser (§7.8).")
flags.DEFINE_boolean("overfit", False, "Draw the first batch once and reuse it every step (§2.4).")
flags.DEFINE_boolean("load_model", False, "Accepted for compatibility and ignored: training always resumes "
                     "from the newest checkpoint in <exp>/checkpoints when there is one.")
flags.DEFINE_boolean("affinity_loss", False, "Add the 2D Chamfer ('affinity') mask terms (§7.3).")
flags.DEFINE_boolean("symmetry_loss", False, "Add the symmetry loss with weight --lambda_symm (§7.6).")
flags.DEFINE_enum("loss", "bce", ["bce", "bce_prob"], "Mask loss: 'bce' = the baseline's sigmoid cross "
                  "entropy on the tanh silhouette used as logits; 'bce_prob' = true BCE (§7.2).")
flags.DEFINE_enum("_3d_loss_type", "init_model", ["init_model", "adj_model"],
                  "Geometric cycle loss: Chamfer to the first reconstruction or between neighbours (§7.4).")
flags.DEFINE_integer("N_ITERS", 100001, "Number of training steps (the run stops when the step counter "
                     "reaches it; resumed runs count from their checkpoint).")
flags.DEFINE_integer("batch_size", 1, "Global batch size B (split evenly over the devices).")
flags.DEFINE_integer("H", 64, "Image height (must equal --W; images are square).")
flags.DEFINE_integer("W", 64, "Image width (must equal --H).")
flags.DEFINE_integer("bottleneck", 128, "Width of the first dense layer of each branch (§3, §4).")
flags.DEFINE_integer("N_PTS", 1024, "Number N of predicted points.")
flags.DEFINE_integer("N_PROJ", 2, "Number P of projections: 1 at the predicted pose + P-1 random (§6).")
flags.DEFINE_string("categ", "car", "Category to train on ('car', 'chair', ...; comma-separated list or "
                    "'all' for every category of the data set).")
flags.DEFINE_float("sigma_sq", 0.4, "Variance (px²) of the silhouette's Gaussian splat (§5.3).")
flags.DEFINE_float("lr", 1e-6, "Learning rate of both Adam optimisers (§7.8).")
flags.DEFINE_float("beta1", 0.9, "Adam beta_1 of both optimisers (§7.8).")
flags.DEFINE_integer("print_n", 100, "Log the running mean of every loss every print_n steps (§8).")
flags.DEFINE_integer("save_n", 1000, "Save renders and clouds of the current batch every save_n steps (§8).")
flags.DEFINE_integer("save_model_n", 5000, "Save a checkpoint every save_model_n steps (§8).")
flags.DEFINE_float("lambda_ae", 1.0, "Weight of the image loss in the recon loss (§7.8).")
flags.DEFINE_float("lambda_ae_pose", 1.0, "Weight of the image loss in the pose loss (§7.8).")
flags.DEFINE_float("lambda_ae_mask", 1.0, "Weight of the mask loss in the recon loss (§7.8).")
flags.DEFINE_float("lambda_mask_fwd", 1.0, "Weight of the forward affinity term (§7.3, §7.8).")
flags.DEFINE_float("lambda_mask_bwd", 1.0, "Weight of the backward affinity term (§7.3, §7.8).")
flags.DEFINE_float("lambda_mask_pose", 1.0, "Weight of the mask loss in the pose loss (§7.8).")
flags.DEFINE_float("lambda_3d", 1.0, "Weight of the geometric cycle loss (§7.4, §7.8).")
flags.DEFINE_float("lambda_pose", 0.0, "Weight of the pose cycle loss in the pose loss (§7.5, §7.8).")
flags.DEFINE_float("lambda_symm", 0.0, "Weight of the symmetry loss when --symmetry_loss (§7.6).")
flags.DEFINE_boolean("use_mult_proj", False, "Add the nearest-neighbour mask terms of the baseline's "
                     "multiple_mask_main.py (§7.7) to the recon loss, weighted like the main mask terms; "
                     "needs --knn_list (the baseline's own NN script only logged them).")

# --- Corrected forms of the baseline's quirks (baseline §7, §13.6); off = the baseline's code ----------
flags.DEFINE_enum("affinity_form", "closed", ["closed", "chamfer2d"], "Affinity terms: the closed form the "
                  "baseline's code computes, or a real distance-weighted 2D Chamfer (the paper's intent, §7.3).")
flags.DEFINE_boolean("include_last_render", False, "Geometric cycle loss: also use the reconstruction of "
                     "the last render, which the baseline's init_model loop skips (§7.4).")
flags.DEFINE_boolean("pose_wrap", False, "Pose cycle loss: wrap angle differences to (-pi, pi] (§7.5).")
flags.DEFINE_enum("symmetry_kind", "main", ["main", "multi_mask"], "Symmetry loss of main.py (Chamfer between "
                  "the two halves) or of multiple_mask_main.py (§7.6).")
flags.DEFINE_boolean("weight_decay", False, "Add the declared L2 regularisers (§3) to the losses; the "
                     "baseline declares them but never applies them.")

# --- The study's additions (mission.md, baseline §11) ---------------------------------------------------
flags.DEFINE_boolean("k_random_octant_loss", False, "Add the K-Random-Octant loss with weight --lambda_kro.")
flags.DEFINE_float("lambda_kro", 1.0, "Weight of the KRO loss.")
flags.DEFINE_integer("max_k", 4, "KRO: k is drawn uniformly from [min_k, max_k] every step.")
flags.DEFINE_integer("min_k", 1, "KRO: smallest k.")
flags.DEFINE_enum("kro_variant", "faithful", ["faithful", "sound", "random_partition", "anchor_angle"],
                  "KRO form: the authors' signed difference ('faithful'), the bounded scale-normalised one "
                  "('sound'), or the report's two future-work variants.")
flags.DEFINE_boolean("kro_round_k", False, "KRO: draw k = round(U(min_k, max_k)) as the authors' code did "
                     "(end values half as likely) instead of a uniform integer.")
flags.DEFINE_boolean("kro_squared", False, "KRO faithful: sum squared anchor distances (the report's "
                     "formula) instead of the code's unsquared ones.")
flags.DEFINE_boolean("kro_safe_norm", False, "KRO faithful: zero instead of NaN gradient where an anchor is "
                     "the centre point (every odd k); the default reproduces the NaN, whose steps are skipped.")
flags.DEFINE_enum("kro_cell_penalty", "abs", ["abs", "squared"], "KRO sound variants: per-cell penalty.")
flags.DEFINE_float("kro_angle_weight", 1.0, "KRO anchor_angle variant: weight of the angle regulariser.")
flags.DEFINE_boolean("use_gt_pcl", False, "Supervise the first reconstruction with the ground-truth cloud "
                     "(Chamfer, weight --lambda_gt); KRO then compares against that cloud instead of the "
                     "pseudo ground truth (the first reconstruction).")
flags.DEFINE_enum("gt_type", "uniform", ["uniform", "area"], "Ground-truth cloud: the baseline's (16k uniform "
                  "-> FPS 1024) or the study's area-based sampling.")
flags.DEFINE_float("lambda_gt", 1.0, "Weight of the ground-truth Chamfer loss when --use_gt_pcl.")

# --- Back-ends, data, reproducibility, reliability -------------------------------------------------------
flags.DEFINE_enum("projection", "auto", ["auto", "fused", "fast", "faithful"], "Renderer (§5.3–5.4, all with "
                  "the same values and gradients): the custom op Projection ('fused'), the sparse TF form "
                  "('fast'), the baseline's dense form ('faithful'), or 'auto': the op when it is built and "
                  "loads, else 'fast' (the choice is logged).")
flags.DEFINE_enum("chamfer_backend", "auto", ["auto", "op", "tf"], "Nearest-neighbour back-end of every "
                  "Chamfer distance: the custom op, pure TensorFlow, or the best available.")
flags.DEFINE_enum("adam", "fused", ["fused", "keras"], "Update of both Adam optimisers (§7.8; the same "
                  "arithmetic and checkpoints either way): 'fused', one ResourceApplyAdam kernel per variable as "
                  "TF1's AdamOptimizer ran it, or 'keras', keras.optimizers.Adam's element-wise ops.")
flags.DEFINE_integer("seed", 0, "Seed of the weights, the data order and the random poses.")
flags.DEFINE_string("data_dir", "", "Data set built by `python -m data.build`. Empty: the built-in sample "
                    "at generated/datasets/sample_<H>[_v<data_views>], built automatically when missing.")
flags.DEFINE_integer("data_views", 4, "Views per model when the built-in sample is built automatically.")
flags.DEFINE_string("split", "train", "Split of the data set to train on.")
flags.DEFINE_string("knn_list", "", "Nearest-neighbour list (.npy: the baseline's knn_list_<synset>.npy or one "
                    "written by `python -m data.neighbours`): train on its anchors, each paired every step "
                    "with a listed neighbour; the §7.7 terms are then logged (and trained with "
                    "--use_mult_proj).")
flags.DEFINE_integer("knn_ranks", 5, "Neighbour ranks drawn from, 1..knn_ranks (the baseline's writer: 5, "
                     "§2.7).", lower_bound=1)
flags.DEFINE_integer("max_nonfinite", 20, "Stop training after this many steps in a row with a non-finite "
                     "loss or gradient (each such step is skipped and logged).")
flags.DEFINE_integer("keep_checkpoints", 2, "Checkpoints kept in <exp>/checkpoints (the baseline kept 2, §8).")
flags.DEFINE_enum("distribute", "auto", ["auto", "none"], "'auto': MultiWorkerMirroredStrategy when "
                  "TF_CONFIG is set, MirroredStrategy over the local GPUs when there are any, else the "
                  "default strategy; 'none': always the default strategy.")

#: Every flag this module defines, in definition order (what train.py writes to <exp>/flags.txt).
FLAG_NAMES = tuple(flag.name for flag in FLAGS.get_flags_for_module(__name__))


def flags_dict() -> dict:
    """Values of every flag of this module, by name (JSON-serialisable)."""
    return {name: FLAGS[name].value for name in FLAG_NAMES}


def flagfile_text() -> str:
    """The flags of this module as an absl flagfile (one ``--name=value`` line each)."""
    return "".join(FLAGS[name].serialize() + "\n" for name in FLAG_NAMES)


def categories_from_flag(categ: str) -> list[str] | None:
    """``--categ`` as a list of category names, or None for 'all'."""
    if categ.strip() == "all":
        return None
    names = [c.strip() for c in categ.split(",") if c.strip()]
    if not names:
        raise ValueError("--categ is empty; give a category name, a comma-separated list or 'all'")
    return names


def train_config_from_flags() -> TrainConfig:
    """The training configuration the parsed flags describe.

    Raises:
        ValueError: inconsistent flags (non-square images, --use_mult_proj without --knn_list, ...).
    """
    f = FLAGS
    if f.H != f.W:
        raise ValueError(f"--H={f.H} and --W={f.W} differ; images are square")
    if f.use_mult_proj and not f.knn_list:
        raise ValueError("--use_mult_proj (§7.7) needs nearest-neighbour pairs: give --knn_list (compute one "
                         "from a trained run with `python -m data.neighbours`)")
    return TrainConfig(
        image_size=f.H, n_points=f.N_PTS, n_proj=f.N_PROJ, bottleneck=f.bottleneck, sigma_sq=f.sigma_sq,
        lr=f.lr, beta1=f.beta1,
        lambda_ae=f.lambda_ae, lambda_ae_pose=f.lambda_ae_pose, lambda_ae_mask=f.lambda_ae_mask,
        lambda_mask_fwd=f.lambda_mask_fwd, lambda_mask_bwd=f.lambda_mask_bwd,
        lambda_mask_pose=f.lambda_mask_pose, lambda_3d=f.lambda_3d, lambda_pose=f.lambda_pose,
        lambda_symm=f.lambda_symm,
        mask_loss=f.loss, affinity_loss=f.affinity_loss, affinity_form=f.affinity_form,
        cycle_mode=f._3d_loss_type, include_last_render=f.include_last_render, pose_wrap=f.pose_wrap,
        symmetry_loss=f.symmetry_loss, symmetry_kind=f.symmetry_kind, weight_decay=f.weight_decay,
        use_gt_pose=f.use_gt_pose, optimise_pose=f.optimise_pose,
        kro=f.k_random_octant_loss, lambda_kro=f.lambda_kro, min_k=f.min_k, max_k=f.max_k,
        kro_variant=f.kro_variant, kro_round_k=f.kro_round_k, kro_squared=f.kro_squared,
        kro_safe_norm=f.kro_safe_norm, kro_cell_penalty=f.kro_cell_penalty, kro_angle_weight=f.kro_angle_weight,
        use_gt_pcl=f.use_gt_pcl, gt_type=f.gt_type, lambda_gt=f.lambda_gt,
        neighbours=bool(f.knn_list), use_mult_proj=f.use_mult_proj,
        projection=f.projection, chamfer_backend=f.chamfer_backend, adam=f.adam, seed=f.seed,
        max_nonfinite=f.max_nonfinite,
    )
