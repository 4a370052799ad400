"""The Python API: ``jpegfix.restore(image)`` and ``jpegfix.load(model).restore(image)``.

An image is a path, the bytes of an image file, a Pillow image or a numpy array, and comes
back as the same kind, except a path, which comes back as a Pillow image (writing files is
the CLI's and :mod:`jpegfix.batch`'s job). Every kind goes through the CLI's own steps: the
file's real quantization tables when there is a JPEG to read them from (a path, bytes, or a
Pillow image opened from a JPEG), tables recovered from the pixels or the blind model when
not (:func:`jpegfix.engine.choose_model`), then :func:`jpegfix.engine.restore_pixels`.

Nothing heavy is imported until an image is restored: ``import jpegfix`` stays instant.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from jpegfix.jpeg import DecodedImage
    from jpegfix.models.restorer import Restorer

    ImageLike = Union[str, os.PathLike, bytes, Image.Image, np.ndarray]


@dataclass(frozen=True)
class _Choice:
    """What :func:`jpegfix.engine.choose_model` reads: a forced model and a forced quality."""

    model: str | None
    quality: int | None


class ImageRestorer:
    """Restores images one after another, loading each model once (use one for a batch).

    ``model`` None picks per image like the CLI: the table-guided default when tables are
    known, the blind default when not, each of the image's kind (colour or grey). A model
    or method name (``"cqr"``) forces it; a named model's weights are loaded here, so a
    missing one fails now rather than at the first image.
    """

    def __init__(self, model: str | None = None, *, device: str = "auto", backend: str = "auto",
                 precision: str = "auto") -> None:
        from jpegfix import catalogue

        self.model, self.device = model, device
        self.runtime = {"backend": backend, "precision": precision}
        self._loaded: dict[str, Restorer] = {}
        if model is not None:
            catalogue.check_restorer(catalogue.get(catalogue.model_for(model, 3)))
            catalogue.require_weights(model)
            if model not in catalogue.METHODS:
                self._restorer(model)

    def restore(self, image: ImageLike, *, quality: int | None = None) -> Any:
        """Restore ``image`` (see :func:`jpegfix.restore`); ``quality`` restores it as an IJG
        JPEG of that quality instead of reading its tables (table-guided models only).

        Raises:
            TypeError: ``image`` is none of the accepted kinds.
            jpegfix.errors.InputError: it cannot be read or restored (the message says why).
        """
        from jpegfix import catalogue, engine

        if quality is not None and not (isinstance(quality, int) and 1 <= quality <= 100):
            raise ValueError(f"quality must be an integer from 1 to 100, not {quality!r}")
        if self.model is not None:
            catalogue.check_quality(self.model, quality)
        decoded, give_back = _decode(image)
        name, components, _ = engine.choose_model(decoded, _Choice(self.model, quality))
        if name is None:  # no JPEG history in the pixels: given back as decoded, as the CLI does
            from jpegfix.jpeg import unit_float

            return give_back(unit_float(decoded.pixels))
        restored = engine.restore_pixels(self._restorer(name), decoded.pixels, components)
        return give_back(restored)

    def _restorer(self, name: str) -> Restorer:
        if name not in self._loaded:
            from jpegfix.engine import load_restorer

            self._loaded[name] = load_restorer(name, self.device, **self.runtime)
        return self._loaded[name]


def load(model: str | None = None, *, device: str = "auto", backend: str = "auto",
         precision: str = "auto") -> ImageRestorer:
    """A reusable :class:`ImageRestorer` for ``model`` on ``device`` (``auto``: CUDA, then MPS,
    then CPU), run by ``backend`` in ``precision`` as ``jpegfix restore --backend --precision``
    (:mod:`jpegfix.runtime`: ``auto`` takes the fastest installed runtime and bf16 where the
    processor computes in it).

    Raises:
        jpegfix.errors.UnknownModelError: no such model.
        jpegfix.errors.MissingWeightsError: its weights are not here and cannot be downloaded.
    """
    return ImageRestorer(model, device=device, backend=backend, precision=precision)


def restore(image: ImageLike, *, model: str | None = None, quality: int | None = None, device: str = "auto",
            backend: str = "auto", precision: str = "auto") -> Any:
    """Remove JPEG artifacts from ``image``; returns the same kind of image.

    ``image``: a path (returns a Pillow image, upright, with the file's ICC profile and EXIF
    in ``info``), the bytes of an image file (returns the bytes of the file ``jpegfix restore`` would write:
    a PNG, or a TIFF or 16-bit PNG where one came in, with all the file's metadata), a Pillow
    image (returns a Pillow image of the same size, orientation and ``info``) or a uint8
    numpy array of shape (H, W) or (H, W, 1) grey, (H, W, 2) grey + alpha, (H, W, 3) RGB or
    (H, W, 4) RGBA (returns the same shape). Alpha is passed through untouched.

    For many images, :func:`load` the model once and call its ``restore``; ``backend`` and
    ``precision`` are :func:`load`'s.
    """
    return load(model, device=device, backend=backend, precision=precision).restore(image, quality=quality)


# -- kinds of images in and out ----------------------------------------------------------------


def _decode(image: Any) -> tuple[DecodedImage, Any]:
    """(the decoded image, a function turning restored float pixels into ``image``'s kind)."""
    import numpy as np
    from PIL import Image

    from jpegfix import jpeg

    if isinstance(image, (str, os.PathLike)):
        decoded = jpeg.read_image(image)
        return decoded, lambda restored: _upright_pillow(restored, decoded)
    if isinstance(image, (bytes, bytearray, memoryview)):
        decoded = jpeg.read_bytes(bytes(image))
        return decoded, lambda restored: _file_bytes(restored, decoded)
    if isinstance(image, Image.Image):
        decoded = jpeg.from_pillow(image)
        return decoded, lambda restored: _pillow(restored, decoded.alpha, image.info)
    if isinstance(image, np.ndarray):
        return _from_array(image)
    raise TypeError(f"cannot restore a {type(image).__name__}: give a path, bytes, a PIL image or a numpy array")


def _from_array(array: np.ndarray) -> tuple[DecodedImage, Any]:
    import numpy as np

    from jpegfix.errors import InputError
    from jpegfix.jpeg import DecodedImage

    if array.dtype.name != "uint8":
        raise InputError(f"numpy images must be uint8, not {array.dtype}")
    grey = array.ndim == 2
    pixels = array[..., None] if grey else array
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4) or min(pixels.shape[:2]) < 1:
        raise InputError(f"numpy images must be (H, W), (H, W, 1), (H, W, 2), (H, W, 3) or (H, W, 4), not {array.shape}")
    colours = 1 if pixels.shape[2] <= 2 else 3
    alpha = pixels[..., colours] if pixels.shape[2] in (2, 4) else None
    decoded = DecodedImage(pixels=pixels[..., :colours].copy(), format="",
                           tables_problem="a numpy array holds no JPEG quantization tables")

    def give_back(restored: np.ndarray) -> np.ndarray:
        out = _quantized(restored)
        if alpha is not None:
            out = np.concatenate([out, alpha[..., None]], axis=2)
        return out[..., 0] if grey else out

    return decoded, give_back


def _quantized(restored: np.ndarray) -> np.ndarray:
    from jpegfix.output import quantize

    return quantize(restored, 8)


def _pillow(restored: np.ndarray, alpha: np.ndarray | None, info: dict) -> Image.Image:
    """A Pillow image of ``restored`` with ``alpha`` put back and ``info`` copied."""
    import numpy as np
    from PIL import Image

    pixels = _quantized(restored)
    if alpha is not None:
        pixels = np.concatenate([pixels, alpha[..., None]], axis=2)
    modes = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
    result = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels, modes[pixels.shape[2]])
    result.info.update(info)
    return result


def _upright_pillow(restored: np.ndarray, decoded: DecodedImage) -> Image.Image:
    """As the CLI writes a file: upright, with the ICC profile and EXIF (orientation reset)."""
    from jpegfix.output import upright

    info = {key: value for key, value in (("icc_profile", decoded.icc_profile), ("exif", decoded.exif)) if value}
    alpha = upright(decoded.alpha, decoded.orientation) if decoded.alpha is not None else None
    return _pillow(upright(restored, decoded.orientation), alpha, info)


def _file_bytes(restored: np.ndarray, decoded: DecodedImage) -> bytes:
    """What ``jpegfix restore --format auto`` would write for these bytes: a PNG or TIFF stays
    one (at its own depth), anything else becomes a PNG; upright, alpha and metadata kept."""
    from jpegfix.output import choose_format, encode_image

    kind = choose_format("auto", decoded.format, decoded.format in ("PNG", "TIFF"), None)
    return encode_image(restored, decoded, kind)
