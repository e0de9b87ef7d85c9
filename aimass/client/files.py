"""Reading request inputs from files for the CLI: ``.npy``, ``.npz``, ``.json`` and images."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from aimass.serving.models import TensorSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff", ".webp")


class InputFileError(ValueError):
    """An input file that cannot be read as a tensor; the message says what to do."""


def parse_input(arg: str) -> tuple[str | None, Path]:
    """``NAME=FILE`` -> (NAME, FILE); a bare ``FILE.npz`` -> (None, FILE): one input per array."""
    name, sep, path = arg.partition("=")
    if sep:
        if not name:
            raise InputFileError(f"--input {arg!r}: the input name before '=' is empty")
        return name, Path(path)
    if Path(arg).suffix.lower() == ".npz":
        return None, Path(arg)
    raise InputFileError(f"--input {arg!r}: expected NAME=FILE (or a .npz file, one input per array)")


def load_arrays(name: str | None, path: Path, spec: dict[str, TensorSpec] | None = None) -> dict[str, np.ndarray]:
    """Read ``path`` into ``{input name: array}``, fitted to the model's declared inputs when known.

    Raises:
        InputFileError: Unreadable file, unknown kind, or an image without Pillow installed.
    """
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                raw = {key: npz[key] for key in npz.files}
            if name is not None:
                if len(raw) != 1:
                    raise InputFileError(f"{path}: holds {sorted(raw)}; pass it without NAME= to use each by name")
                raw = {name: next(iter(raw.values()))}
        elif name is None:
            raise InputFileError(f"{path}: name the input, e.g. --input pixels={path}")
        elif suffix == ".npy":
            raw = {name: np.load(path, allow_pickle=False)}
        elif suffix == ".json":
            raw = {name: _from_json(path, spec.get(name) if spec else None)}
        elif suffix in IMAGE_SUFFIXES:
            raw = {name: _from_image(path, spec.get(name) if spec else None)}
        else:
            raise InputFileError(f"{path}: unknown kind {suffix!r}; use .npy, .npz, .json or an image")
    except (OSError, ValueError) as exc:
        if isinstance(exc, InputFileError):
            raise
        raise InputFileError(f"{path}: cannot read: {exc}") from None
    return {key: fit(array, spec.get(key) if spec else None) for key, array in raw.items()}


def fit(array: np.ndarray, spec: TensorSpec | None) -> np.ndarray:
    """Add the batch dimension to a single sample and cast to the declared dtype when lossless
    in kind (int to float, float64 to float32); anything else is left for validation to refuse."""
    if spec is None:
        return array
    if array.ndim == spec.rank - 1:
        array = array[np.newaxis, ...]
    wanted = np.dtype(spec.dtype)
    lossless_kind = np.can_cast(array.dtype, wanted, casting="same_kind")
    if array.dtype != wanted and (lossless_kind or (array.dtype.kind in "iu" and wanted.kind == "f")):
        array = array.astype(wanted)
    return array


def _from_json(path: Path, spec: TensorSpec | None) -> np.ndarray:
    value = json.loads(path.read_text(encoding="utf-8"))
    array = np.asarray(value)
    if array.dtype == object:
        raise InputFileError(f"{path}: not a rectangular array of numbers")
    if spec is None and array.dtype == np.float64:
        array = array.astype(np.float32)  # the common model input; pass .npy to choose exactly
    return array


def _from_image(path: Path, spec: TensorSpec | None) -> np.ndarray:
    if importlib.util.find_spec("PIL") is None:
        raise InputFileError(
            f"{path}: reading images needs Pillow, which is not installed here "
            f"(`.venv/bin/pip install pillow`), or save the pixels as .npy"
        )
    from PIL import Image

    with Image.open(path) as image:
        size = _row_size(spec)
        mode = "RGB" if size is not None and size == image.width * image.height * 3 else "L"
        pixels = np.asarray(image.convert(mode))
    size = _row_size(spec)
    if spec is not None and size is not None:
        row_shape = tuple(int(d) for d in spec.shape[1:] if d is not None)
        if pixels.size != size:
            raise InputFileError(
                f"{path}: a {image.width}x{image.height} image has {pixels.size} values; "
                f"input {spec.name!r} takes {list(row_shape)} per row"
            )
        pixels = pixels.reshape(row_shape)
    if spec is not None and np.dtype(spec.dtype).kind == "f":
        return (pixels / 255.0).astype(spec.dtype)
    return pixels


def _row_size(spec: TensorSpec | None) -> int | None:
    """Values per row of a declared input whose row dimensions are all fixed, else None."""
    if spec is None or any(d is None for d in spec.shape[1:]):
        return None
    return math.prod(d for d in spec.shape[1:] if d is not None)
