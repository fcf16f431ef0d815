"""Cost stays linear under hostile input: history scrubbing and base layers named twice.

Each test checks that the work was done by counting what was done (every value
masked, every entry scrubbed, every blob read once); the pytest timeout on the
slow ones is only a hang guard, far above what the linear code needs and far
below what the old quadratic code took (minutes for the 60k x 55k case, hours
for the hostile texts).  The speed itself is measured in bench/.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from ociforge.app.dburl import SECRET_QUERY_PARAMS, has_credential_url, mask_secrets
from ociforge.app.masking import Masker
from ociforge.app.policy import Policy
from ociforge.app.redact import MASK, history_scrubber
from ociforge.app.spec import ExtraPatterns
from ociforge.layers.build import BuildSettings, LayerSource, build_layer
from ociforge.model.image import Image
from ociforge.model.mutate import append_layers, scratch
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.locations import parse_location

POLICY = Policy.for_app(ExtraPatterns(), ExtraPatterns())
PLATFORM = Platform.parse("linux/amd64")
OPTIONS = Options(platform=PLATFORM)
HANG_GUARD = pytest.mark.timeout(600)
# The regular expression has_credential_url replaces: the oracle for small inputs.
CREDENTIAL_URL = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^/\s:@]*:[^@\r\n]+@"
    r"|[^\s?#]*\?(?:[^#\s]*&)?(?i:" + "|".join(SECRET_QUERY_PARAMS) + r")=[^&#\s])")


@HANG_GUARD
def test_60k_values_over_55k_history_entries() -> None:
    rng = random.Random(60)
    values = [f"v{rng.getrandbits(60):015x}{i}" for i in range(60_000)]
    scrub = history_scrubber(POLICY, values)
    done = 0
    for i in range(55_000):
        first, second = values[(i * 7) % 60_000], values[(i * 13 + 1) % 60_000]
        text = f"/bin/sh -c #(nop) ENV X_{i}={first} && echo {second}-{i} API_TOKEN=t{i} done"
        assert scrub(text) == f"/bin/sh -c #(nop) ENV X_{i}=*** && echo ***-{i} API_TOKEN=*** done"
        done += 1
    assert done == 55_000


HOSTILE = 1_000_000  # characters: quadratic work on this is hours, linear is a second


@HANG_GUARD
@pytest.mark.parametrize("case", ["letters", "scheme-colons", "long-value", "suffix-chain",
                                  "almost-a-value", "unclosed-quotes", "query-amps"])
def test_hostile_history_text_is_scrubbed_in_linear_time(case: str) -> None:
    values: list[str] = []
    if case == "letters":                 # NAME=, scheme:// and URL scans from every letter
        text, expected = "a" * HOSTILE, "a" * HOSTILE
    elif case == "scheme-colons":         # a scheme at every 6th character, no '@' anywhere
        text = "a://b:" * (HOSTILE // 6)
        expected = text
    elif case == "long-value":            # one NAME=VALUE whose value is a megabyte of letters
        text, expected = "CONFIG=" + "a" * HOSTILE, "CONFIG=" + "a" * HOSTILE
    elif case == "suffix-chain":          # 2,000 dropped values, each a suffix of the next
        values = ["x" * n for n in range(4, 2_004)]
        text, expected = "y" + "x" * HOSTILE + "y", f"y{MASK}y"
    elif case == "almost-a-value":        # a long value that nearly matches everywhere
        values = ["a" * 5_000 + "b", "aaaa"]
        text, expected = "a" * HOSTILE, MASK
    elif case == "unclosed-quotes":
        text = 'A="' + "b" * HOSTILE
        expected = text
    else:                                 # a query with a million '&' and no secret
        text = "https://h/p?" + "x&" * (HOSTILE // 2)
        expected = text
    assert history_scrubber(POLICY, values)(text) == expected


def test_overlapping_values_are_masked_whole() -> None:
    """The union of the occurrences: no tail of an overlapping value stays visible."""
    scrub = history_scrubber(POLICY, ["SECRETAAAA", "AAAABBBBBB", "tok-123", "123456"])
    assert scrub("x SECRETAAAABBBBBB y") == "x *** y"
    assert scrub("tok-123456 tok-123") == "*** ***"
    assert scrub("abc") == "abc"
    masker = Masker(["abcd", "cdef", "zz"])
    assert masker.spans("xabcdefy abcd zzz") == [(1, 7), (9, 13), (14, 17)]
    assert Masker([]).mask("text", MASK) == "text"
    assert Masker(["\udcff\udcfe"]).mask("a\udcff\udcfeb", MASK) == "a***b"


def test_scrubber_keeps_what_the_old_one_did_on_ordinary_history() -> None:
    scrub = history_scrubber(POLICY, {"s3cr3t-value", "abc"})
    assert scrub("ENV API_TOKEN=s3cr3t-value X=1") == "ENV API_TOKEN=*** X=1"
    assert scrub("echo s3cr3t-value") == "echo ***"
    assert scrub("echo abc") == "echo abc"                   # short: only as NAME=VALUE
    assert scrub("RUN 9API_TOKEN=x") == "RUN 9API_TOKEN=***"
    assert scrub("git clone https://bob:pw@h/x") == "git clone https://bob:***@h/x"


def test_has_credential_url_is_the_regex_it_replaces() -> None:
    alphabet = [*"aZ9:/@ ?&#=\n\r+.-x", "token", "PASSWORD", "://", "a://", "h?", "&pwd=",
                "?secret="]
    rng = random.Random(7)
    for _ in range(100_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        assert has_credential_url(text) == bool(CREDENTIAL_URL.search(text)), repr(text)


@HANG_GUARD
@pytest.mark.parametrize("text", [
    "a" * HOSTILE,
    "a://b:" * (HOSTILE // 6),
    "a://h?" * (HOSTILE // 6),
    "a://h?" + "x&" * (HOSTILE // 2),
    "a:/" * (HOSTILE // 3),
])
def test_url_checks_are_linear_on_hostile_values(text: str) -> None:
    assert has_credential_url(text) is False
    assert mask_secrets(text) == text
    assert has_credential_url(text + " r://u:p@h") is True
    assert mask_secrets(text + " r://u:p@h").endswith(" r://u:***@h")


@HANG_GUARD
def test_a_glob_from_ociforge_toml_names_whole_variables() -> None:
    policy = Policy.for_app(ExtraPatterns(env=("HELLO_SEAT_*",)), ExtraPatterns())
    assert policy.env_rule("HELLO_SEAT_POOL", "x") is not None
    assert policy.env_rule("MY_HELLO_SEAT_POOL", "x") is None
    assert policy.env_rule("A" * HOSTILE, "x") is None


# -- a base naming one layer many times -----------------------------------------------

REPEATS = 40


def _repeating_base(tmp_path: Path) -> Image:
    """A base whose manifest names one dirty layer (a license key in it) 40 times."""
    tree = tmp_path / "tree"
    (tree / "opt").mkdir(parents=True)
    (tree / "opt" / "site.lic").write_bytes(b"FEATURE x SIGN=REPEATED-LICKEY")
    (tree / "opt" / "tool").write_bytes(b"#!/bin/sh\n")
    layer = build_layer([LayerSource(tree, "/")], BuildSettings(epoch=1)).layer
    return append_layers(scratch(PLATFORM), [layer] * REPEATS,
                         created_by=["same"] * REPEATS, epoch=1)


def _app(tmp_path: Path, base: str) -> Path:
    app = tmp_path / "app"
    (app / "run").mkdir(parents=True)
    (app / "run" / "start.sh").write_bytes(b"#!/bin/sh\n")
    (app / "ociforge.toml").write_text(
        f'[app]\nname = "rep"\nbase = "{base}"\nplatform = "linux/amd64"\n'
        '[[layers]]\nsrc = "run"\ndest = "/app"\n')
    return app


def _check_export(image: Image, report: dict, base: Image) -> None:  # type: ignore[type-arg]
    base_entries = [entry for entry in report["layers"] if entry["role"] == "base"]
    assert len(base_entries) == REPEATS
    rewritten = {entry["digest"] for entry in base_entries}
    assert len(rewritten) == 1 and rewritten != {str(base.layers[0].digest)}
    assert all(entry["original"]["digest"] == str(base.layers[0].digest)
               for entry in base_entries)
    assert [str(layer.digest) for layer in image.layers[:REPEATS]] == [*rewritten] * REPEATS
    left_out = [e for e in report["left_out_files"] if e["layer"] == "base"]
    assert left_out == [{"path": "/opt/site.lic", "rule": "license-key-file", "layer": "base",
                         "base_layer": 0}]


def test_a_layer_named_many_times_is_read_and_scanned_once_from_a_registry(
        cli, registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = _repeating_base(tmp_path)
    ref = f"{registry.host}/bases/repeating:1"
    parse_location(ref).write(base, OPTIONS)
    app = _app(tmp_path, ref)
    mark = registry.log_mark()
    out, report_path = tmp_path / "out", tmp_path / "report.json"
    code, _, err = cli("export", app, "-o", f"oci:{out}", "--report", report_path)
    assert code == 0, err
    log = registry.log_since(mark)
    digest = base.layers[0].digest
    gets = [line for line in log.splitlines()
            if f'"GET /v2/bases/repeating/blobs/{digest} ' in line]
    assert len(gets) == 1, gets
    image = parse_location(f"oci:{out}:latest").read(OPTIONS)
    assert isinstance(image, Image)
    _check_export(image, json.loads(report_path.read_text()), base)


def test_a_layer_named_many_times_is_read_once_from_a_layout(cli, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                             monkeypatch) -> None:
    from ociforge.stores.layout import Layout

    base = _repeating_base(tmp_path)
    parse_location(f"oci:{tmp_path / 'base'}:1").write(base, OPTIONS)
    app = _app(tmp_path, f"oci:{tmp_path / 'base'}:1")
    digest = base.layers[0].digest
    read = {"bytes": 0}
    real_open = Layout._open_raw

    class Counting:
        def __init__(self, inner):  # type: ignore[no-untyped-def]
            self._inner = inner

        def read(self, n: int = -1) -> bytes:
            data = self._inner.read(n)
            read["bytes"] += len(data)
            return data  # type: ignore[no-any-return]

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(self._inner, name)

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc: object) -> None:
            self._inner.close()

    def counting(self, desc):  # type: ignore[no-untyped-def]
        handle = real_open(self, desc)
        return Counting(handle) if desc.digest == digest else handle

    monkeypatch.setattr(Layout, "_open_raw", counting)
    out, report_path = tmp_path / "out", tmp_path / "report.json"
    code, _, err = cli("export", app, "-o", f"oci:{out}", "--report", report_path)
    assert code == 0, err
    # one scan pass and one rewrite pass over the blob, not 2 x 40
    assert read["bytes"] == 2 * base.layers[0].size, read
    monkeypatch.undo()
    image = parse_location(f"oci:{out}:latest").read(OPTIONS)
    assert isinstance(image, Image)
    _check_export(image, json.loads(report_path.read_text()), base)


def test_a_repeated_layer_with_a_different_diff_id_is_refused(tmp_path: Path) -> None:
    """The config's diff_id of every occurrence is still checked against the content."""
    import dataclasses

    from ociforge.app.baselayers import RewriteSettings, filter_base_layers
    from ociforge.errors import DigestMismatchError
    from ociforge.model.digest import Digest

    layers = list(_repeating_base(tmp_path).layers)
    layers[3] = dataclasses.replace(layers[3], diff_id=Digest("sha256", "0" * 64))
    forged = append_layers(scratch(PLATFORM), layers, created_by=["same"] * REPEATS, epoch=1)
    with pytest.raises(DigestMismatchError, match="base layer 4/40"):
        filter_base_layers(forged, POLICY, RewriteSettings("gzip", False))
