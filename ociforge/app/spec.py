"""ociforge.toml: the application description, loaded and checked strictly.

Every mistake (unknown key, wrong type, missing key, a path leaving the app
folder) is a ConfigFileError that names the key and its line in the file, so
the user can fix it without guessing.  Nothing here touches the network or
builds anything: a spec that loads is safe to export.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

from ..errors import ConfigFileError, InvalidInputError, InvalidPlatformError
from ..fsutil import read_regular
from ..model.platform import ALL_PLATFORMS, Platform, parse_platforms
from .tomlpos import KeyLines

SPEC_NAME = "ociforge.toml"
FORMATS = ("parquet", "csv")
_REPO_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*$")
_TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

_SECTIONS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "app": ("name", "base", "platform", "licensed", "rootfs"),
    "config": ("entrypoint", "cmd", "env", "env_file", "workdir", "user", "ports", "labels",
               "volumes", "stop_signal"),
    "layers": ("src", "dest", "exclude"),
    "files": ("src", "dest", "exclude"),
    "tables": ("name", "source", "table", "query", "format", "dest"),
    "licenses": ("env", "files", "allow"),
    "secrets": ("env", "files", "allow_files"),
})

_ARRAYS = ("layers", "tables")   # written [[layers]], [[tables]]


def _did_you_mean(key: str, allowed: tuple[str, ...]) -> str:
    guess = difflib.get_close_matches(key, list(allowed), 1, 0.6)
    return f" (did you mean {guess[0]!r}?)" if guess else ""


PLACEHOLDERS = ("os", "arch", "variant")
_PLACEHOLDER_RE = re.compile(r"\{(os|arch|variant)\}")
_BRACES_RE = re.compile(r"\{[A-Za-z_]*\}")


def has_placeholders(src: str) -> bool:
    """Whether ``src`` names a folder per platform (``{os}``, ``{arch}``, ``{variant}``)."""
    return _PLACEHOLDER_RE.search(src) is not None


def fill_placeholders(src: str, platform: Platform) -> str:
    """``src`` for one platform: ``{os}``, ``{arch}``, and ``{variant}`` (empty when the
    platform has none); other braces stay as they are."""
    values = {"os": platform.os, "arch": platform.architecture,
              "variant": platform.variant or ""}
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], src)


@dataclass(frozen=True)
class PathSpec:
    """A folder or file of the app (``src``) placed at ``dest`` in the image.

    A ``src`` with placeholders names one folder per platform: ``for_platform``
    fills them in and checks that folder (``path`` is then unchecked)."""

    src: str            # as written: relative to the app folder, or absolute in the rootfs
    path: Path          # resolved on disk, inside the app folder
    dest: str
    exclude: tuple[str, ...] = ()
    where: str = ""     # "FILE:LINE: layers[0].src", to name it in errors
    root: Path | None = None    # the app folder

    @property
    def per_platform(self) -> bool:
        return has_placeholders(self.src)

    def for_platform(self, platform: Platform) -> PathSpec:
        """This entry for ``platform``: itself without placeholders, else with them filled
        in and the folder checked (ConfigFileError naming the platform when it is missing
        or leaves the application folder)."""
        if not self.per_platform:
            return self
        assert self.root is not None
        text = fill_placeholders(self.src, platform)
        path, problem = resolve_inside(self.root, text)
        if problem is not None:
            raise ConfigFileError(f"{self.where}: {self.src!r} is {text!r} for {platform}, "
                                  f"which {problem}")
        return replace(self, src=text, path=path)


@dataclass(frozen=True)
class TableSpec:
    name: str
    source: str         # database URL as written (may hold a password: never print it)
    table: str | None
    query: str | None
    format: str
    dest: str


@dataclass(frozen=True)
class ConfigSpec:
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    env_file: str | None = None
    env_file_path: Path | None = None
    workdir: str | None = None
    user: str | None = None
    ports: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    stop_signal: str | None = None


@dataclass(frozen=True)
class ExtraPatterns:
    """User additions to the license or secret rules: env-name and file globs; and what
    the user accepts: licensed packages by name ([licenses] allow) and files the secret
    rules would leave out ([secrets] allow_files)."""

    env: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    allow_files: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppSpec:
    root: Path
    name: str
    base: str = "scratch"
    platform: str | None = None   # one, a comma list, or "all" (as --platform takes it)
    licensed: bool = False
    config: ConfigSpec = field(default_factory=ConfigSpec)
    layers: tuple[PathSpec, ...] = ()
    files: PathSpec | None = None
    tables: tuple[TableSpec, ...] = ()
    licenses: ExtraPatterns = field(default_factory=ExtraPatterns)
    secrets: ExtraPatterns = field(default_factory=ExtraPatterns)
    rootfs: Path | None = None      # export what is installed: this root filesystem's changes
    toml_path: Path | None = field(default=None, compare=False)   # as the user named it
    key_lines: KeyLines | None = field(default=None, compare=False, repr=False)

    def locate(self, path: tuple[str | int, ...]) -> str:
        """``FILE:LINE: key.path`` for messages about a key of ociforge.toml (the file as
        the user named it, the line where the key is written)."""
        shown = str(self.toml_path) if self.toml_path is not None else SPEC_NAME
        line = self.key_lines.line_of(path) if self.key_lines is not None else None
        return f"{shown}:{line}: {_display(path)}" if line else f"{shown}: {_display(path)}"


def spec_folder(app: str | os.PathLike[str]) -> Path:
    """The application folder ``app`` names: the folder itself, or the folder an
    ``ociforge.toml`` given as a file sits in (``export path/to/ociforge.toml``)."""
    path = Path(app)
    if path.name == SPEC_NAME and not path.is_dir():
        return path.parent
    if path.suffix == ".toml" and path.is_file():
        raise ConfigFileError(f"{str(app)!r}: give the application folder, or its "
                              f"{SPEC_NAME} (this file is named {path.name!r})")
    return path


def load_spec(app_dir: str | os.PathLike[str],
              rootfs: str | os.PathLike[str] | None = None) -> AppSpec:
    """Load ``APP_DIR/ociforge.toml`` (or the ociforge.toml named itself); raises
    ConfigFileError (exit 2) on any problem.

    ``rootfs`` (``--rootfs``) overrides ``[app] rootfs``.  With a rootfs, an absolute
    ``src`` in ``[files]`` or ``[[layers]]`` names a path inside it.
    """
    root = spec_folder(app_dir)
    if not root.is_dir():
        raise ConfigFileError(f"application folder {str(root)!r} does not exist")
    toml_path = root / SPEC_NAME
    if not os.path.lexists(toml_path):
        raise ConfigFileError(f"{str(root)!r} has no {SPEC_NAME}")
    try:
        source = read_regular(toml_path, SPEC_NAME, shown=str(toml_path)).decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigFileError(f"{toml_path} is not UTF-8 text") from None
    try:
        data = tomllib.loads(source)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{toml_path}: invalid TOML: {exc}") from None
    return _Loader(root.resolve(), toml_path, source, rootfs).load(data)


def _display(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Loader:
    def __init__(self, root: Path, toml_path: Path, source: str,
                 rootfs: str | os.PathLike[str] | None = None):
        self.root = root
        self.toml_path = toml_path
        self.lines = KeyLines(source)
        self.rootfs_option = rootfs
        self.rootfs: Path | None = None

    # -- errors ---------------------------------------------------------------
    def error(self, path: tuple[str | int, ...], message: str) -> ConfigFileError:
        line = self.lines.line_of(path)
        where = f"{self.toml_path}:{line}" if line else str(self.toml_path)
        return ConfigFileError(f"{where}: {_display(path)}: {message}")

    def header(self, name: str) -> str:
        """How a section is written: ``[[layers]]``, ``[[tables]]``, else ``[name]``
        (an unknown one as the file writes it)."""
        array = (name,) in self.lines.arrays or (name in _SECTIONS and name in _ARRAYS)
        return f"[[{name}]]" if array else f"[{name}]"

    # -- typed getters --------------------------------------------------------
    def table(self, value: Any, path: tuple[str | int, ...], allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.error(path, f"must be a table, not {_type_name(value)}")
        for key in value:
            if key not in allowed:
                raise self.error((*path, key), f"unknown key{_did_you_mean(key, allowed)} "
                                 f"(allowed: {', '.join(allowed)})")
        return value

    def string(self, data: dict, path: tuple[str | int, ...], required: bool = False) -> str | None:
        key = path[-1]
        if key not in data:
            if required:
                raise self.error(path, "is required")
            return None
        value = data[key]
        if not isinstance(value, str):
            raise self.error(path, f"must be a string, not {_type_name(value)}")
        if required and not value.strip():
            raise self.error(path, "must not be empty")
        return value

    def boolean(self, data: dict, path: tuple[str | int, ...]) -> bool:
        value = data.get(path[-1], False)
        if not isinstance(value, bool):
            raise self.error(path, f"must be true or false, not {_type_name(value)}")
        return value

    def strings(self, data: dict, path: tuple[str | int, ...]) -> tuple[str, ...]:
        value = data.get(path[-1], [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(path, "must be an array of strings")
        return tuple(value)

    def command(self, data: dict, path: tuple[str | int, ...]) -> tuple[str, ...] | None:
        if path[-1] not in data:
            return None
        value = data[path[-1]]
        if isinstance(value, str):
            try:
                return tuple(shlex.split(value))
            except ValueError as exc:
                raise self.error(path, f"cannot be split into words: {exc}") from None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise self.error(path, "must be an array of strings or a string")

    def string_table(self, data: dict, path: tuple[str | int, ...]) -> dict[str, str]:
        value = data.get(path[-1], {})
        if not isinstance(value, dict):
            raise self.error(path, f"must be a table, not {_type_name(value)}")
        out: dict[str, str] = {}
        for key, item in value.items():
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise self.error((*path, key), f"must be a string, not {_type_name(item)}")
            out[key] = item if isinstance(item, str) else str(item)
        return out

    # -- paths ----------------------------------------------------------------
    def inside(self, rel: str, path: tuple[str | int, ...], must_exist: bool = True,
               in_rootfs: bool = False) -> Path:
        """Resolve ``rel`` against the app folder; refuse anything that leaves it.

        With ``in_rootfs`` and a rootfs, an absolute ``rel`` is a path inside the rootfs.
        """
        if in_rootfs and self.rootfs is not None and rel.startswith("/"):
            return self.in_rootfs(rel, path)
        full, problem = resolve_inside(self.root, rel, must_exist)
        if problem is not None:
            if "does not exist" in problem and _BRACES_RE.search(rel):
                known = ", ".join("{" + name + "}" for name in PLACEHOLDERS)
                problem += f" (the placeholders are {known})"
            raise self.error(path, f"{rel!r} {problem}")
        return full

    def in_rootfs(self, rel: str, path: tuple[str | int, ...]) -> Path:
        assert self.rootfs is not None
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self.error(path, f"{rel!r} must not contain '..'")
        full = self.rootfs.joinpath(*parts)
        if not os.path.lexists(full):
            raise self.error(path, f"{rel!r} does not exist in the rootfs {str(self.rootfs)!r}")
        real = Path(os.path.realpath(full))
        root = Path(os.path.realpath(self.rootfs))
        if real != root and root not in real.parents:
            raise self.error(path, f"{rel!r} leads out of the rootfs (symlink)")
        return full

    def load_rootfs(self, app: dict) -> Path | None:
        """``--rootfs`` or ``[app] rootfs`` (relative to the app folder): an existing folder."""
        given = self.rootfs_option
        where: tuple[str | int, ...] = ("app", "rootfs")
        if given is None:
            given = self.string(app, where)
            if given is None:
                return None
            if not given.strip():
                raise self.error(where, "must not be empty")
            folder = self.root / os.path.expanduser(given)
        else:
            folder = Path(given)
        if not folder.is_dir():
            shown = str(given)
            message = f"{shown!r} is not a folder" if folder.exists() else \
                f"{shown!r} does not exist"
            if self.rootfs_option is not None:
                raise InvalidInputError(f"--rootfs {message}")
            raise self.error(where, message)
        return Path(os.path.realpath(folder))   # host paths below it compare as written

    def where(self, path: tuple[str | int, ...]) -> str:
        line = self.lines.line_of(path)
        return f"{self.toml_path}:{line}: {_display(path)}" if line else \
            f"{self.toml_path}: {_display(path)}"

    def dest(self, data: dict, path: tuple[str | int, ...], default: str | None) -> str:
        value = self.string(data, path, required=default is None)
        value = value if value is not None else default
        assert value is not None
        if not value.startswith("/"):
            raise self.error(path, f"{value!r} must be an absolute path in the image")
        if ".." in value.split("/"):
            raise self.error(path, f"{value!r} must not contain '..'")
        return value

    # -- sections -------------------------------------------------------------
    def load(self, data: dict) -> AppSpec:
        for key in data:
            if key not in _SECTIONS:
                shown = {name: self.header(name) for name in _SECTIONS}
                guess = difflib.get_close_matches(key, list(_SECTIONS), 1, 0.6)
                hint = f" (did you mean {shown[guess[0]]}?)" if guess else ""
                line = self.lines.line_of((key,))
                where = f"{self.toml_path}:{line}" if line else str(self.toml_path)
                raise ConfigFileError(f"{where}: unknown section {self.header(key)}{hint}; "
                                      f"allowed: {', '.join(shown.values())}")
        app = self.table(data.get("app"), ("app",), _SECTIONS["app"]) if "app" in data else None
        if app is None:
            raise ConfigFileError(f"{self.toml_path}:1: section [app] is missing: start the "
                                  "file with [app] and name = \"...\"")
        name = self.string(app, ("app", "name"), required=True)
        assert name is not None
        if not _REPO_RE.match(name) or len(name) > 255:
            raise self.error(("app", "name"), f"{name!r} is not a valid image name (lowercase "
                             "letters, digits and . _ - separators, '/' between components)")
        platform = self.platform(app)
        self.rootfs = self.load_rootfs(app)
        base = self.string(app, ("app", "base")) or "scratch"
        try:
            from ..stores.locations import parse_location

            parse_location(base, role="source", base_dir=self.root)
        except InvalidInputError as exc:
            raise self.error(("app", "base"), str(exc)) from None
        files = None
        if "files" in data:
            section = self.table(data["files"], ("files",), _SECTIONS["files"])
            files = self.path_spec(section, ("files",), default_dest="/files")
        return AppSpec(
            root=self.root,
            name=name,
            base=base,
            platform=platform,
            licensed=self.boolean(app, ("app", "licensed")),
            config=self.config(data.get("config", {})),
            layers=tuple(self.path_spec(self.table(entry, ("layers", i), _SECTIONS["layers"]),
                                        ("layers", i), default_dest=None)
                         for i, entry in enumerate(self.array(data, "layers"))),
            files=files,
            tables=self.tables(data),
            licenses=self.extra(data, "licenses"),
            secrets=self.extra(data, "secrets"),
            rootfs=self.rootfs,
            toml_path=self.toml_path,
            key_lines=self.lines,
        )

    def platform(self, app: dict) -> str | None:
        """``[app] platform``: one platform, ``"all"``, or an array of platforms (kept as
        the comma list ``--platform`` takes)."""
        p = ("app", "platform")
        value = app.get("platform")
        if value is None:
            return None
        if isinstance(value, list):
            if not value or not all(isinstance(v, str) and v.strip() and "," not in v
                                    for v in value):
                raise self.error(p, "must be a platform (\"linux/amd64\"), \"all\", or a "
                                 "non-empty array of platforms")
            text = ",".join(value)
        elif isinstance(value, str):
            text = value
        else:
            raise self.error(p, f"must be a string or an array of strings, not "
                             f"{_type_name(value)}")
        if text.strip().lower() == ALL_PLATFORMS and not isinstance(value, list):
            return ALL_PLATFORMS
        try:
            parse_platforms(text)
        except InvalidPlatformError as exc:
            raise self.error(p, str(exc)) from None
        return text

    def array(self, data: dict, key: str) -> list:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise self.error((key,), f"must be an array of tables ([[{key}]]), not "
                             f"{_type_name(value)}")
        return value

    def path_spec(self, section: dict, path: tuple[str | int, ...],
                  default_dest: str | None) -> PathSpec:
        src = self.string(section, (*path, "src"), required=True)
        assert src is not None
        # a src with placeholders is checked per platform (PathSpec.for_platform)
        full = self.inside(src, (*path, "src"), must_exist=not has_placeholders(src),
                           in_rootfs=True)
        return PathSpec(src, full, self.dest(section, (*path, "dest"), default_dest),
                        self.strings(section, (*path, "exclude")),
                        where=self.where((*path, "src")), root=self.root)

    def config(self, value: Any) -> ConfigSpec:
        section = self.table(value, ("config",), _SECTIONS["config"])
        p = ("config",)
        env = self.string_table(section, (*p, "env"))
        for key in env:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", key):
                raise self.error((*p, "env", key), "is not a valid environment variable name")
        env_file = self.string(section, (*p, "env_file"))
        env_file_path = self.inside(env_file, (*p, "env_file")) if env_file else None
        ports = section.get("ports", [])
        if not isinstance(ports, list) or not all(
                isinstance(x, str) or (isinstance(x, int) and not isinstance(x, bool))
                for x in ports):
            raise self.error((*p, "ports"), "must be an array of ports (8080 or \"8080/tcp\")")
        from ..model.mutate import normalize_port

        for port in ports:
            try:
                normalize_port(str(port))
            except InvalidInputError as exc:
                raise self.error((*p, "ports"), str(exc)) from None
        volumes = self.strings(section, (*p, "volumes"))
        for volume in volumes:
            if not volume.startswith("/"):
                raise self.error((*p, "volumes"), f"{volume!r} must be an absolute path")
        workdir = self.string(section, (*p, "workdir"))
        if workdir is not None and not workdir.startswith("/"):
            raise self.error((*p, "workdir"), f"{workdir!r} must be an absolute path")
        return ConfigSpec(
            entrypoint=self.command(section, (*p, "entrypoint")),
            cmd=self.command(section, (*p, "cmd")),
            env=env,
            env_file=env_file,
            env_file_path=env_file_path,
            workdir=workdir,
            user=self.string(section, (*p, "user")),
            ports=tuple(str(x) for x in ports),
            labels=self.string_table(section, (*p, "labels")),
            volumes=volumes,
            stop_signal=self.string(section, (*p, "stop_signal")),
        )

    def tables(self, data: dict) -> tuple[TableSpec, ...]:
        out: list[TableSpec] = []
        seen: set[str] = set()
        for i, entry in enumerate(self.array(data, "tables")):
            p: tuple[str | int, ...] = ("tables", i)
            section = self.table(entry, p, _SECTIONS["tables"])
            source = self.string(section, (*p, "source"), required=True)
            assert source is not None
            if not source.startswith(("sqlite:///", "postgresql://", "postgres://", "adbc:")):
                raise self.error((*p, "source"), "must be a database URL: sqlite:///PATH, "
                                 "postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DB or "
                                 "adbc:DRIVER:URI")
            table = self.string(section, (*p, "table"))
            query = self.string(section, (*p, "query"))
            if (table is None) == (query is None):
                raise self.error(p, "give exactly one of 'table' or 'query'")
            name = self.string(section, (*p, "name"))
            if name is None:
                dest_given = self.string(section, (*p, "dest"))
                if table is not None:
                    name = table
                elif dest_given is not None:
                    name = PurePosixPath(dest_given).stem  # /files/totals.csv -> totals
                else:
                    raise self.error((*p, "name"), "is required when 'query' is used "
                                     "without 'dest'")
            if not _TABLE_NAME_RE.match(name):
                raise self.error((*p, "name"), f"{name!r} is not a usable file name")
            if name in seen:
                raise self.error((*p, "name"), f"{name!r} is used by another table")
            seen.add(name)
            fmt = self.string(section, (*p, "format")) or "parquet"
            if fmt not in FORMATS:
                raise self.error((*p, "format"), f"must be one of {', '.join(FORMATS)}")
            dest = self.dest(section, (*p, "dest"), f"/data/{name}.{fmt}")
            if dest.endswith("/"):
                raise self.error((*p, "dest"), "must name a file, not a folder")
            out.append(TableSpec(name, source, table, query, fmt, dest))
        return tuple(out)

    def extra(self, data: dict, key: str) -> ExtraPatterns:
        if key not in data:
            return ExtraPatterns()
        section = self.table(data[key], (key,), _SECTIONS[key])
        return ExtraPatterns(self.strings(section, (key, "env")),
                             self.strings(section, (key, "files")),
                             allow=self.names(section, (key, "allow")),
                             allow_files=self.names(section, (key, "allow_files")))

    def names(self, data: dict, path: tuple[str | int, ...]) -> tuple[str, ...]:
        """An array of package names or file globs: no empty entry, no spaces."""
        values = self.strings(data, path)
        for value in values:
            if not value.strip() or value != value.strip() or any(c.isspace() for c in value):
                raise self.error(path, f"{value!r} is not a name or glob (empty or with spaces)")
        return values


def resolve_inside(root: Path, rel: str, must_exist: bool = True
                   ) -> tuple[Path, str | None]:
    """(``rel`` resolved against the app folder ``root``, None) or (..., why it is refused:
    absolute, leaving the folder, missing, or a symlink leading out)."""
    if os.path.isabs(rel) or rel.startswith("~"):
        return root, "must be relative to the application folder"
    normal = os.path.normpath(rel)
    if normal == ".." or normal.startswith("../"):
        return root, "leaves the application folder"
    full = root / normal
    if must_exist and not os.path.lexists(full):
        return full, "does not exist in the application folder"
    # The src itself is read, so a symlink there must not lead out of the folder.
    real = Path(os.path.realpath(full))
    if os.path.lexists(full) and real != root and root not in real.parents:
        return full, "leads out of the application folder (symlink)"
    return full, None


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "an array", dict: "a table"}.get(type(value), type(value).__name__)
