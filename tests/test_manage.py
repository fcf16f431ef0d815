"""``ociforge tags`` and ``ociforge rm``: a real registry, OCI layouts, a paginating fake.

The real registry (distribution 2.8) lists every tag in one answer and ignores
``n``/``last``, so pagination and its hostile cases (a Link to another origin, a
Link back to a page already read) are checked against a small registry of our
own on loopback that pages its tag list.
"""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fakeregistry import loopback_alias
from httpserver import LoopbackServer, QuietHandler
from registry_fixtures import make_image
from tools import require_module

from ociforge.model.annotations import REF_NAME
from ociforge.stores.layout import Layout


def _layout_with(tmp_path: Path, tags: dict[str, Any]) -> Path:
    root = tmp_path / "lay"
    for tag, image in tags.items():
        Layout(root).put(image, tag)
    return root


def _push(cli, tmp_path: Path, image: Any, *refs: str) -> str:
    src = tmp_path / f"src-{secrets.token_hex(3)}"
    Layout(src).put(image, "x")
    code, _, err = cli("copy", f"oci:{src}:x", *refs)
    assert code == 0, err
    return str(image.digest)


# -- registry -----------------------------------------------------------------------------

def test_tags_of_a_registry_repository(cli, registry, tmp_path: Path) -> None:
    repo = f"{registry.host}/manage/tags-{secrets.token_hex(3)}"
    first, second = make_image(tmp_path), make_image(tmp_path)
    _push(cli, tmp_path, first, f"{repo}:1.0", f"{repo}:latest")
    _push(cli, tmp_path, second, f"{repo}:2.0")
    code, out, err = cli("sign", f"{repo}:2.0", "--key", _key(cli, tmp_path))
    assert code == 0, err

    code, out, err = cli("tags", f"docker://{repo}")
    assert code == 0, err
    assert out.split() == ["1.0", "2.0", "latest"]   # the .sig tag is not an export

    code, out, err = cli("tags", f"{repo}:1.0", "--all", "--json")
    assert code == 0, err
    listed = json.loads(out)
    sig = "sha256-" + str(second.digest).split(":")[1] + ".sig"
    assert listed == sorted(["1.0", "2.0", "latest", sig])
    oras = require_module("oras.provider").Registry(hostname=registry.host, insecure=True)
    assert sorted(oras.get_tags(repo.split("/", 1)[1])) == listed   # another reader agrees

    code, out, err = cli("tags", f"{registry.host}/manage/never-pushed")
    assert (code, out) == (0, ""), err   # an unknown repository has no tags


def test_rm_refuses_when_other_tags_name_the_manifest(cli, registry, tmp_path: Path) -> None:
    repo = f"{registry.host}/manage/rm-{secrets.token_hex(3)}"
    shared, alone = make_image(tmp_path), make_image(tmp_path)
    shared_digest = _push(cli, tmp_path, shared, f"{repo}:1.0", f"{repo}:stable")
    _push(cli, tmp_path, alone, f"{repo}:2.0")

    mark = registry.log_mark()
    code, out, err = cli("rm", f"{repo}:1.0", "--json")
    assert code == 2
    assert "stable" in err and shared_digest in err and "--all-tags" in err
    assert json.loads(out)["exit_code"] == 2
    assert not [r for r in registry.requests_since(mark) if r[0] == "DELETE"]

    code, out, err = cli("rm", f"{repo}:2.0", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["removed_tags"] == ["2.0"] and result["manifest_deleted"] is True
    assert result["via"] == "registry" and result["digest"] == str(alone.digest)
    code, out, _ = cli("tags", f"{repo}:x")
    assert out.split() == ["1.0", "stable"]

    code, out, err = cli("rm", f"{repo}:1.0", "--all-tags")
    assert code == 0, err
    assert "2 tags (1.0, stable)" in out
    code, out, _ = cli("tags", f"{repo}:x")
    assert out.split() == []
    code, _, err = cli("inspect", f"{repo}@{shared_digest}")
    assert code == 1 and "MANIFEST_UNKNOWN" in err


def test_rm_takes_signatures_and_referrers_with_the_image(cli, registry, tmp_path: Path) -> None:
    repo = f"{registry.host}/manage/att-{secrets.token_hex(3)}"
    image, kept = make_image(tmp_path), make_image(tmp_path)
    digest = _push(cli, tmp_path, image, f"{repo}:old")
    _push(cli, tmp_path, kept, f"{repo}:new")
    key = _key(cli, tmp_path)
    for ref in (f"{repo}:old", f"{repo}:new"):
        assert cli("sign", ref, "--key", key)[0] == 0
    from ociforge.trust.referrers import attach_report

    report = attach_report(f"{repo}:old", b'{"app": "x"}')
    hex_part = digest.split(":")[1]

    code, out, err = cli("rm", f"{repo}:old", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result["removed_attachments"]) == {f"sha256-{hex_part}.sig",
                                                   f"sha256-{hex_part}", str(report.digest)}
    code, out, _ = cli("tags", f"{repo}:x", "--all")
    new_hex = str(kept.digest).split(":")[1]
    assert out.split() == ["new", f"sha256-{new_hex}.sig"]
    code, _, err = cli("referrers", f"{repo}@{report.digest}")   # the report itself is gone
    assert code == 1
    code, _, err = cli("verify-signature", f"{repo}:new", "--key", key.replace(".key", ".pub"))
    assert code == 0, err


def test_rm_by_digest_and_unknown_tags(cli, registry, tmp_path: Path) -> None:
    repo = f"{registry.host}/manage/dig-{secrets.token_hex(3)}"
    image = make_image(tmp_path)
    digest = _push(cli, tmp_path, image, f"{repo}:a", f"{repo}:b")
    code, _, err = cli("rm", f"{repo}:nope")
    assert code == 2 and "no tag 'nope'" in err and "a, b" in err
    code, _, err = cli("rm", f"docker://{repo}")
    assert code == 2 and "name the tag to remove" in err
    code, _, err = cli("rm", f"{repo}@{digest}")
    assert code == 2 and "a, b" in err
    code, out, err = cli("rm", f"{repo}@{digest}", "--all-tags", "--json")
    assert code == 0, err
    assert json.loads(out)["removed_tags"] == ["a", "b"]


def _key(cli, tmp_path: Path) -> str:
    prefix = tmp_path / f"k-{secrets.token_hex(3)}"
    code, _, err = cli("keygen", str(prefix), "--no-password")
    assert code == 0, err
    return f"{prefix}.key"


# -- layouts --------------------------------------------------------------------------

def test_layout_tags_and_rm_collects_what_nothing_needs(cli, tmp_path: Path) -> None:
    base = make_image(tmp_path, (4096,))
    child = make_image(tmp_path, (2048,), base=base)        # shares base's layer
    other = make_image(tmp_path, (1024,))
    root = _layout_with(tmp_path, {"base": base, "child": child, "other": other,
                                   "also-other": other})
    key = _key(cli, tmp_path)
    assert cli("sign", f"oci:{root}:child", "--key", key)[0] == 0
    from ociforge.trust.referrers import attach_report

    attach_report(f"oci:{root}:child", b'{"app": "child"}')
    code, out, err = cli("tags", f"oci:{root}")
    assert code == 0, err
    assert out.split() == ["also-other", "base", "child", "other"]
    assert len(cli("tags", f"oci:{root}", "--all", "--json")[1] and
               json.loads(cli("tags", f"oci:{root}", "--all", "--json")[1])) == 6

    blobs = root / "blobs" / "sha256"
    before = set(p.name for p in blobs.iterdir())
    code, out, err = cli("rm", f"oci:{root}:child", "--json")
    assert code == 0, err
    result = json.loads(out)
    child_hex = str(child.digest).split(":")[1]
    assert result["removed_tags"] == ["child"] and result["manifest_deleted"] is True
    assert set(result["removed_attachments"]) == {f"sha256-{child_hex}.sig",
                                                   f"sha256-{child_hex}"}
    after = set(p.name for p in blobs.iterdir())
    gone = before - after
    # the child's own layer, config, manifest, its signature and report went; the base
    # layer it shares with 'base' stayed
    assert child_hex in gone and str(child.layers[-1].digest).split(":")[1] in gone
    assert str(base.layers[0].digest).split(":")[1] in after
    assert result["blobs_removed"] == len(gone) and result["bytes_freed"] > 0
    code, _, err = cli("verify", f"oci:{root}:base")
    assert code == 0, err

    # another tag of the same manifest: only the tag goes, nothing is collected
    code, out, err = cli("rm", f"oci:{root}:other", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["manifest_deleted"], result["blobs_removed"]) == (False, 0)
    assert cli("verify", f"oci:{root}:also-other")[0] == 0
    tags = [d.annotations[REF_NAME] for d in Layout(root).descriptors()]
    assert sorted(tags) == ["also-other", "base"]


def test_layout_rm_all_tags_and_bad_input(cli, tmp_path: Path) -> None:
    image = make_image(tmp_path)
    root = _layout_with(tmp_path, {"a": image, "b": image})
    index_before = (root / "index.json").read_bytes()
    for args, words in (((f"oci:{root}:zz",), "no tag 'zz'"), ((f"oci:{root}",), "oci:"),
                        ((f"oci:{tmp_path}/none:a",), "does not exist"),
                        (("app.tar",), "registry repository or an OCI layout")):
        code, _, err = cli("rm", *args)
        assert code == 2 and words in err, (args, err)
    assert (root / "index.json").read_bytes() == index_before
    code, out, err = cli("rm", f"oci:{root}:a", "--all-tags", "--json")
    assert code == 0, err
    assert json.loads(out)["removed_tags"] == ["a", "b"]
    assert list((root / "blobs" / "sha256").iterdir()) == []


def test_layout_rm_waits_for_a_writer_and_keeps_its_blobs(tmp_path: Path) -> None:
    """A writer that has put its blobs but not yet its tag holds the writers lock:
    the removal waits for it and then keeps what it tagged."""
    from ociforge.stores.layoutgc import remove_layout_tag

    old, new = make_image(tmp_path), make_image(tmp_path)
    root = _layout_with(tmp_path, {"old": old})
    layout = Layout(root)
    blobs_written = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with layout.writing():
                layout.write_artifact(new)
                blobs_written.set()
                release.wait(10)
                from ociforge.model import walk

                layout.set_tag(new.descriptor(), "new", walk.descriptors(new))
        except BaseException as exc:  # pragma: no cover - shown by the assertion
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    assert blobs_written.wait(10)
    done: list[Any] = []
    remover = threading.Thread(target=lambda: done.append(remove_layout_tag(layout, "old")))
    remover.start()
    remover.join(0.5)
    assert remover.is_alive() and not done     # waiting for the writer
    release.set()
    thread.join(10)
    remover.join(10)
    assert not errors and done
    assert [d.annotations[REF_NAME] for d in layout.descriptors()] == ["new"]
    assert layout.read("new").digest == new.digest
    from ociforge.stores.validate import verify_artifact

    assert verify_artifact(layout.read("new")).ok


# -- pagination: a registry of our own -----------------------------------------------------

class PagingRegistry:
    """Serves /v2/ and a tag list of ``tags`` in pages of ``per_page``, linked by
    ``Link: <...>; rel="next"`` (``next_of`` may replace a page's link)."""

    def __init__(self, tags: list[str], per_page: int, host: str = "127.0.0.1"):
        self.tags, self.per_page = tags, per_page
        self.requests: list[str] = []
        self.next_of: dict[int, str] = {}
        owner = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.requests.append(self.path)
                parts = urlsplit(self.path)
                if parts.path == "/v2/":
                    return self._send(200, b"{}")
                if parts.path != "/v2/paged/app/tags/list":
                    return self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
                page = int(parse_qs(parts.query).get("page", ["0"])[0])
                start = page * owner.per_page
                chunk = owner.tags[start:start + owner.per_page]
                headers = {}
                link = owner.next_of.get(page)
                if link is None and start + owner.per_page < len(owner.tags):
                    link = f"/v2/paged/app/tags/list?page={page + 1}"
                if link:
                    headers["Link"] = f'<{link}>; rel="next"'
                body = json.dumps({"name": "paged/app", "tags": chunk}).encode()
                self._send(200, body, headers)

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None
                      ) -> None:
                self.reply(status, body, {"Content-Type": "application/json", **(headers or {})})

        self._server = LoopbackServer(Handler, host)
        self.host = self._server.host

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture
def paging() -> Any:
    servers: list[PagingRegistry] = []

    def start(tags: list[str], per_page: int, host: str = "127.0.0.1") -> PagingRegistry:
        server = PagingRegistry(tags, per_page, host)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_tags_follow_every_link_page(cli, paging) -> None:
    tags = [f"v{i:03d}" for i in range(25)]
    server = paging(tags, 4)
    code, out, err = cli("tags", f"{server.host}/paged/app:x")
    assert code == 0, err
    assert out.split() == tags
    pages = [p for p in server.requests if "tags/list" in p]
    assert len(pages) == 7


def test_tags_refuse_a_link_to_another_origin(cli, paging) -> None:
    server = paging([f"t{i}" for i in range(6)], 2)
    stranger = paging(["stolen"], 10, loopback_alias())
    server.next_of[1] = f"http://{stranger.host}/v2/paged/app/tags/list"
    code, out, err = cli("tags", f"{server.host}/paged/app:x", "--json")
    assert code == 1
    assert "refusing the Link" in err and "leads away" in err
    assert json.loads(out)["exit_code"] == 1
    assert stranger.requests == []       # never asked

    other_port = paging(["stolen"], 10)  # same host, another port: another origin too
    server.next_of[1] = f"http://{other_port.host}/v2/paged/app/tags/list"
    code, _, err = cli("tags", f"{server.host}/paged/app:x")
    assert code == 1 and other_port.requests == []


def test_tags_refuse_a_pagination_loop(cli, paging) -> None:
    server = paging([f"t{i}" for i in range(6)], 2)
    server.next_of[2] = "/v2/paged/app/tags/list?page=1"
    code, _, err = cli("tags", f"{server.host}/paged/app:x")
    assert code == 1 and "loop" in err
    assert len([p for p in server.requests if "tags/list" in p]) == 3


def test_rm_on_a_token_registry_asks_for_delete(cli, token_registry, tmp_path: Path) -> None:
    """Deleting needs the ``delete`` action in the token; listing and HEADs need pull."""
    import io
    import sys

    sys.stdin = io.StringIO(token_registry.password + "\n")
    try:
        code, _, err = cli("login", token_registry.host, "-u", token_registry.username,
                           "--password-stdin")
    finally:
        sys.stdin = sys.__stdin__
    assert code == 0, err
    repo = f"{token_registry.host}/manage/tok-{secrets.token_hex(3)}"
    _push(cli, tmp_path, make_image(tmp_path), f"{repo}:1")
    code, _out, err = cli("rm", f"{repo}:1", "--json")
    assert code == 0, err
    asked = {scope for request in token_registry.token_server.requests
             for scope in request.scopes}
    assert f"repository:{repo.split('/', 1)[1]}:delete" in asked
    assert cli("tags", f"{repo}:x")[1].split() == []
