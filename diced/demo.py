"""A guided tour of diced on a synthetic volume: import, lock, branch, edit, compare.

:func:`run_demo` uses only the public API, on any store location, and reports through an
``echo`` callable so that the CLI (``diced demo``) decides how the text is shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from diced.array import ArrayDtype, DicedArray
from diced.errors import InvalidInputError
from diced.repo import DicedRepo
from diced.store import DicedStore

__all__ = [
    "BRANCH_NAME",
    "IMAGE_ARRAY",
    "LABEL_ARRAY",
    "NOTES_FILE",
    "PAINTED_LABEL",
    "README_FILE",
    "REPO_NAME",
    "run_demo",
    "synthetic_volume",
]

#: Name of the repo the demo (re)creates; an existing repo of that name is deleted first.
REPO_NAME = "demo"
#: The branch the demo's edits go to.
BRANCH_NAME = "proofreading"
#: The uint8 image volume.
IMAGE_ARRAY = "grayscale"
#: The uint64 label volume.
LABEL_ARRAY = "segmentation"
#: The file uploaded with the import.
README_FILE = "README.md"
#: The file uploaded on the branch.
NOTES_FILE = "proofreading-notes.txt"
#: The label id painted on the branch (no label of the import uses it).
PAINTED_LABEL = 999

_BLOBS = 8
_SEED = 2024
_README = """# diced demo

A synthetic {size}^3 volume: `{image}` (uint8 image, smooth blobs plus noise) and
`{labels}` (uint64 labels, one constant region per blob, 0 for background).
"""


def synthetic_volume(size: int, seed: int = _SEED) -> tuple[npt.NDArray[np.uint8],
                                                             npt.NDArray[np.uint64]]:
    """A ``size``³ uint8 image of smooth blobs plus noise, and its uint64 labels.

    The image is a sum of Gaussian blobs, quantised to steps of 8 grey levels, plus
    faint noise: it looks like a stained volume and compresses about 2-3x. Each blob
    gives one constant label region (ids 1..8) where it dominates and is above 30% of
    its peak; elsewhere the label is 0. Deterministic for a given ``seed``.
    """
    rng = np.random.default_rng(seed)
    axis = np.arange(size, dtype=np.float32)
    image = np.zeros((size,) * 3, dtype=np.float32)
    strongest = np.zeros_like(image)
    labels = np.zeros((size,) * 3, dtype=np.uint64)
    for label in range(1, _BLOBS + 1):
        centre = rng.uniform(0.15, 0.85, 3) * size
        sigma = rng.uniform(0.08, 0.18) * size
        peak = rng.uniform(80.0, 160.0)
        z, y, x = (np.exp(-((axis - c) ** 2) / (2 * sigma**2)).astype(np.float32)
                   for c in centre)
        blob = (peak * z)[:, None, None] * y[None, :, None] * x[None, None, :]
        image += blob
        region = (blob > strongest) & (blob > 0.3 * peak)
        labels[region] = label
        np.maximum(strongest, blob, out=strongest)
    # Quantised levels and faint noise keep the entropy (and so the compression ratio)
    # close to a real stained volume's; pure Gaussian noise barely compresses.
    noisy = np.round((image + 20.0) / 8.0) * 8.0 + rng.standard_normal(image.shape) * 0.6
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8), labels


def _timed(action: Callable[[], Any]) -> float:
    """Seconds ``action`` took."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _write_all(array: DicedArray, data: npt.NDArray[Any]) -> None:
    array[...] = data


def _short(uuid: str) -> str:
    return uuid[:8]


def _region(selection: tuple[slice, ...]) -> str:
    """``[16:32, 0:64]``: a box of slices the way numpy indexing reads."""
    return "[" + ", ".join(f"{s.start}:{s.stop}" for s in selection) + "]"


def _echo_history(repo: DicedRepo, echo: Callable[[str], None]) -> None:
    echo(f"commit log of {repo.name!r} at {_short(repo.uuid)} (oldest first):")
    for uuid, message in repo.get_commit_log():
        echo(f"  {_short(uuid)}  {message}")
    echo("version DAG (* = branch leaf):")
    for node in repo.list_nodes():
        parents = ",".join(_short(p) for p in node.parents) or "-"
        state = "locked" if node.locked else "open"
        leaf = "*" if node.is_branch_leaf else " "
        echo(f"  {leaf} {_short(node.uuid)}  branch={node.branch:<13} {state:<6} "
             f"parents={parents:<8}  note={node.note!r}")


def run_demo(location: str, size: int = 256, echo: Callable[[str], None] = print) -> None:
    """Build repo ``"demo"`` at store ``location`` and walk through diced's versioning.

    Imports a synthetic ``size``³ image (uint8) and label volume (uint64) with a README,
    locks that version, starts branch ``"proofreading"`` from it, paints a label cube,
    brightens a region and uploads a notes file there, locks again, then shows timings,
    the commit log, the DAG, and that the locked parent still reads the original values.

    An existing repo named ``"demo"`` at ``location`` is deleted first, so the demo can be
    re-run on the same store. Progress and results are reported line by line to ``echo``.

    Raises
    ------
    InvalidInputError
        ``size`` is smaller than 8, or ``location`` is not usable as a store.
    NotFoundError
        The parent directory of a local ``location`` does not exist.
    """
    if not isinstance(size, int) or size < 8:
        raise InvalidInputError(f"the demo volume size must be an integer >= 8, got {size!r}")
    echo(f"generating a synthetic {size}^3 volume...")
    image, labels = synthetic_volume(size)

    with DicedStore(location) as store:
        if REPO_NAME in {name for name, _ in store.list_repos()}:
            echo(f"deleting the existing repo {REPO_NAME!r} at {location}")
            store.delete_repo(REPO_NAME)
        repo = store.create_repo(REPO_NAME, "diced demo: synthetic image and labels")
        echo(f"created repo {REPO_NAME!r} at {location}, root version {repo.uuid}")

        grayscale = repo.create_array(IMAGE_ARRAY, ArrayDtype.uint8, shape=image.shape)
        segmentation = repo.create_array(LABEL_ARRAY, ArrayDtype.uint64, shape=labels.shape,
                                         islabel3D=True)
        image_s = _timed(lambda: _write_all(grayscale, image))
        labels_s = _timed(lambda: _write_all(segmentation, labels))
        repo.upload_filedata(README_FILE, _README.format(size=size, image=IMAGE_ARRAY,
                                                         labels=LABEL_ARRAY))
        lock_import_s = _timed(lambda: repo.lock_node("imported synthetic volume"))
        imported = repo.uuid

        branch_s = _timed(lambda: repo.change_version(
            repo.create_branch("proofreading edits", name=BRANCH_NAME)))
        edited = repo.uuid
        lo, hi = size // 4, size // 2
        painted = (slice(lo, hi),) * 3
        bright = (slice(hi, hi + size // 4), slice(lo, hi + lo), slice(lo, hi + lo))
        repo.get_array(LABEL_ARRAY)[painted] = PAINTED_LABEL
        repo.get_array(IMAGE_ARRAY)[bright] = np.minimum(image[bright].astype(np.uint16) + 60,
                                                         255)
        repo.upload_filedata(NOTES_FILE, f"painted label {PAINTED_LABEL} in "
                                         f"{LABEL_ARRAY}{_region(painted)}\n"
                                         f"brightened {IMAGE_ARRAY}{_region(bright)} by 60\n")
        lock_edit_s = _timed(lambda: repo.lock_node(
            f"proofreading: painted label {PAINTED_LABEL}, brightened a region"))

        megabytes = (image.nbytes + labels.nbytes) / 1e6
        echo("timings:")
        echo(f"  write {IMAGE_ARRAY} ({image.nbytes / 1e6:.1f} MB): "
             f"{image.nbytes / 1e6 / image_s:.1f} MB/s")
        echo(f"  write {LABEL_ARRAY} ({labels.nbytes / 1e6:.1f} MB): "
             f"{labels.nbytes / 1e6 / labels_s:.1f} MB/s")
        echo(f"  write total: {megabytes / (image_s + labels_s):.1f} MB/s")
        echo(f"  lock import: {lock_import_s * 1e3:.1f} ms, lock edits: "
             f"{lock_edit_s * 1e3:.1f} ms")
        echo(f"  branch + change_version: {branch_s * 1e3:.1f} ms")
        _echo_history(repo, echo)

        parent = store.open_repo(uuid=imported, readonly=True)
        parent_labels = parent.get_array(LABEL_ARRAY)[painted]
        parent_image = parent.get_array(IMAGE_ARRAY)[bright]
        child_labels = repo.get_array(LABEL_ARRAY)[painted]
        child_image = repo.get_array(IMAGE_ARRAY)[bright]
        echo(f"locked parent {_short(imported)} still reads the original values: "
             f"labels {np.array_equal(parent_labels, labels[painted])}, "
             f"image {np.array_equal(parent_image, image[bright])}")
        echo(f"branch {BRANCH_NAME!r} at {_short(edited)} reads its edits: "
             f"label {PAINTED_LABEL} painted {bool((child_labels == PAINTED_LABEL).all())}, "
             f"mean brightness {float(parent_image.mean()):.1f} -> "
             f"{float(child_image.mean()):.1f}")
        echo(f"files at {_short(edited)}: {', '.join(repo.list_files())}")
