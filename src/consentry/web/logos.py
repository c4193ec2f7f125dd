"""Application logos: accepted only as PNG or JPEG that really decode, stored re-encoded.

What is served back is a PNG we wrote ourselves from the decoded pixels: no metadata
(EXIF, text chunks, ICC profiles), no polyglot tricks, bounded size.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps

MAX_BYTES = 512 * 1024
MAX_SIDE = 256  # stored logos fit in a 256x256 box
MAX_PIXELS = 40_000_000  # refuse decompression bombs before decoding
MIME = "image/png"

_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}


class LogoError(ValueError):
    """Why an upload is not an acceptable logo; ``str()`` is shown in the form."""


def _declared_format(data: bytes) -> str | None:
    for magic, fmt in _SIGNATURES.items():
        if data.startswith(magic):
            return fmt
    return None


def process_logo(data: bytes) -> bytes:
    """The upload decoded and re-encoded as a small PNG; raise :class:`LogoError` if unfit.

    CPU-bound: call it in a worker thread.
    """
    if len(data) > MAX_BYTES:
        raise LogoError(f"The logo is larger than {MAX_BYTES // 1024} KiB.")
    fmt = _declared_format(data)
    if fmt is None:
        raise LogoError("The logo must be a PNG or JPEG image.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as probe:
                width, height = probe.size
                if width < 1 or height < 1 or width * height > MAX_PIXELS:
                    raise LogoError("The logo's dimensions are too large.")
                probe.verify()  # checksums and structure; the image must be reopened after
            with Image.open(io.BytesIO(data), formats=[fmt]) as decoded:
                decoded.load()  # decode every pixel: truncated or fake files fail here
                img = ImageOps.exif_transpose(decoded)
                has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
                img = img.convert("RGBA" if has_alpha else "RGB")
                img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
                # A fresh image from the pixels alone: nothing of the upload's metadata survives.
                clean = Image.frombytes(img.mode, img.size, img.tobytes())
    except LogoError:
        raise
    except Exception:  # Pillow signals bad input with many exception types; all mean "unfit"
        raise LogoError(f"The logo could not be read as a {fmt} image.") from None
    out = io.BytesIO()
    clean.save(out, format="PNG", optimize=True)
    return out.getvalue()
