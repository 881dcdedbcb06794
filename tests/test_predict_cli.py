"""predict.py's guards: an export never replaces something silently, a tiny input image is warned about."""

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from predict import check_export_target, warn_if_tiny

REPO = Path(__file__).resolve().parents[1]


def test_an_export_target_is_replaced_only_with_overwrite_and_only_if_it_is_an_export(tmp_path):
    check_export_target(tmp_path / "new", overwrite=False)        # absent
    (tmp_path / "empty").mkdir()
    check_export_target(tmp_path / "empty", overwrite=False)      # empty folder
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ValueError, match="saved exists and is not empty: give --overwrite"):
        check_export_target(saved, overwrite=False)
    check_export_target(saved, overwrite=True)
    assert not saved.exists()
    keras_file = tmp_path / "net.keras"
    keras_file.write_bytes(b"")
    with pytest.raises(ValueError, match="give --overwrite"):
        check_export_target(keras_file, overwrite=False)
    check_export_target(keras_file, overwrite=True)
    assert not keras_file.exists()
    other = tmp_path / "photos"
    other.mkdir()
    (other / "holiday.png").write_bytes(b"")
    with pytest.raises(ValueError, match="neither a .keras file nor a SavedModel folder"):
        check_export_target(other, overwrite=True)
    assert (other / "holiday.png").exists()


def test_the_cli_refuses_a_non_empty_export_folder_before_loading_anything(tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "notes.txt").write_text("mine")
    proc = subprocess.run([sys.executable, "predict.py", f"--exp={tmp_path / 'no_run'}",
                           f"--export={tmp_path / 'export'}"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "exists and is not empty: give --overwrite" in proc.stderr
    assert (tmp_path / "export" / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("size, warned", [((1, 1), True), ((15, 3), True), ((16, 16), False)])
def test_a_tiny_image_is_warned_about(tmp_path, caplog, size, warned):
    path = tmp_path / "tiny.png"
    Image.fromarray(np.full((size[1], size[0], 3), 200, np.uint8)).save(path)
    with caplog.at_level(logging.WARNING):
        warn_if_tiny(path)
    assert (f"{size[0]} x {size[1]} pixels" in caplog.text) == warned
