"""PillowRasterImageInspector: is this content really a PNG, JPEG, GIF or WebP image? (SPEC §5)

Judged by content only: pillow identifies the format from the bytes, ``Image.verify()`` checks the
file's structure, and a second open *loads* the pixels, so a truncated or corrupt image is refused.
The pixel count is checked against ``max_pixels`` before loading, so a decompression bomb (a tiny file
claiming 100k×100k pixels) is refused without allocating its memory; pillow's own bomb warning is
turned into a refusal too.
"""

from __future__ import annotations

import warnings
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from tow_core.uploads import RASTER_MEDIA_TYPES

_FORMATS = {"PNG": "png", "JPEG": "jpeg", "GIF": "gif", "WEBP": "webp"}
DEFAULT_MAX_PIXELS = 40_000_000  # 40 megapixels: far above any avatar or logo, far below a bomb


class PillowRasterImageInspector:
    def __init__(self, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.max_pixels = max_pixels

    def raster_format(self, content: BinaryIO) -> str | None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                return self._inspect(content)
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning,
                OSError, SyntaxError, ValueError, EOFError, MemoryError, IndexError, TypeError, KeyError):
            return None  # pillow reports broken files through all of these

    def _inspect(self, content: BinaryIO) -> str | None:
        with Image.open(content, formats=list(_FORMATS)) as image:
            kind = _FORMATS.get(image.format or "")
            width, height = image.size
            if kind is None or width * height > self.max_pixels:
                return None
            image.verify()
        content.seek(0)
        with Image.open(content, formats=list(_FORMATS)) as image:
            image.load()
        assert kind in RASTER_MEDIA_TYPES
        return kind
