"""Typed errors that the CLI and the dashboard turn into one clear line for the user."""


class IntrinsicLabError(Exception):
    """Base class: its message is meant for the user, without a traceback."""


class ImageDecodeError(IntrinsicLabError):
    """The uploaded bytes are not an image we can read (empty, truncated, not an image, unsupported)."""


class ImageTooLargeError(ImageDecodeError):
    """The image declares more pixels than the configured limit (protects against decompression bombs)."""


class InputKindError(IntrinsicLabError):
    """The input does not fit the method (for example one image given to a sequence method)."""


class UnknownNameError(IntrinsicLabError, KeyError):
    """A name no registry holds (see :class:`engine.registries.Registry`); the message lists the close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


class UnknownMethodError(UnknownNameError):
    """No method (or training recipe) of that name is registered."""


class ParameterError(IntrinsicLabError):
    """A parameter is unknown, of the wrong type, or outside its declared range."""


class WeightsUnavailableError(IntrinsicLabError):
    """A learned method's weights are missing or fail verification."""


class NumericalError(IntrinsicLabError):
    """A method produced values that are not finite numbers (NaN or infinity); its result is refused, not stored."""


class NoFaceError(InputKindError):
    """A face method found no face in the photo (or the face detector is not installed)."""
