"""Where the cache lives, and whether it can be used at all.

``--cache-dir DIR``, else ``$OCIFORGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/ociforge``,
else ``~/.cache/ociforge``.  A folder that cannot be created or written, or that
belongs to another user or is writable by others (someone else could plant
entries), turns the cache off with one warning: a command never fails, and
never changes its result, because of its cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Mapping

from ..errors import InvalidInputError
from ..options import DEFAULT_CACHE_MAX, CacheOptions, environ_value
from .store import TAG_NAME, TAG_TEXT

log = logging.getLogger("ociforge.cache")

ENV_DIR = "OCIFORGE_CACHE_DIR"


class Unusable(Exception):
    """Why a cache folder cannot be used (the text of the one warning)."""


def default_cache_dir(environ: Mapping[str, str] | None = None) -> str:
    """$OCIFORGE_CACHE_DIR, $XDG_CACHE_HOME/ociforge or ~/.cache/ociforge (absolute)."""
    explicit = (environ_value(ENV_DIR, environ) or "").strip()
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    xdg = (environ_value("XDG_CACHE_HOME", environ) or "").strip()
    if xdg and os.path.isabs(xdg):     # the XDG spec: a relative value is ignored
        return os.path.join(xdg, "ociforge")
    home = (environ_value("HOME", environ) or "").strip()
    if not home or not os.path.isabs(home):
        raise Unusable("no home folder ($HOME is not set)")
    if not os.path.isdir(home):
        raise Unusable(f"the home folder {home} does not exist")
    return os.path.join(home, ".cache", "ociforge")


def check_usable(path: str) -> str:
    """Create the folder (0700) if needed and make sure only we can write it."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        info = os.stat(path)
    except OSError as exc:
        raise Unusable(f"cannot create {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise Unusable(f"{path} is not a folder")
    if info.st_uid != os.geteuid():
        raise Unusable(f"{path} belongs to another user")
    if info.st_mode & 0o022:
        raise Unusable(f"{path} is writable by other users (chmod go-w it to use it)")
    probe = os.path.join(path, f".probe.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise Unusable(f"cannot write in {path}: {exc.strerror}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    tag = os.path.join(path, TAG_NAME)
    if not os.path.exists(tag):
        with contextlib.suppress(OSError), open(tag, "wb") as fh:
            fh.write(TAG_TEXT)
    return path


def cache_options(cache_dir: str | None, no_cache: bool, offline: bool,
                  environ: Mapping[str, str] | None = None,
                  max_size: int = DEFAULT_CACHE_MAX,
                  keep_pulled_blobs: bool = True) -> CacheOptions:
    """The cache a command uses: checked here, once, so a bad folder warns only once."""
    if no_cache and cache_dir:
        raise InvalidInputError("--cache-dir and --no-cache contradict each other")
    if no_cache and offline:
        raise InvalidInputError("--offline reads registry images from the cache: it cannot "
                                "go with --no-cache")
    if no_cache:
        return CacheOptions(dir=None, offline=False, max_size=max_size)
    try:
        path = (os.path.abspath(os.path.expanduser(cache_dir)) if cache_dir
                else default_cache_dir(environ))
        usable = check_usable(path)
    except Unusable as exc:
        log.warning("cache disabled: %s", exc)
        usable = None
    return CacheOptions(dir=usable, offline=offline, max_size=max_size,
                        keep_pulled_blobs=keep_pulled_blobs)
