"""Arm (a) of the accuracy benchmark: EmbedSeg 0.2.5 in PyTorch with the
defaults of its 2D notebooks, at the compute budget esx's arms get (epochs,
crops per epoch, batch size), on the CPU.

Its notebooks' steps: a random 15 % of the training frames for validation;
object statistics from the training masks (get_data_properties); crop size
max(round_up_8(mean + 5 std)) over y and x; crops around every object
(min-max-percentile normalisation, medoid centres); begin_training with
lr 5e-4, its loss defaults and foreground weight; the best model by validation
IoU; prediction on the test frames with seed_thresh 0.9, fg_thresh 0.5,
min_size = the smallest training object, with and without its TTA.

  python embedseg_arm.py TRAIN_ROOT TEST_ROOT WORK SEED EPOCHS CROPS_PER_EPOCH BATCH [VAL_FRAMES]
writes WORK/pred_tta and WORK/pred_plain (masks in test-frame order) and
WORK/arm.json (crop size, min size, epochs, seconds, validation frames).
VAL_FRAMES (e.g. "t007,t011"): these frames for validation instead of the
notebooks' random 15 %, so that the arms of one seed can hold out the same
frames (real_ab.sh SAME_SPLIT=1 passes the esx run's).
"""

import json
import os
import random
import shutil
import sys
import time
from glob import glob
from pathlib import Path

import matplotlib
import matplotlib.rcsetup
import numpy as np
import tifffile
import torch

# EmbedSeg's plotting asks a list that newer matplotlib no longer has.
matplotlib.use("Agg")
if not hasattr(matplotlib.rcsetup, "interactive_bk"):
    matplotlib.rcsetup.interactive_bk = []

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
import embedseg_import  # noqa: E402

embedseg_import.install()
from EmbedSeg.utils.create_dicts import (  # noqa: E402
    create_configs,
    create_dataset_dict,
    create_loss_dict,
    create_model_dict,
    create_test_configs_dict,
)
from EmbedSeg.utils.generate_crops import process  # noqa: E402
from EmbedSeg.utils.preprocess_data import get_data_properties, round_up_8  # noqa: E402
from EmbedSeg.train import begin_training  # noqa: E402
from EmbedSeg.test import begin_evaluating  # noqa: E402

# Its TTA moves every view to CUDA unconditionally; this machine has none,
# so tensors stay where they are.
torch.Tensor.cuda = lambda self, *args, **kwargs: self

PROJECT = "p"
VAL_FRACTION = 0.15


def frames(root):
    images = sorted(glob(os.path.join(root, "01", "t*.tif")))
    masks = sorted(glob(os.path.join(root, "01_GT", "SEG", "man_seg*.tif")))
    assert len(images) == len(masks), root
    return list(zip(images, masks))


def place(pairs, dest):
    for sub in ["images", "masks"]:
        os.makedirs(os.path.join(dest, sub), exist_ok=True)
    for i, (im, m) in enumerate(pairs):
        shutil.copy(im, os.path.join(dest, "images", f"f{i:03d}.tif"))
        shutil.copy(m, os.path.join(dest, "masks", f"f{i:03d}.tif"))


def main(train_root, test_root, work, seed, epochs, crops_per_epoch, batch, val_frames=""):
    seed, epochs, crops_per_epoch, batch = int(seed), int(epochs), int(crops_per_epoch), int(batch)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count())
    work = os.path.abspath(work)
    data, crops = os.path.join(work, "data"), os.path.join(work, "crops")
    shutil.rmtree(work, ignore_errors=True)
    pairs = frames(train_root)
    random.shuffle(pairs)
    n_val = max(1, round(VAL_FRACTION * len(pairs)))
    if val_frames:
        wanted = set(val_frames.split(","))
        held = [p for p in pairs if os.path.basename(p[0])[:-4] in wanted]
        assert len(held) == len(wanted), f"{val_frames}: not all among the training frames"
        pairs = held + [p for p in pairs if p not in held]
        n_val = len(held)
    place(pairs[n_val:], os.path.join(data, PROJECT, "train"))
    place(pairs[:n_val], os.path.join(data, PROJECT, "val"))
    place(frames(test_root), os.path.join(data, PROJECT, "test"))

    props = get_data_properties(data, PROJECT, train_val_name=["train"], test_name=["test"], mode="2d")
    crop = int(max(
        round_up_8(props["avg_object_size_y"] + 5 * props["stdev_object_size_y"]),
        round_up_8(props["avg_object_size_x"] + 5 * props["stdev_object_size_x"]),
    ))
    dtype = "16-bit" if tifffile.imread(pairs[0][0]).dtype == np.uint16 else "8-bit"
    for subset in ["train", "val"]:
        for im in sorted(glob(os.path.join(data, PROJECT, subset, "images", "*.tif"))):
            process(im, im.replace("/images/", "/masks/"), os.path.join(crops, PROJECT), subset,
                    crop, "medoid", norm="min-max-percentile", data_type=dtype)
    n_val_crops = len(os.listdir(os.path.join(crops, PROJECT, "val", "images")))

    start = time.time()
    save = os.path.join(work, "model")
    begin_training(
        create_dataset_dict(crops, PROJECT, crops_per_epoch, "medoid", "train",
                            batch_size=batch, workers=0),
        create_dataset_dict(crops, PROJECT, n_val_crops, "medoid", "val",
                            batch_size=batch, workers=0),
        create_model_dict(input_channels=1),
        create_loss_dict(foreground_weight=props["foreground_weight"]),
        create_configs(save, None, n_epochs=epochs, device="cpu",
                       n_y=int(props["n_y"]), n_x=int(props["n_x"])),
    )
    trained = time.time() - start

    test_data = os.path.join(data, PROJECT)
    for name, tta in [("pred_plain", False), ("pred_tta", True)]:
        out = os.path.join(work, name + "_run")
        cfg = create_test_configs_dict(
            test_data, os.path.join(save, "best_iou_model.pth"), "min-max-percentile", dtype,
            save_dir=out, tta=tta, min_object_size=int(props["min_object_size"]),
            device="cpu", n_y=int(props["n_y"]), n_x=int(props["n_x"]), num_workers=0,
        )
        begin_evaluating(cfg)
        shutil.move(os.path.join(out, "predictions"), os.path.join(work, name))
    json.dump({"crop_size": crop, "min_size": int(props["min_object_size"]), "epochs": epochs,
               "train_seconds": round(trained, 1), "val_frames": n_val,
               "val": sorted(os.path.basename(p[0])[:-4] for p in pairs[:n_val]),
               "train_frames": len(pairs) - n_val},
              open(os.path.join(work, "arm.json"), "w"))


if __name__ == "__main__":
    main(*sys.argv[1:])
