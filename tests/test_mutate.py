"""Pure transforms: scratch, append, configure, annotate, convert."""

from __future__ import annotations

import io
import json

import pytest

from ociforge.errors import InvalidInputError
from ociforge.model import mediatypes as mt
from ociforge.model.descriptor import Descriptor
from ociforge.model.digest import Digest
from ociforge.model.layer import Layer
from ociforge.model.mutate import (
    ConfigChanges,
    annotate,
    append_layers,
    check_stop_signal,
    configure,
    convert,
    normalize_port,
    rfc3339,
    scratch,
    set_created,
)
from ociforge.model.platform import Platform


def fake_layer(content: bytes, media_type: str = mt.OCI_LAYER) -> Layer:
    d = Digest.of_bytes(content)
    return Layer(Descriptor(media_type, d, len(content)), d, lambda: io.BytesIO(content))


def test_scratch_is_canonical_and_deterministic() -> None:
    a = scratch(Platform.parse("linux/arm64"))
    b = scratch(Platform.parse("linux/arm64"))
    assert a.manifest_bytes == b.manifest_bytes and a.config_bytes == b.config_bytes
    assert a.config["architecture"] == "arm64" and a.config["os"] == "linux"
    assert a.config["created"] == "1970-01-01T00:00:00Z"
    assert a.manifest["config"]["digest"] == str(Digest.of_bytes(a.config_bytes))
    assert json.loads(a.manifest_bytes) == a.manifest
    assert b" " not in a.manifest_bytes


def test_append_layers_updates_rootfs_history_and_descriptors() -> None:
    base = scratch(Platform.parse("linux/amd64"))
    l1, l2 = fake_layer(b"one"), fake_layer(b"two")
    img = append_layers(base, [l1, l2], created_by=["a", "b"], epoch=10)
    assert [x.digest for x in img.layers] == [l1.digest, l2.digest]
    assert img.config["rootfs"]["diff_ids"] == [str(l1.diff_id), str(l2.diff_id)]
    assert [h["created_by"] for h in img.config["history"]] == ["a", "b"]
    assert all(h["created"] == rfc3339(10) for h in img.config["history"])
    assert [ly["digest"] for ly in img.manifest["layers"]] == [str(l1.digest), str(l2.digest)]
    assert img.manifest["config"]["digest"] == str(Digest.of_bytes(img.config_bytes))
    assert append_layers(img, []) is img


def test_append_to_docker_image_keeps_docker_family() -> None:
    base = scratch(Platform.parse("linux/amd64"), docker=True)
    img = append_layers(base, [fake_layer(b"x", mt.OCI_LAYER_GZIP)])
    assert img.media_type == mt.DOCKER_MANIFEST
    assert img.manifest["layers"][0]["mediaType"] == mt.DOCKER_LAYER_GZIP
    zimg = append_layers(base, [fake_layer(b"z", mt.OCI_LAYER_ZSTD)])
    assert zimg.media_type == mt.OCI_MANIFEST


def test_configure_merges_env_and_replaces_lists() -> None:
    img = scratch(Platform.parse("linux/amd64"))
    img = configure(img, ConfigChanges(env={"A": "1", "B": "2"}, cmd=["sh"]))
    img = configure(img, ConfigChanges(env={"A": "3"}, env_remove=["B"], entrypoint=["/bin/app"],
                                       labels={"x": "y"}, exposed_ports=["8080", "53/udp"],
                                       volumes=["/data"], workdir="/app", user="1000:1000",
                                       stop_signal="SIGINT"))
    cfg = img.config["config"]
    assert cfg["Env"] == ["A=3"]
    assert cfg["Entrypoint"] == ["/bin/app"]
    assert "Cmd" not in cfg  # a new entrypoint resets an inherited Cmd
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["Volumes"] == {"/data": {}}
    assert (cfg["WorkingDir"], cfg["User"], cfg["StopSignal"]) == ("/app", "1000:1000", "SIGINT")
    assert all(h.get("empty_layer") for h in img.config["history"])


@pytest.mark.parametrize("bad", ["0", "70000", "80/icmp", "http", ""])
def test_normalize_port_rejects(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        normalize_port(bad)


def test_annotate_and_convert() -> None:
    img = annotate(scratch(Platform.parse("linux/amd64")), {"org.opencontainers.image.title": "t"})
    assert img.manifest["annotations"] == {"org.opencontainers.image.title": "t"}
    docker = convert(append_layers(img, [fake_layer(b"q", mt.OCI_LAYER_GZIP)]), docker=True)
    assert docker.media_type == mt.DOCKER_MANIFEST
    assert "annotations" not in docker.manifest
    assert docker.manifest["config"]["mediaType"] == mt.DOCKER_CONFIG
    back = convert(docker, docker=False)
    assert back.manifest["layers"][0]["mediaType"] == mt.OCI_LAYER_GZIP
    with pytest.raises(InvalidInputError):
        annotate(docker, {"a": "b"})
    with pytest.raises(InvalidInputError):
        convert(append_layers(img, [fake_layer(b"z", mt.OCI_LAYER_ZSTD)]), docker=True)


def test_unchanged_image_keeps_bytes() -> None:
    img = scratch(Platform.parse("linux/amd64"))
    assert configure(img, ConfigChanges()) is img
    assert annotate(img, {}) is img


@pytest.mark.parametrize("good", ["SIGTERM", "TERM", "sigint", "SIGRTMIN+3", "RTMAX-2",
                                  "SIGRTMIN", "9", "64", "SIGWINCH"])
def test_stop_signal_accepts_names_and_numbers(good: str) -> None:
    assert check_stop_signal(good) == good  # kept as written


@pytest.mark.parametrize("bad", ["FOO", "SIGFOO", "0", "65", "SIGRTMIN+16", "SIGRTMAX+1",
                                 "RTMIN-1", "", "SIG", "-9", "SIG TERM"])
def test_stop_signal_refuses_what_no_runtime_knows(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="stop signal"):
        check_stop_signal(bad)


def test_drop_annotations_also_drops_the_subject() -> None:
    from ociforge.model.image import Image
    from ociforge.model.jsonutil import canonical
    from ociforge.model.mutate import drop_annotations

    base = annotate(scratch(Platform.parse("linux/amd64")), {"org.opencontainers.image.title": "b"})
    manifest = dict(base.manifest)
    manifest["subject"] = {"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "a" * 64,
                           "size": 10}
    referrer = Image(canonical(manifest), base.config_bytes, base.layers)
    clean = drop_annotations(referrer)
    assert "subject" not in clean.manifest and "annotations" not in clean.manifest
    plain = scratch(Platform.parse("linux/amd64"))
    assert drop_annotations(plain) is plain


def test_set_created_sets_the_config_time_and_leaves_history_as_it_is() -> None:
    base = append_layers(scratch(Platform.parse("linux/amd64")), [fake_layer(b"a")],
                         epoch=978307200)
    history = base.config["history"]
    assert history[-1]["created"] == "2001-01-01T00:00:00Z"
    stamped = set_created(base, 86400)
    assert stamped.config["created"] == "1970-01-02T00:00:00Z"
    assert stamped.config["history"] == history
