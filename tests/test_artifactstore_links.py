"""Signing and referrers read layout blobs through the layout: a blob link is refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ociforge.stores.layout import Layout


def _signed_layout(tmp_path: Path, cli: Any) -> tuple[Path, str]:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_text("a\n")
    lay = tmp_path / "lay"
    assert cli("append", "scratch", "--layer", f"{tree}:/t", "-o", f"oci:{lay}:v1")[0] == 0
    assert cli("keygen", str(tmp_path / "k"), "--no-password")[0] == 0
    assert cli("sign", f"oci:{lay}:v1", "--key", str(tmp_path / "k.key"))[0] == 0
    sig_tag = next(t for t in Layout(lay).tags() if t.endswith(".sig"))
    return lay, sig_tag


def test_a_signature_blob_that_links_outside_is_refused(tmp_path: Path, cli: Any) -> None:
    lay, sig_tag = _signed_layout(tmp_path, cli)
    desc = Layout(lay).find(tag=sig_tag)
    # replace one signature layer blob with a link to an outside file of the same size
    sig_manifest = Layout(lay).read_document(desc)
    import json

    layer = json.loads(sig_manifest)["layers"][0]
    blob = lay / "blobs" / "sha256" / layer["digest"].split(":")[1]
    outside = tmp_path / "outside.json"
    outside.write_bytes(b"S" * layer["size"])
    blob.unlink()
    os.symlink(outside, blob)
    code, out, err = cli("verify-signature", f"oci:{lay}:v1", "--key", str(tmp_path / "k.pub"))
    assert code == 2, (code, err)
    assert "symlink" in err and "SSSS" not in out + err
    assert len(err.strip().splitlines()) == 1
