"""``ociforge export``: an application folder becomes a portable image.

Two phases.  :func:`plan_export` (``plan``) checks everything that can be wrong
with the input, so that bad input exits 2 with nothing written.
:meth:`ExportPlan.run` (``run``) then assembles the image: the base of every
platform (``platforms``, ``base``; its layers through the same file rules, see
``app/baselayers``), with a rootfs the layer of its changes against the base
(``rootfslayer``), one layer per ``[[layers]]`` entry, and with ``--with-files``
the files layer and one layer per table (``layers``, ``tablelayers``); the
inventory and licensed software (``ships``); the config with the kept
environment (``environment``) and the report digest label; then every
destination is written, the report last, and referrers and signatures are
added (``attach``).
"""

from .api import ExportOutcome, ExportPlan, ExportRequest
from .plan import plan_export
from .run import export_app
from .ships import inventory_and_licenses

__all__ = ["ExportOutcome", "ExportPlan", "ExportRequest", "export_app",
           "inventory_and_licenses", "plan_export"]
