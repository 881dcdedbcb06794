"""Tests of data.tfrecords: schema round trip, sharding, reader shapes/ranges, determinism, pairing."""

import numpy as np
import pytest
import tensorflow as tf

from data import tfrecords
from geometry import camera


def _synthetic_examples(n, size=8, n_points=5, seed=0):
    rng = np.random.default_rng(seed)
    examples = []
    for k in range(n):
        mask = rng.random((size, size)) < 0.5
        image = rng.integers(1, 256, (size, size, 3), dtype=np.uint8) * mask[..., None].astype(np.uint8)
        examples.append({"model_id": f"m{k}", "category": "car" if k % 2 else "chair", "view": k % 3,
                         "image": image, "mask": mask.astype(np.uint8) * 255,
                         "pose": rng.uniform(-1, 1, 2).astype(np.float32),
                         "gt_uniform": rng.normal(size=(n_points, 3)).astype(np.float32),
                         "gt_area": rng.normal(size=(n_points, 3)).astype(np.float32)})
    return examples


def _write_synthetic(tmp_path, examples, num_shards, gt_types=tuple(tfrecords.GT_FEATURES.values()), size=8,
                     n_points=5):
    shards = tfrecords.write_shards(examples, tmp_path, "train", num_shards)
    counts = {}
    for ex in examples:
        counts[ex["category"]] = counts.get(ex["category"], 0) + 1
    tfrecords.write_index(tmp_path, {"image_size": size, "n_points": n_points, "gt_types": list(gt_types),
                                     "splits": {"train": {"shards": shards, "examples": counts,
                                                          "models": counts}}})
    return shards


def test_round_trip_is_exact_and_round_robin(tmp_path):
    examples = _synthetic_examples(5)
    shards = _write_synthetic(tmp_path, examples, num_shards=2)
    assert shards == ["train-0-of-2.tfrecord", "train-1-of-2.tfrecord"]
    ids_in_shard0 = [tf.train.Example.FromString(r.numpy()).features.feature["model_id"].bytes_list.value[0]
                     for r in tf.data.TFRecordDataset(str(tmp_path / shards[0]))]
    assert ids_in_shard0 == [b"m0", b"m2", b"m4"]

    ds = tfrecords.make_dataset(tmp_path, "train", batch_size=1, shuffle=False, repeat=False,
                                drop_remainder=False)
    got = {b["model_id"].numpy()[0].decode(): b for b in ds}
    assert sorted(got) == [ex["model_id"] for ex in examples]
    for ex in examples:
        b = got[ex["model_id"]]
        np.testing.assert_array_equal(b["image"].numpy()[0], ex["image"] / np.float32(255.0))
        np.testing.assert_array_equal(b["mask"].numpy()[0], ex["mask"] / 255)
        np.testing.assert_array_equal(b["pose"].numpy()[0], ex["pose"])
        np.testing.assert_array_equal(b["gt_uniform"].numpy()[0], ex["gt_uniform"])
        np.testing.assert_array_equal(b["gt_area"].numpy()[0], ex["gt_area"])
        assert b["category"].numpy()[0].decode() == ex["category"]
        assert b["view"].numpy()[0] == ex["view"]


def test_serialize_rejects_mismatched_mask():
    ex = _synthetic_examples(1)[0]
    ex["mask"] = ex["mask"][:-1]
    with pytest.raises(ValueError, match="chair/m0 view 0: mask shape"):
        tfrecords.serialize_example(ex)


def test_reader_errors_name_what_is_missing(tmp_path):
    _write_synthetic(tmp_path, _synthetic_examples(2), num_shards=1, gt_types=["gt_uniform"])
    with pytest.raises(ValueError, match=r"\['gt_area'\] requested"):
        tfrecords.make_dataset(tmp_path, "train", 1, gt_types=["gt_area"])
    with pytest.raises(ValueError, match="split 'val' not in the data set"):
        tfrecords.make_dataset(tmp_path, "val", 1)
    with pytest.raises(ValueError, match="categories"):
        tfrecords.make_dataset(tmp_path, "train", 1, categories=["plane"])
    with pytest.raises(FileNotFoundError, match="index.json"):
        tfrecords.read_index(tmp_path / "nowhere")
    batch = next(iter(tfrecords.make_dataset(tmp_path, "train", 2, seed=0)))
    assert "gt_area" not in batch and batch["gt_uniform"].shape == (2, 5, 3)


def _built_copy(tiny_dataset, tmp_path):
    """A copy of the tiny data set (its shards get damaged) and the path of its first test shard."""
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(tiny_dataset, copy, ignore=shutil.ignore_patterns("models"))
    return copy, copy / tfrecords.read_index(copy)["splits"]["test"]["shards"][0]


def test_a_truncated_or_missing_shard_is_named_before_reading(tiny_dataset, tmp_path):
    """TensorFlow reads a truncated shard as a shorter one, silently; the sizes in the index catch it."""
    data, shard = _built_copy(tiny_dataset, tmp_path)
    content = shard.read_bytes()
    first = 16 + int.from_bytes(content[:8], "little")  # the first record: length, CRC, data, CRC
    shard.write_bytes(content[:first])
    assert sum(1 for _ in tf.data.TFRecordDataset(str(shard))) == 1  # one example of two, and no error
    with pytest.raises(ValueError, match=f"shard {shard} has {first} bytes, not the {len(content)}.*"
                                         "truncated or damaged.*--pack_only"):
        tfrecords.make_dataset(data, "test", 1)
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=f"shard {shard} listed in .*index.json is missing"):
        tfrecords.make_dataset(data, "test", 1)


def test_a_damaged_shard_is_named_when_read(tiny_dataset, tmp_path):
    """A shard damaged inside (same size): TensorFlow's DataLossError names no file; named_read_errors does."""
    data, shard = _built_copy(tiny_dataset, tmp_path)
    content = bytearray(shard.read_bytes())
    content[len(content) // 2] ^= 0xFF
    shard.write_bytes(bytes(content))
    batches = tfrecords.make_dataset(data, "test", 1, shuffle=False, repeat=False)
    with pytest.raises(tf.errors.DataLossError) as raw:
        list(batches)
    assert str(shard) not in str(raw.value)
    with pytest.raises(ValueError, match=f"damaged TFRecord shard {shard} "
                                         r"\(corrupted record at \d+\); .*--pack_only"):
        list(tfrecords.named_read_errors(batches, data, "test"))


def test_category_filter(tmp_path):
    _write_synthetic(tmp_path, _synthetic_examples(6), num_shards=3)
    ds = tfrecords.make_dataset(tmp_path, "train", 1, categories=["car"], repeat=False, seed=0)
    assert sorted(b["model_id"].numpy()[0].decode() for b in ds) == ["m1", "m3", "m5"]


def test_reader_shapes_dtypes_ranges(tiny_dataset):
    index = tfrecords.read_index(tiny_dataset)
    assert index["image_size"] == 64 and index["n_points"] == 1024
    batch = next(iter(tfrecords.make_dataset(tiny_dataset, "train", batch_size=4, seed=0)))
    expected = {"image": ([4, 64, 64, 3], tf.float32), "mask": ([4, 64, 64], tf.float32),
                "pose": ([4, 2], tf.float32), "gt_uniform": ([4, 1024, 3], tf.float32),
                "gt_area": ([4, 1024, 3], tf.float32), "model_id": ([4], tf.string),
                "category": ([4], tf.string), "view": ([4], tf.int64)}
    for key, (shape, dtype) in expected.items():
        assert batch[key].shape == shape and batch[key].dtype == dtype, key
    image, mask, pose = batch["image"].numpy(), batch["mask"].numpy(), batch["pose"].numpy()
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.max() > 0.5
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert np.all((-np.pi <= pose[:, 0]) & (pose[:, 0] < np.pi))
    assert np.all((np.radians(-20) <= pose[:, 1]) & (pose[:, 1] < np.radians(40)))
    for gt in ("gt_uniform", "gt_area"):  # normalised: bounding-box diagonal 1, centred
        cloud = batch[gt].numpy()
        extent = np.ptp(cloud, axis=1)
        assert np.all(np.abs(cloud) <= extent[:, None, :] / 2 + 1e-2)
        np.testing.assert_allclose(np.linalg.norm(extent, axis=1), 1.0, atol=0.05)


def _order(data_dir, seed, n):
    ds = tfrecords.make_dataset(data_dir, "train", batch_size=1, seed=seed)
    return [b["model_id"].numpy()[0] for b in ds.take(n)]


def test_seeded_order_is_deterministic(tiny_dataset):
    first = _order(tiny_dataset, seed=3, n=12)
    assert first == _order(tiny_dataset, seed=3, n=12)
    assert first != _order(tiny_dataset, seed=4, n=12)
    assert len(set(first[:4])) == 4  # one epoch holds each training example once


@pytest.mark.parametrize("skip", [1, 4, 7])
def test_skip_continues_the_seeded_order(tiny_dataset, skip):
    """A resumed run skips the examples it has seen: the rest of the order is the uninterrupted run's, across
    epochs (each epoch reshuffled)."""
    ds = tfrecords.make_dataset(tiny_dataset, "train", batch_size=1, seed=3, skip=skip)
    assert [b["model_id"].numpy()[0] for b in ds.take(12 - skip)] == _order(tiny_dataset, seed=3, n=12)[skip:]


def _mask_agreement(image, mask):
    """Share of pixels where 'the image is not black' equals 'the mask is set'."""
    return np.mean((image.max(axis=-1) > 0) == (mask > 0.5))


def _cloud_on_mask(cloud, pose, mask):
    """Share of the cloud's points inside the image that project (baseline camera, stored pose) onto
    the mask dilated by one pixel (a pixel-centre render misses parts thinner than a pixel)."""
    size = mask.shape[0]
    uvw = camera.project(cloud[None], pose[None], image_size=size).numpy()[0]
    pixels = np.round(uvw[:, :2]).astype(int)
    pixels = pixels[np.all((pixels >= 0) & (pixels < size), axis=1)]
    padded = np.pad(mask > 0.5, 1)
    dilated = np.any([padded[i:i + size, j:j + size] for i in range(3) for j in range(3)], axis=0)
    return np.mean(dilated[pixels[:, 0], pixels[:, 1]])


def test_image_mask_pose_and_cloud_belong_together(tiny_dataset):
    """The baseline's zipped files could pair one model's image with another's mask (§2.3); here every
    example's image, mask, pose and cloud agree, while mixing two examples visibly does not."""
    ds = tfrecords.make_dataset(tiny_dataset, "train", batch_size=1, shuffle=False, repeat=False)
    examples = [{k: v.numpy()[0] for k, v in b.items()} for b in ds]
    assert len({ex["model_id"] for ex in examples}) == len(examples) == 4
    for ex in examples:
        assert _mask_agreement(ex["image"], ex["mask"]) == 1.0
        assert _cloud_on_mask(ex["gt_uniform"], ex["pose"], ex["mask"]) > 0.95
    a = next(ex for ex in examples if ex["category"] == b"car")  # a desynchronised pair is detected
    b = next(ex for ex in examples if ex["category"] == b"chair")
    assert _mask_agreement(a["image"], b["mask"]) < 0.9
    assert _cloud_on_mask(a["gt_uniform"], a["pose"], b["mask"]) < 0.8
