"""Codecs diced adds to zarr: JPEG for lossy uint8 volumes (DICED's ``lossycompression``).

Importing this module registers the ``diced.jpeg`` codec with zarr, so arrays written
with it open with plain zarr too once diced is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

from diced.errors import InvalidInputError

if TYPE_CHECKING:
    from zarr.core.array_spec import ArraySpec

__all__ = ["JpegCodec", "jpeg_codec"]

_NAME = "diced.jpeg"


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """JPEG (libjpeg via imagecodecs) for uint8 chunks of any dimensionality.

    A chunk is encoded as one greyscale image whose width is the last axis and whose
    height is the product of the others (64³ → 4096×64), which keeps slices along the
    fastest axis intact and stays within JPEG's 65535-pixel limit for diced's chunk shapes.
    """

    is_fixed_size = False
    quality: int = 90

    def __init__(self, *, quality: int = 90) -> None:
        object.__setattr__(self, "quality", int(quality))

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Self:
        _, config = parse_named_configuration(data, _NAME, require_configuration=False)
        return cls(**(config or {}))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        return {"name": _NAME, "configuration": {"quality": self.quality}}

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: ArraySpec) -> NDBuffer:
        import imagecodecs

        image = imagecodecs.jpeg8_decode(chunk_bytes.to_bytes())
        return chunk_spec.prototype.nd_buffer.from_numpy_array(
            np.asarray(image, dtype=np.uint8).reshape(chunk_spec.shape))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: ArraySpec) -> Buffer:
        import imagecodecs

        array = chunk_array.as_numpy_array()
        image = np.ascontiguousarray(array.reshape(-1, array.shape[-1]) if array.ndim > 1
                                     else array.reshape(1, -1))
        return chunk_spec.prototype.buffer.from_bytes(
            imagecodecs.jpeg8_encode(image, level=self.quality))

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: Any) -> int:
        raise NotImplementedError("JPEG output size depends on the content")


register_codec(_NAME, JpegCodec)


def jpeg_codec(quality: int = 90) -> JpegCodec:
    """A JPEG serializer; :class:`InvalidInputError` when imagecodecs is not installed."""
    try:
        import imagecodecs
    except ImportError as exc:
        raise InvalidInputError(
            "lossycompression=True needs the imagecodecs package: pip install 'diced[jpeg]'"
        ) from exc
    if not getattr(imagecodecs, "JPEG8", None) or not imagecodecs.JPEG8.available:
        raise InvalidInputError("this imagecodecs build has no JPEG support; reinstall it")
    return JpegCodec(quality=quality)
