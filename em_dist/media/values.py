"""The values ``Run.log`` takes beside numbers: :class:`Histogram`, :class:`Image`, :class:`Table`, :class:`Text`.

A constructor only checks its input (types, shapes, the bounds of :mod:`em_dist.limits`) and keeps
a private copy of it, so the caller may change or reuse its array after ``log()``: cheap checks,
at the call, with a ``TypeError``/``ValueError`` that says what is wrong. The expensive work
(binning a histogram, encoding a PNG) happens later on the writer thread (rank 0, a plain
process) or the sending thread (other ranks), in :mod:`em_dist.media.encode`. A torch tensor,
on an accelerator too, is kept as a tensor (an asynchronous device copy): nothing here
synchronises a GPU.

NumPy, torch and Pillow are never imported here: inputs are recognised by their attributes.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..limits import (
    MAX_HISTOGRAM_BINS,
    MAX_HISTOGRAM_VALUES,
    MAX_IMAGE_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_NAME_CHARS,
    MAX_TABLE_CELLS,
    MAX_TABLE_COLUMNS,
    MAX_TEXT_CHARS,
    number_problem,
    text_problem,
)

Cell = str | int | float | bool | None
"""What a table cell holds."""


class Media:
    """The base of the values ``log()`` takes beside numbers; ``kind`` names the record it becomes."""

    kind: ClassVar[str]
    __slots__ = ()


def _is_tensor(value: Any) -> bool:
    return callable(getattr(value, "numel", None)) and hasattr(value, "detach")


def _is_array(value: Any) -> bool:
    return hasattr(value, "dtype") and hasattr(value, "shape") and callable(getattr(value, "copy", None))


class Histogram(Media):
    """The distribution of ``values`` (a NumPy array, a torch tensor on any device, or a sequence of
    numbers) in ``bins`` equal bins over ``range`` (default: the finite values' min..max).

    Non-finite values are left out of the bins and counted (``nonfinite``). The values are copied
    now and binned on the writer thread.
    """

    kind = "histogram"
    __slots__ = ("values", "bins", "range")
    values: Any
    """A private copy: a tensor (any device), an array, or a tuple of numbers."""
    bins: int
    range: tuple[float, float] | None

    def __init__(self, values: Any, bins: int = 64, range: tuple[float, float] | None = None) -> None:
        if isinstance(bins, bool) or not isinstance(bins, numbers.Integral):
            raise TypeError(f"Histogram(bins=...) must be an integer, got {bins!r} ({type(bins).__name__})")
        if not 1 <= int(bins) <= MAX_HISTOGRAM_BINS:
            raise ValueError(f"Histogram(bins=...) must be in 1..{MAX_HISTOGRAM_BINS}, got {bins}")
        self.bins = int(bins)
        self.range = _check_range(range)
        self.values = _histogram_values(values)


def _check_range(range_: Any) -> tuple[float, float] | None:
    if range_ is None:
        return None
    if (not isinstance(range_, Sequence) or len(range_) != 2
            or not all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in range_)):
        raise TypeError(f"Histogram(range=...) must be (low, high) numbers or None, got {range_!r}")
    lo, hi = float(range_[0]), float(range_[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"Histogram(range=...) needs finite low < high, got {range_!r}")
    return lo, hi


def _histogram_values(values: Any) -> Any:
    if isinstance(values, (str, bytes)):
        raise TypeError("Histogram(values) must be numbers (an array, a tensor or a sequence), got a string")
    if _is_tensor(values):
        n = int(values.numel())
        if values.is_complex() or str(values.dtype) == "torch.bool":
            raise TypeError(f"Histogram(values): a tensor of real numbers is needed, got {values.dtype}")
        _check_count(n)
        # clone: on an accelerator an asynchronous copy (no sync here); a later in-place update of
        # the caller's tensor can't change what was logged.
        return values.detach().clone()
    if _is_array(values):
        kind = getattr(values.dtype, "kind", "")
        if kind not in ("i", "u", "f"):
            raise TypeError(f"Histogram(values): an array of real numbers is needed, got dtype {values.dtype}")
        _check_count(int(values.size))
        return values.copy()
    if isinstance(values, Sequence):
        _check_count(len(values))
        for v in values:
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise TypeError(f"Histogram(values): every value must be a real number, got {v!r} ({type(v).__name__})")
        return tuple(values)
    raise TypeError(f"Histogram(values) must be a NumPy array, a torch tensor or a sequence of numbers, "
                    f"got {type(values).__name__}")


def _check_count(n: int) -> None:
    if n == 0:
        raise ValueError("Histogram(values) is empty")
    if n > MAX_HISTOGRAM_VALUES:
        raise ValueError(f"Histogram(values) has {n} values; the limit is {MAX_HISTOGRAM_VALUES}")


class Text(Media):
    """A piece of text (a generated sample, a note), shown as it is."""

    kind = "text"
    __slots__ = ("text",)
    text: str

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"Text(...) takes a string, got {type(text).__name__}")
        problem = text_problem(text, max_chars=MAX_TEXT_CHARS)
        if problem:
            raise ValueError(f"Text(...) {problem}")
        self.text = text


class Table(Media):
    """Rows of cells under named ``columns``; a cell is a string, a number, a bool or None.

    Every row must have one cell per column; the table holds at most
    :data:`~em_dist.limits.MAX_TABLE_CELLS` cells and :data:`~em_dist.limits.MAX_TEXT_CHARS`
    characters of text. NumPy scalars are taken as numbers.
    """

    kind = "table"
    __slots__ = ("columns", "rows")
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]

    def __init__(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if isinstance(columns, str) or not isinstance(columns, Sequence):
            raise TypeError(f"Table(columns=...) must be a list of names, got {type(columns).__name__}")
        if not 1 <= len(columns) <= MAX_TABLE_COLUMNS:
            raise ValueError(f"Table(columns=...) must hold 1..{MAX_TABLE_COLUMNS} names, got {len(columns)}")
        for c in columns:
            if not isinstance(c, str):
                raise TypeError(f"Table(columns=...): column names must be strings, got {c!r}")
            problem = text_problem(c, max_chars=MAX_NAME_CHARS)
            if problem or not c.strip():
                raise ValueError(f"Table(columns=...): the column name {c[:60]!r} {problem or 'is empty'}")
        if len(set(columns)) != len(columns):
            raise ValueError(f"Table(columns=...) names a column twice: {list(columns)!r}")
        if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence):
            raise TypeError(f"Table(rows=...) must be a list of rows, got {type(rows).__name__}")
        width = len(columns)
        if len(rows) * width > MAX_TABLE_CELLS:
            raise ValueError(f"Table has {len(rows)} rows x {width} columns; the limit is {MAX_TABLE_CELLS} cells")
        chars = 0
        out: list[tuple[Cell, ...]] = []
        for i, row in enumerate(rows):
            if isinstance(row, (str, bytes)) or not isinstance(row, Sequence):
                raise TypeError(f"Table row {i} must be a list of cells, got {type(row).__name__}")
            if len(row) != width:
                raise ValueError(f"Table row {i} has {len(row)} cells; the table has {width} columns")
            cells = tuple(_cell(i, j, v) for j, v in enumerate(row))
            chars += sum(len(c) for c in cells if c.__class__ is str)
            out.append(cells)
        if chars > MAX_TEXT_CHARS:
            raise ValueError(f"Table holds {chars} characters of text; the limit is {MAX_TEXT_CHARS}")
        self.columns = tuple(columns)
        self.rows = tuple(out)


def _cell(i: int, j: int, v: Any) -> Cell:
    if v is None or v.__class__ in (bool, float):
        return v
    if isinstance(v, str):
        problem = text_problem(v)
        if problem:
            raise ValueError(f"Table cell ({i}, {j}) {problem}")
        return v
    if isinstance(v, bool):
        return bool(v)
    if isinstance(v, numbers.Integral):
        n = int(v)
        if number_problem(n):
            raise ValueError(f"Table cell ({i}, {j}) {number_problem(n)}")
        return n
    if isinstance(v, numbers.Real):
        return float(v)
    if getattr(v, "dtype", None) is not None and getattr(v, "shape", None) == () and callable(getattr(v, "item", None)):
        return _cell(i, j, v.item())  # a NumPy scalar of a kind numbers does not know (np.bool_)
    raise TypeError(f"Table cell ({i}, {j}) must be a string, a number, a bool or None, got {type(v).__name__}")


class Image(Media):
    """An image: a NumPy array (HxW, HxWx1, HxWx3 or HxWx4; ``uint8``, or floats in [0, 1]), a torch
    tensor (CHW or HWC, same dtypes), a PIL image, or the path of an image file.

    Stored as PNG (Pillow encodes it on the writer thread: ``pip install 'em_dist[media]'``). Floats
    outside [0, 1] are clipped. A file is read now (a script that rewrites ``plot.png`` every step
    logs each version); an array or tensor is copied now.
    """

    kind = "image"
    __slots__ = ("data", "caption")
    data: Any
    """A private copy: a file's bytes, a PIL image, an array or a tensor (any device)."""
    caption: str | None

    def __init__(self, data: Any, caption: str | None = None) -> None:
        if caption is not None:
            if not isinstance(caption, str):
                raise TypeError(f"Image(caption=...) must be a string or None, got {type(caption).__name__}")
            problem = text_problem(caption, max_chars=MAX_TEXT_CHARS)
            if problem:
                raise ValueError(f"Image(caption=...) {problem}")
        self.caption = caption
        self.data = _image_data(data)


def _image_data(data: Any) -> Any:
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise FileNotFoundError(f"Image({str(data)!r}): no such file") from None
        if not path.is_file():
            raise ValueError(f"Image({str(data)!r}) is not a file")
        if size > MAX_IMAGE_FILE_BYTES:
            raise ValueError(f"Image({str(data)!r}) is {size} bytes; the limit is {MAX_IMAGE_FILE_BYTES}")
        return path.read_bytes()  # decoded (and checked to be an image) on the writer thread
    if hasattr(data, "getpixel") and hasattr(data, "mode") and callable(getattr(data, "copy", None)):
        width, height = data.size
        _check_pixels(int(height), int(width))
        return data.copy()
    if _is_tensor(data):
        shape = tuple(int(s) for s in data.shape)
        if data.is_complex() or not (data.is_floating_point() or str(data.dtype) == "torch.uint8"):
            raise TypeError(f"Image(tensor): dtype must be uint8 or floating point, got {data.dtype}")
        if len(shape) == 3 and shape[0] in (1, 3, 4):
            _check_pixels(shape[1], shape[2])  # CHW (torch's own order) wins when both could be
        elif len(shape) == 3 and shape[2] in (1, 3, 4) or len(shape) == 2:
            _check_pixels(shape[0], shape[1])
        else:
            raise ValueError(f"Image(tensor) must be HxW, CxHxW or HxWxC with C in 1, 3, 4; got shape {shape}")
        return data.detach().clone()
    if _is_array(data):
        shape = tuple(int(s) for s in data.shape)
        kind = getattr(data.dtype, "kind", "")
        if not (kind == "f" or str(data.dtype) == "uint8"):
            raise TypeError(f"Image(array): dtype must be uint8 or float (values in [0, 1]), got {data.dtype}")
        if len(shape) == 2 or len(shape) == 3 and shape[2] in (1, 3, 4):
            _check_pixels(shape[0], shape[1])
        else:
            raise ValueError(f"Image(array) must be HxW or HxWxC with C in 1, 3, 4; got shape {shape}")
        return data.copy()
    raise TypeError(f"Image(...) takes a NumPy array, a torch tensor, a PIL image or a file path, got {type(data).__name__}")


def _check_pixels(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"Image is empty ({height}x{width})")
    if height * width > MAX_IMAGE_PIXELS:
        raise ValueError(f"Image has {height}x{width} pixels; the limit is {MAX_IMAGE_PIXELS} pixels")


MEDIA_TYPES: tuple[type[Media], ...] = (Histogram, Image, Table, Text)
"""Every media value class (what :func:`em_dist.values.convert_value` keeps as it is)."""
