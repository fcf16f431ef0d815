"""What changed between two images: layers, files and runtime config ("since the last export").

Layers are matched by digest, and a layer whose digest differs but whose
diff_id is the same (recompressed) counts as kept.  Files come from the tree
each image's layers add up to (layers/filetree.py: whiteouts and opaque folders
applied), each distinct layer streamed once even when both images have it;
a file is changed when its type, content digest, symlink target, mode or owner
differ.  Folders are not listed.  The config comparison covers env, entrypoint,
cmd, workdir, user, labels, exposed ports, volumes and the stop signal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidInputError
from ..layers.filetree import FileState, LayerChanges, apply_changes, read_changes
from ..model.digest import Digest
from ..model.image import Image
from ..model.layer import Layer
from ..options import Options
from ..stores.locations import Location, resolve_platform
from .sources import open_source


@dataclass
class ImageDiff:
    a: tuple[str, str]                  # (location, digest)
    b: tuple[str, str]
    kept: list[dict[str, Any]] = field(default_factory=list)
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, list[dict[str, Any]]] | None = None   # None: not compared (--no-files)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def same(self) -> bool:
        return self.a[1] == self.b[1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"location": self.a[0], "digest": self.a[1]},
            "b": {"location": self.b[0], "digest": self.b[1]},
            "identical": self.same,
            "layers": {"kept": self.kept, "added": self.added, "removed": self.removed},
            "files": self.files,
            "config": self.config,
        }


def diff_images(a: str | Location, b: str | Location, options: Options | None = None, *,
                files: bool = True) -> ImageDiff:
    """Compare the images two locations name (an index: the platform ``options`` picks)."""
    options = options if options is not None else Options()
    locations = (open_source(a), open_source(b))
    images = []
    for location in locations:
        image = resolve_platform(location.read(options), options)
        if not isinstance(image, Image):
            raise InvalidInputError(f"{location} names an index: pick one image with --platform")
        images.append(image)
    old, new = images
    result = ImageDiff((str(locations[0]), str(old.digest)), (str(locations[1]), str(new.digest)))
    result.kept, result.added, result.removed = _layers(old, new)
    if files and result.same:
        result.files = {"added": [], "removed": [], "changed": []}  # one image: nothing to read
    elif files:
        cache: dict[Digest, LayerChanges] = {}
        result.files = _files(_tree(old, cache), _tree(new, cache))
    result.config = config_changes(old.config, new.config)
    return result


def _layer_entry(layer: Layer, diff_id: str | None) -> dict[str, Any]:
    return {"digest": str(layer.digest), "diff_id": diff_id, "size": layer.size,
            "mediaType": layer.media_type}


def _layers(old: Image, new: Image) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                             list[dict[str, Any]]]:
    old_ids, new_ids = _diff_ids(old), _diff_ids(new)
    unmatched = list(range(len(old.layers)))
    kept, added = [], []
    for i, layer in enumerate(new.layers):
        match = next((j for j in unmatched if old.layers[j].digest == layer.digest), None)
        recompressed = False
        if match is None and new_ids[i] is not None:
            match = next((j for j in unmatched if old_ids[j] == new_ids[i]), None)
            recompressed = match is not None
        entry = _layer_entry(layer, new_ids[i])
        if match is None:
            added.append(entry)
            continue
        unmatched.remove(match)
        if recompressed:
            entry["recompressed_from"] = str(old.layers[match].digest)
        kept.append(entry)
    removed = [_layer_entry(old.layers[j], old_ids[j]) for j in unmatched]
    return kept, added, removed


def _diff_ids(image: Image) -> list[str | None]:
    ids = image.diff_ids
    return [ids[i] if i < len(ids) else None for i in range(len(image.layers))]


def _tree(image: Image, cache: dict[Digest, LayerChanges]) -> dict[str, FileState]:
    tree: dict[str, FileState] = {}
    for layer in image.layers:
        changes = cache.get(layer.digest)
        if changes is None:
            changes = cache[layer.digest] = read_changes(layer)
        apply_changes(tree, changes)
    return tree


def _file_entry(path: str, state: FileState) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": "/" + path, "type": state.type, "size": state.size}
    if state.digest:
        entry["digest"] = state.digest
    if state.target:
        entry["target"] = state.target
    return entry


def _files(old: dict[str, FileState], new: dict[str, FileState]
           ) -> dict[str, list[dict[str, Any]]]:
    added, removed, changed = [], [], []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before is None and after is not None:
            if after.type != "dir":  # folders are not files
                added.append(_file_entry(path, after))
        elif after is None and before is not None:
            if before.type != "dir":
                removed.append(_file_entry(path, before))
        elif before is not None and after is not None:
            what = before.differences(after)
            if what and not (before.type == after.type == "dir"):
                entry = _file_entry(path, after)
                entry["changes"] = what
                entry["was"] = _file_entry(path, before)
                changed.append(entry)
    return {"added": added, "removed": removed, "changed": changed}


# -- config ---------------------------------------------------------------------------------

_SCALARS = (("Entrypoint", "entrypoint"), ("Cmd", "cmd"), ("WorkingDir", "workdir"),
            ("User", "user"), ("StopSignal", "stop_signal"))


def config_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The runtime settings that differ: ``{key: {"from", "to"}}`` for single values,
    ``{key: {"added", "removed", "changed"}}`` for env, labels, ports and volumes."""
    before, after = _runtime(old), _runtime(new)
    out: dict[str, Any] = {}
    env = _mapping(_env(before.get("Env")), _env(after.get("Env")))
    if env:
        out["env"] = env
    for key, name in _SCALARS:
        if before.get(key) != after.get(key):
            out[name] = {"from": before.get(key), "to": after.get(key)}
    labels = _mapping(_strings(before.get("Labels")), _strings(after.get("Labels")))
    if labels:
        out["labels"] = labels
    for key, name in (("ExposedPorts", "exposed_ports"), ("Volumes", "volumes")):
        was, now = _keys(before.get(key)), _keys(after.get(key))
        if was != now:
            out[name] = {"added": sorted(now - was), "removed": sorted(was - now)}
    return out


def _runtime(config: dict[str, Any]) -> dict[str, Any]:
    runtime = config.get("config")
    return runtime if isinstance(runtime, dict) else {}


def _env(value: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in value if isinstance(value, list) else []:
        if isinstance(item, str):
            key, _, text = item.partition("=")
            out[key] = text
    return out


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _keys(value: Any) -> set[str]:
    return {k for k in value if isinstance(k, str)} if isinstance(value, dict) else set()


def _mapping(old: dict[str, str], new: dict[str, str]) -> dict[str, Any]:
    added = {k: new[k] for k in sorted(new.keys() - old.keys())}
    removed = {k: old[k] for k in sorted(old.keys() - new.keys())}
    changed = {k: {"from": old[k], "to": new[k]} for k in sorted(old.keys() & new.keys())
               if old[k] != new[k]}
    if not (added or removed or changed):
        return {}
    return {"added": added, "removed": removed, "changed": changed}


def summary_lines(diff: ImageDiff, shorten: Callable[[str], str] = lambda d: d[:19]
                  ) -> list[str]:
    """The human report: counts first, then one line per change."""
    lines = [f"{diff.a[0]} ({shorten(diff.a[1])}) -> {diff.b[0]} ({shorten(diff.b[1])})"]
    if diff.same:
        lines.append("identical")
        return lines
    from ..display import plural

    lines.append(f"layers: {len(diff.kept)} kept, {len(diff.added)} added, "
                 f"{len(diff.removed)} removed")
    lines += [f"  + {e['digest']} ({plural(int(e['size']), 'byte')})" for e in diff.added]
    lines += [f"  - {e['digest']} ({plural(int(e['size']), 'byte')})" for e in diff.removed]
    if diff.files is not None:
        files = diff.files
        lines.append(f"files: {len(files['added'])} added, {len(files['removed'])} removed, "
                     f"{len(files['changed'])} changed")
        lines += [f"  + {e['path']}" for e in files["added"]]
        lines += [f"  - {e['path']}" for e in files["removed"]]
        lines += [f"  ~ {e['path']} ({', '.join(e['changes'])})" for e in files["changed"]]
    if diff.config:
        lines.append("config:")
        for key, change in diff.config.items():
            if {"added", "removed", "changed"} <= set(change) and isinstance(
                    change["added"], dict):
                lines += [f"  {key} + {k}={v}" for k, v in change["added"].items()]
                lines += [f"  {key} - {k}" for k in change["removed"]]
                lines += [f"  {key} ~ {k}: {v['from']} -> {v['to']}"
                          for k, v in change["changed"].items()]
            elif "from" in change:
                lines.append(f"  {key}: {_show(change['from'])} -> {_show(change['to'])}")
            else:
                lines += [f"  {key} + {v}" for v in change["added"]]
                lines += [f"  {key} - {v}" for v in change["removed"]]
    else:
        lines.append("config: unchanged")
    return lines


def _show(value: Any) -> str:
    import json

    return "(none)" if value is None else json.dumps(value)
