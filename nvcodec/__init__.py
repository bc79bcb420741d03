"""nvcodec: learned codecs for images, video and audio.

Layers, bottom to top: ``io`` (media files) -> ``transforms`` (invertible wavelets) ->
``models`` (networks and the weights store) -> ``entropy`` (learned densities, integer tables,
entropy coders) -> ``container`` (the ``.nvc`` file format) -> ``cli``.
"""

from nvcodec.errors import BitstreamError, FormatError, ModelError, NvcodecError

__version__ = "0.1.0"

__all__ = ["BitstreamError", "FormatError", "ModelError", "NvcodecError", "__version__"]
