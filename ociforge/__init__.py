"""ociforge: a daemonless OCI image assembler.

The public API: values (:class:`Digest`, :class:`Descriptor`, :class:`Platform`,
:class:`Layer`, :class:`Image`, :class:`Index`), sources and sinks through
:func:`parse_location`, and pure transforms in :mod:`ociforge.model.mutate`.
Attributes are imported lazily so that the CLI starts fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Digest": "model.digest",
    "Descriptor": "model.descriptor",
    "Platform": "model.platform",
    "Layer": "model.layer",
    "Image": "model.image",
    "Index": "model.index",
    "build_index": "model.index",
    "Options": "options",
    "RegistryOptions": "options",
    "parse_location": "stores.locations",
    "resolve_platform": "stores.locations",
    "OciforgeError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ociforge' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"ociforge.{module}"), name)
