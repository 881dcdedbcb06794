"""The training flags (common_flags.py): every configuration field comes from a flag; the presets parse."""

import dataclasses
from pathlib import Path

import pytest
from absl import flags

import common_flags
from model.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
#: Flags that need another flag to be valid when they leave their default.
COMPANIONS = {"H": lambda value: {"W": value}, "W": lambda value: {"H": value},
              "use_mult_proj": lambda value: {"knn_list": "knn_list_chair.npy"}}


def _flat(config) -> dict:
    """Every field of a (nested) config dataclass, nested ones as "parent.field"."""
    out = {}
    for name, value in dataclasses.asdict(config).items():
        if isinstance(value, dict):
            out.update({f"{name}.{key}": inner for key, inner in value.items()})
        else:
            out[name] = value
    return out


def _parsed(args) -> flags.FlagValues:
    values = flags.FlagValues()
    common_flags.define_flags(values)
    values(["train.py", *args])
    return values


#: String flags with a validated form: a valid value other than the default.
STRING_VALUES = {"distribute": "cpu:2"}


def _other_value(flag):
    """A valid value of the flag other than its default."""
    if isinstance(flag.parser, flags.BooleanParser):
        return not flag.default
    if isinstance(flag.parser, flags.EnumParser):
        return next(v for v in flag.parser.enum_values if v != flag.default)
    if isinstance(flag.parser, flags.IntegerParser):
        return flag.default + 1
    if isinstance(flag.parser, flags.FloatParser):
        return flag.default + 0.5
    if flag.name in STRING_VALUES:
        return STRING_VALUES[flag.name]
    return "elsewhere" if flag.default != "elsewhere" else "other"


def test_every_config_field_is_set_from_a_flag():
    """Each flag in turn takes a value other than its default; together they change every field of TrainConfig
    and of its nested KroConfig (a field no flag reaches would keep its default in every parse)."""
    default = _flat(common_flags.train_config_from_flags(_parsed([])))
    assert default == _flat(TrainConfig())          # the flags' defaults are the configuration's
    reached = {}
    for name in common_flags.flag_names(_parsed([])):
        flag = _parsed([])[name]
        value = _other_value(flag)
        settings = {name: value, **COMPANIONS.get(name, lambda v: {})(value)}
        parsed = _parsed([f"--{key}={val}" for key, val in settings.items()])
        changed = {field for field, v in _flat(common_flags.train_config_from_flags(parsed)).items()
                   if v != default[field]}
        for field in changed:
            reached.setdefault(field, []).append(name)
    missing = sorted(set(default) - set(reached))
    assert not missing, f"TrainConfig fields no flag sets: {missing}"
    assert reached["image_size"] == ["H", "W"] and reached["kro.enabled"] == ["k_random_octant_loss"]
    assert reached["cycle_mode"] == ["_3d_loss_type"] and reached["neighbours"] == ["use_mult_proj", "knn_list"]


def test_flagfile_text_parses_back_to_the_same_configuration():
    parsed = _parsed(["--exp=runs/x", "--kro_variant=sound", "--k_random_octant_loss", "--lambda_3d=1e4",
                      "--N_PTS=256", "--categ=car,chair"])
    again = _parsed(common_flags.flagfile_text(parsed).split())
    assert common_flags.train_config_from_flags(again) == common_flags.train_config_from_flags(parsed)
    assert common_flags.flags_dict(again) == common_flags.flags_dict(parsed)


@pytest.mark.parametrize("args, message", [
    (["--H=32"], "--H=32 and --W=64 differ"),
    (["--use_mult_proj"], "--use_mult_proj .* needs nearest-neighbour pairs"),
    (["--min_k=5"], "min_k <= max_k"),
])
def test_inconsistent_flags_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        common_flags.train_config_from_flags(_parsed(args))
    with pytest.raises(ValueError, match="--categ: the category list is empty"):
        common_flags.categories_from_flag(" , ")


def test_presets_parse_into_the_intended_configurations(monkeypatch):
    """Every preset flagfile parses; run.sh values (baseline §9) and the study's table-2 grid."""
    monkeypatch.chdir(REPO)  # the study presets include presets/study_common.flags by a relative path
    names = sorted(p.name for p in (REPO / "presets").glob("*.flags"))
    got = {}
    for name in names:
        parsed = _parsed([f"--flagfile=presets/{name}"])
        got[name] = (parsed, common_flags.train_config_from_flags(parsed))
    learning = {"demo.flags", "learn_selfsup.flags", "learn_supervised.flags"}  # run.sh with named departures
    for name, (f, c) in got.items():
        assert (c.n_proj, c.lr, c.optimise_pose) == (4, 5e-4, True), name
        if name not in learning:
            assert (f.batch_size, c.lambda_3d, c.dense_init) == (2, 1e4, "tflearn") and c.affinity_loss, name
    baseline = got["baseline_run.flags"][0]
    assert baseline.categ == "chair" and baseline.N_ITERS == 200001
    study = {n: fc for n, fc in got.items() if n.startswith("study_") and n != "study_common.flags"}
    assert len(study) == 8
    grid = {(f.categ, c.kro.enabled, c.use_gt_pcl) for f, c in study.values()}
    assert grid == {(cat, kro, gt) for cat in ("car", "chair") for kro in (False, True) for gt in (False, True)}
    for name, (f, c) in study.items():
        assert f.N_ITERS == {"car": 18000, "chair": 9000}[f.categ] and c.gt_type == "area", name
        assert f.exp == f"runs/{name.removesuffix('.flags')}"
    supervised, selfsup = got["learn_supervised.flags"][1], got["learn_selfsup.flags"][1]
    assert supervised.use_gt_pcl and supervised.lambda_gt == 1e4 and supervised.gt_type == "uniform"
    assert (supervised.lambda_ae, supervised.lambda_ae_mask, supervised.lambda_3d) == (0, 0, 0)
    assert not supervised.affinity_loss and supervised.dense_init == "tflearn"
    assert not selfsup.use_gt_pcl and selfsup.affinity_loss and selfsup.use_gt_pose
    assert (selfsup.lambda_ae, selfsup.lambda_ae_mask, selfsup.lambda_3d, selfsup.dense_init) == (100, 100, 100, "he")
    for name in learning:
        assert got[name][0].batch_size == 8 and got[name][0].categ == "all", name
    demo_flags, demo = got["demo.flags"]
    assert demo == selfsup and demo_flags.exp == "runs/demo" and demo_flags.N_ITERS <= 1500
    assert demo_flags.procedural_models == 300 and not demo_flags.data_dir
