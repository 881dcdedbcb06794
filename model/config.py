"""Explicit configuration of the training step (built from the flags by common_flags.py).

Field names follow the baseline's flags (baseline §9) in snake case; the study's additions and the
switches to the corrected forms of the baseline's quirks (§7, §13.6) are documented per field.
"""

import dataclasses

MASK_LOSSES = ("bce", "bce_prob")
AFFINITY_FORMS = ("closed", "chamfer2d")
CYCLE_MODES = ("init_model", "adj_model")
SYMMETRY_KINDS = ("main", "multi_mask")
KRO_VARIANTS = ("faithful", "sound", "random_partition", "anchor_angle")
KRO_CELL_PENALTIES = ("abs", "squared")
GT_TYPES = ("uniform", "area")
PROJECTIONS = ("auto", "fused", "fast", "faithful")
CHAMFER_BACKENDS = ("auto", "op", "tf")
ADAM_UPDATES = ("fused", "keras")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training step depends on (networks, losses, optimisers, randomness).

    Defaults are those of the baseline's main.py (§9), not of its run.sh.
    """

    image_size: int = 64              # --H = --W
    n_points: int = 1024              # --N_PTS
    n_proj: int = 2                   # --N_PROJ: 1 at the predicted (or GT) pose + P−1 random (§6)
    bottleneck: int = 128             # --bottleneck (§3, §4)
    sigma_sq: float = 0.4             # --sigma_sq (§5.3)
    lr: float = 1e-6                  # --lr, both optimisers (§7.8)
    beta1: float = 0.9                # --beta1, both optimisers (§7.8)
    lambda_ae: float = 1.0            # §7.8 weights
    lambda_ae_pose: float = 1.0
    lambda_ae_mask: float = 1.0
    lambda_mask_fwd: float = 1.0
    lambda_mask_bwd: float = 1.0
    lambda_mask_pose: float = 1.0
    lambda_3d: float = 1.0
    lambda_pose: float = 0.0
    lambda_symm: float = 0.0
    mask_loss: str = "bce"            # --loss (§7.2)
    affinity_loss: bool = False       # --affinity_loss (§7.3)
    affinity_form: str = "closed"     # "chamfer2d": the paper's intent (§7.3)
    cycle_mode: str = "init_model"    # --_3d_loss_type (§7.4)
    include_last_render: bool = False  # fix of the init_model off-by-one (§7.4)
    pose_wrap: bool = False           # angle wrap-around in the pose L1 (§7.5)
    symmetry_loss: bool = False       # --symmetry_loss (§7.6)
    symmetry_kind: str = "main"       # main.py or multiple_mask_main.py definition (§7.6)
    weight_decay: bool = False        # apply the declared L2 terms (§3; inactive in the baseline)
    use_gt_pose: bool = False         # --use_gt_pose (§6)
    optimise_pose: bool = False       # --optimise_pose (§7.8)
    kro: bool = False                 # --k_random_octant_loss (mission.md, §11.1)
    lambda_kro: float = 1.0
    min_k: int = 1
    max_k: int = 4
    kro_variant: str = "faithful"
    kro_round_k: bool = False         # draw k = round(U(min_k, max_k)) like the fork (ends half as likely)
    kro_squared: bool = False         # faithful: squared anchor distances (the report's formula)
    kro_safe_norm: bool = False       # faithful: no NaN gradient where an anchor is the centre point
    kro_cell_penalty: str = "abs"     # sound variants: "abs" or "squared" per-cell difference
    kro_angle_weight: float = 1.0     # anchor_angle: weight of the angle regulariser
    use_gt_pcl: bool = False          # Chamfer to the GT cloud (mission.md)
    gt_type: str = "uniform"          # "uniform" (baseline GT) or "area" (the study's)
    lambda_gt: float = 1.0
    neighbours: bool = False          # batches hold image_2/mask_2 (--knn_list): §7.7 terms logged
    use_mult_proj: bool = False       # --use_mult_proj: §7.7 terms in the recon loss (needs neighbours)
    projection: str = "auto"          # model/projection.py method ("auto": the fused op when it loaded)
    chamfer_backend: str = "auto"     # losses/chamfer.py backend
    adam: str = "fused"               # optimiser update: one ResourceApplyAdam per variable, or Keras Adam's ops
    seed: int = 0                     # weights, random poses, k of KRO
    max_nonfinite: int = 20           # consecutive skipped steps before training stops

    def __post_init__(self):
        choices = {"mask_loss": MASK_LOSSES, "affinity_form": AFFINITY_FORMS, "cycle_mode": CYCLE_MODES,
                   "symmetry_kind": SYMMETRY_KINDS, "kro_variant": KRO_VARIANTS,
                   "kro_cell_penalty": KRO_CELL_PENALTIES, "gt_type": GT_TYPES,
                   "projection": PROJECTIONS, "chamfer_backend": CHAMFER_BACKENDS, "adam": ADAM_UPDATES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.n_proj < 2:
            raise ValueError(f"N_PROJ must be >= 2 (1 predicted + at least 1 random pose), got {self.n_proj}")
        if not 1 <= self.min_k <= self.max_k:
            raise ValueError(f"KRO needs 1 <= min_k <= max_k, got min_k={self.min_k}, max_k={self.max_k}")
        if self.include_last_render and self.cycle_mode == "adj_model":
            raise ValueError("include_last_render applies to init_model only: adj_model (§7.4) already "
                             "uses the last render's reconstruction")
        if self.use_mult_proj and not self.neighbours:
            raise ValueError("use_mult_proj (§7.7) needs neighbour data: set neighbours (--knn_list)")
        if self.max_nonfinite < 1:
            raise ValueError(f"max_nonfinite must be >= 1, got {self.max_nonfinite}")

    @property
    def trains_pose_net(self) -> bool:
        """The pose optimiser runs: --optimise_pose without --use_gt_pose (§7.8)."""
        return self.optimise_pose and not self.use_gt_pose

    @property
    def gt_key(self) -> str:
        """Key of the GT cloud in a batch (data/tfrecords.py)."""
        return f"gt_{self.gt_type}"
