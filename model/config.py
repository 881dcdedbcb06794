"""Explicit configuration of the training step (built from the flags by common_flags.py).

Field names follow the baseline's flags (baseline §9) in snake case; the study's additions and the
switches to the corrected forms of the baseline's quirks (§7, §13.6) are documented per field. The
allowed values of every choice are the constants of the modules that implement them.
"""

import dataclasses

from data.tfrecords import GT_FEATURES
from losses import chamfer, cycle, image
from losses.kro import KroConfig
from model import layers, optimizer, projection

#: Ground-truth types, --gt_type values (the Example feature of each: data.tfrecords.GT_FEATURES).
GT_TYPES = tuple(GT_FEATURES)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training step depends on (networks, losses, optimisers, randomness).

    Defaults are those of the baseline's main.py (§9), not of its run.sh.
    """

    image_size: int = 64              # --H = --W
    n_points: int = 1024              # --N_PTS
    n_proj: int = 2                   # --N_PROJ: 1 at the predicted (or GT) pose + P−1 random (§6)
    bottleneck: int = 128             # --bottleneck (§3, §4)
    sigma_sq: float = projection.SIGMA_SQ  # --sigma_sq (§5.3)
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
    dense_init: str = "tflearn"       # dense initialiser: the baseline's, or "he" (model/layers.py, a departure)
    use_gt_pose: bool = False         # --use_gt_pose (§6)
    optimise_pose: bool = False       # --optimise_pose (§7.8)
    kro: KroConfig = dataclasses.field(default_factory=KroConfig)  # the study's KRO loss (mission.md, §11.1)
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
        choices = {"mask_loss": image.MASK_LOSS_KINDS, "affinity_form": image.AFFINITY_FORMS,
                   "cycle_mode": cycle.CYCLE_MODES, "symmetry_kind": cycle.SYMMETRY_KINDS, "gt_type": GT_TYPES,
                   "projection": projection.METHODS, "chamfer_backend": chamfer.BACKEND_CHOICES,
                   "adam": optimizer.ADAM_UPDATES, "dense_init": layers.DENSE_INITS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.n_proj < 2:
            raise ValueError(f"N_PROJ must be >= 2 (1 predicted + at least 1 random pose), got {self.n_proj}")
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
    def gt_feature(self) -> str:
        """Key of the GT cloud in a batch (data/tfrecords.py)."""
        return GT_FEATURES[self.gt_type]
