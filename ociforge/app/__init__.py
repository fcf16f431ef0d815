"""Application export: an app folder with ociforge.toml becomes a portable image.

``spec`` loads and checks ociforge.toml, ``policy`` decides which variables and
files are license material or secrets, ``tables`` snapshots database tables,
``baselayers`` puts the base image's layers through the same file rules (rewriting
a layer only where something matches, through ``tarblob``), ``report`` describes
what was exported, and the ``export`` package puts it all together (phase one in
``export.plan``, phase two in ``export.run``, one module a step).
"""
