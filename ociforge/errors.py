"""The error tree: every expected failure is an OciforgeError with an exit code.

The CLI prints ``str(error)`` as one line and exits with ``error.exit_code``;
anything else is a bug and gets a traceback.  Exit codes: 1 = an operation
failed (corrupt blob, I/O, registry refused), 2 = bad input or usage.
"""

from __future__ import annotations


class OciforgeError(Exception):
    """Base of every error ociforge raises on purpose."""

    exit_code = 1


class InvalidInputError(OciforgeError):
    """The user gave something malformed: a location, option, file or document."""

    exit_code = 2


class InvalidReferenceError(InvalidInputError):
    """An image reference or location that does not parse."""


class InvalidPlatformError(InvalidInputError):
    """A platform string that does not parse or matches nothing."""


class SelectionError(InvalidInputError):
    """A location that names no single image: several manifests and no tag, or an unknown tag.

    Bad input (exit 2) everywhere, also in ``verify``, which otherwise reports what a
    location holds as a failed check.
    """


class HostileInputError(InvalidInputError):
    """An archive or document that tries to escape its root or exhaust resources."""


class ConfigFileError(InvalidInputError):
    """An ociforge.toml (or similar) with wrong keys, types or values."""


class OperationError(OciforgeError):
    """A well-formed operation that failed (I/O, network, corrupt data)."""

    exit_code = 1


class DigestMismatchError(OperationError):
    """A blob or manifest whose bytes do not hash to the digest that names it."""


class SizeMismatchError(DigestMismatchError):
    """A blob whose length differs from its descriptor's size."""


class ValidationError(OperationError):
    """An image, index or config that breaks the image-spec's rules."""


class NotFoundError(OperationError):
    """A blob, manifest or tag that is not where it was expected."""


class RegistryError(OperationError):
    """A registry answered with an error; carries the registry's own code.

    ``code`` is the first code of the answer; ``codes`` every code in it (registries
    send several, e.g. DIGEST_INVALID then MANIFEST_BLOB_UNKNOWN for one manifest).
    """

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 codes: tuple[str, ...] = ()):
        super().__init__(message)
        self.status = status
        self.code = code
        self.codes = codes or ((code,) if code else ())


class AuthError(RegistryError):
    """Credentials were refused or are missing for an operation that needs them."""


class TransportError(OperationError):
    """The connection failed (after retries) or timed out."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where SIGINT raises KeyboardInterrupt: the same clean-up runs.

    The command line installs the handler that raises it (exit 143, where Ctrl-C
    exits 130); every ``except KeyboardInterrupt`` and ``finally`` in the
    library treats both alike.
    """


class Cancelled(KeyboardInterrupt):
    """The run's cancel event (``Options.cancel``) was set: it stopped where it was.

    A KeyboardInterrupt, as asyncio's CancelledError is no Exception: the clean-up
    after Ctrl-C runs (no half-written blob, layout or archive is left), and an
    ``except Exception`` cannot swallow it.  ``completed`` and ``not_completed``
    name the destinations written in full and those not (fully) written; the
    command line exits 130, as after Ctrl-C.
    """

    exit_code = 130

    def __init__(self, completed: list[str] | None = None,
                 not_completed: list[str] | None = None):
        super().__init__("cancelled")
        self.completed = list(completed or [])
        self.not_completed = list(not_completed or [])
