"""The leaks data scientists actually make, on a realistic project, and the sweep.

Every secret is generated at random in this run (secretgen.py), planted where people
put them (notebook outputs, stale checkpoints, histories, settings files, package-
manager configs, an env_file, a base image's home folder), and the project is
exported to a layout, a docker archive and a registry with a report and an SBOM.
Then every output is decompressed -- every blob, every tar member, the report, the
SBOM, stdout and stderr -- and searched for each planted value: none may be there.
Files that only mention token formats must ship, so the sweep cannot pass by
leaving everything out.
"""

from __future__ import annotations

import base64
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import secretgen as sg
from leaksweep import sweep

from ociforge.layers.build import BuildSettings, LayerSource, build_layer
from ociforge.model.mutate import ConfigChanges, append_layers, configure, scratch
from ociforge.model.platform import Platform
from ociforge.options import Options
from ociforge.stores.locations import parse_location

PLATFORM = Platform.parse("linux/amd64")


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


def plant(tmp: Path) -> tuple[Path, dict[str, str], dict[str, str], list[str]]:
    """(app folder, {what: secret value}, {image path: rule}, [image paths that ship])."""
    s: dict[str, str] = {kind: sg.TOKENS[kind]() for kind in sg.TOKENS}
    aws_id, aws_secret = sg.aws_pair()
    s.update({"aws key id": aws_id, "aws secret": aws_secret, "db password": sg.password(),
              "pip password": sg.password(), "rprofile password": sg.password(),
              "conda token": sg.rand(32, sg.ALNUM + "-"), "yarn token": sg.rand(36),
              "dsn password": sg.password(), "sqlserver password": sg.password(),
              "azure key": base64.b64encode(os.urandom(64)).decode(),
              "sentry key": os.urandom(16).hex(),
              "openai in checkpoint": sg.TOKENS["openai-api-key"](),
              "history token": sg.TOKENS["github-token"](),
              "renviron pat": sg.TOKENS["github-token"](),
              "streamlit key": sg.rand(40), "client secret": "GOCSPX-" + sg.rand(28),
              "base history token": sg.TOKENS["gitlab-token"](),
              "base notebook token": sg.TOKENS["slack-token"](),
              "base config token": sg.TOKENS["huggingface-token"](),
              "env token": sg.TOKENS["github-token"](),
              "yarn v1 token": sg.rand(36),
              "late csv token": sg.TOKENS["huggingface-token"]()})
    key_pem, sa_pem = sg.pem_private_key(), sg.pem_private_key()
    s["deploy key"] = key_pem.splitlines()[1]
    s["service-account key"] = sa_pem.splitlines()[1]
    image = base64.b64encode(os.urandom(200_000)).decode()

    app = tmp / "app"
    p = app / "project"
    rules: dict[str, str] = {}
    ships: list[str] = []

    def leak(rel: str, content: str, rule: str) -> None:
        _write(p / rel, content)
        rules[f"/files/{rel}"] = rule

    def keep(rel: str, content: str) -> None:
        _write(p / rel, content)
        ships.append(f"/files/{rel}")

    leak("analysis.ipynb", sg.notebook([
        ("import pandas as pd\ndf = pd.read_csv('data/results.csv')\n", "   a  b\n0  1  2\n"),
        ("print(os.environ['GITHUB_TOKEN'])\n", s["github-token"] + "\n"),
        ("from huggingface_hub import login\nlogin()\n", f"token: {s['huggingface-token']}\n"),
    ]).replace('"outputs": [', '"outputs": [{"data": {"image/png": "' + image
               + '"}, "output_type": "display_data"}, ', 1), "github-token")
    leak(".ipynb_checkpoints/analysis-checkpoint.ipynb",
         sg.notebook([("client = OpenAI()\n", s["openai in checkpoint"] + "\n")]),
         "jupyter-checkpoints")
    rules["/files/.ipynb_checkpoints"] = rules.pop(
        "/files/.ipynb_checkpoints/analysis-checkpoint.ipynb")
    leak("src/settings.py", f'AWS_ACCESS_KEY_ID = "{aws_id}"\n'
                            f'AWS_SECRET_ACCESS_KEY = "{aws_secret}"\nREGION = "eu-west-1"\n',
         "aws-credentials")
    leak("src/db.py", "from sqlalchemy import create_engine\nengine = create_engine(\n"
                      f"    'postgresql://analyst:{s['db password']}@warehouse.internal/prod')\n",
         "credential-url")
    leak("src/alerts.py", f'WEBHOOK = "{s["slack-webhook"]}"\n', "slack-webhook")
    leak("src/billing.py", f'stripe.api_key = "{s["stripe-key"]}"\n', "stripe-key")
    leak("logs/api.log", f"200 GET /me Authorization: Bearer {s['jwt']}\n", "jwt")
    leak("notes/deploy.txt", "How to deploy: copy this key to the server.\n" + key_pem,
         "private-key-in-text")
    leak("keys/gcp-sa.json", sg.service_account(sa_pem), "service-account-key")
    leak("client_secret_1234.apps.googleusercontent.com.json",
         sg.oauth_client(s["client secret"]), "oauth-client-secret")
    leak("src/misc.js", f"const gl = '{s['gitlab-token']}';\nconst g = "
                        f"'{s['google-api-key']}';\nconst n = '{s['npm-token']}';\n"
                        f"const pat = '{s['github-token-fine']}';\n"
                        f"const sl = '{s['slack-token']}';\n", "github-token")
    leak(".streamlit/secrets.toml", f'api_key = "{s["streamlit key"]}"\n', "streamlit-secrets")
    leak(".python_history", f"import os\nos.environ['T'] = '{s['history token']}'\n",
         "shell-history")
    leak(".Rhistory", "library(DBI)\ncon <- dbConnect(RPostgres::Postgres(), password = "
                      f"'{s['db password']}')\n", "shell-history")
    leak(".Renviron", f"GITHUB_PAT={s['renviron pat']}\n", "r-environ")
    leak("pip.conf", f"[global]\nindex-url = https://ds:{s['pip password']}@pypi.acme.io/simple\n",
         "package-manager-credentials")
    leak(".condarc", f"channels:\n  - https://conda.anaconda.org/t/{s['conda token']}/acme\n",
         "package-manager-credentials")
    leak(".yarnrc.yml", f'npmAuthToken: "{s["yarn token"]}"\n', "package-manager-credentials")
    leak(".yarnrc", 'registry "https://registry.acme.io/"\n'
                    f'"//registry.acme.io/:_authToken" "{s["yarn v1 token"]}"\n',
         "package-manager-credentials")
    # a token printed into a data export ~5 MiB down (past the first window of the scan)
    rows = "".join(f"2024-05-01T10:{i % 60:02d}:00Z,station-{i % 97},{i * 7 % 100}\n"
                   for i in range(4000))
    leak("data/events.csv", "taken,station,value\n" + rows * (5 * 2**20 // len(rows))
         + f"2024-05-01T11:00:00Z,debug,{s['late csv token']}\n" + rows,
         "huggingface-token")
    leak(".Rprofile", 'options(repos = c(ACME = "https://r:'
                      f'{s["rprofile password"]}@cran.acme.io"))\n', "package-manager-credentials")
    keep("README.md", "# Churn model\nTokens look like `ghp_` followed by 36 characters; "
                      "connect with postgresql://user:password@localhost/db.\n"
                      "GITHUB_TOKEN=ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\n")
    keep("notebooks/explore.ipynb", sg.notebook([("# GitLab tokens start with glpat-\n", "ok\n"),
                                                 ("from huggingface_hub import hf_hub_download\n",
                                                  "")]))
    keep("config/pip.conf", "[global]\nindex-url = https://pypi.org/simple\ntimeout = 60\n")
    keep(".streamlit/config.toml", "[server]\nheadless = true\n")
    keep("data/results.csv", "id,score\n" + "".join(f"{i},{i * 7 % 100}\n" for i in range(500)))
    keep("src/model.py", "import torch\n\ndef predict(x):\n    return x\n")

    _write(app / "runtime.env",
           "MODEL_ENDPOINT=https://api.acme.io/v1\nLOG_LEVEL=info\n"
           f"WAREHOUSE=host=wh.internal port=5432 dbname=dw user=etl password={s['dsn password']}\n"
           f"REPORTING_DB=Server=tcp:sql.acme.net,1433;Database=rep;User ID=etl;"
           f"Password={s['sqlserver password']};\n"
           f"BLOBS=DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={s['azure key']};"
           "EndpointSuffix=core.windows.net\n"
           f"ERRORS=https://{s['sentry key']}@o1234.ingest.sentry.io/567\n"
           f"HELPER_URL_SUFFIX={s['env token']}\n")
    _write(app / "run" / "start.sh", "#!/bin/sh\nexec python -m churn\n")
    return app, s, rules, ships


def write_base(tmp: Path, s: dict[str, str]) -> str:
    """A base image whose home folder and /etc hold leaks too."""
    tree = tmp / "base-tree"
    _write(tree / "root" / ".bash_history", f"export GL={s['base history token']}\nls\n")
    _write(tree / "home" / "jovyan" / "work" / "old.ipynb",
           sg.notebook([("post()\n", f"using {s['base notebook token']}\n")]))
    _write(tree / "etc" / "acme" / "hub.conf", f"[hub]\ntoken = {s['base config token']}\n")
    _write(tree / "etc" / "acme" / "app.conf", "[app]\nworkers = 4\n")
    layer = build_layer([LayerSource(tree, "/")], BuildSettings(epoch=1_700_000_000)).layer
    image = configure(append_layers(scratch(PLATFORM), [layer], epoch=1_700_000_000),
                      ConfigChanges(env={"PATH": "/usr/bin:/bin"}))
    location = f"oci:{tmp / 'base'}:1"
    parse_location(location).write(image, Options(platform=PLATFORM))
    return location


def test_a_data_science_project_leaks_nothing(cli: Any, registry: Any, tmp_path: Path) -> None:
    app, secrets, rules, ships = plant(tmp_path)
    base = write_base(tmp_path, secrets)
    (app / "ociforge.toml").write_text(
        f'[app]\nname = "acme/churn"\nbase = "{base}"\nplatform = "linux/amd64"\n'
        '[config]\nenv_file = "runtime.env"\ncmd = ["/app/start.sh"]\n'
        '[[layers]]\nsrc = "run"\ndest = "/app"\n'
        '[files]\nsrc = "project"\n')
    out = tmp_path / "out"
    out.mkdir()
    remote = f"{registry.host}/acme/churn:1"
    code, stdout, stderr = cli("export", app, "--with-files", "-o", f"oci:{out / 'layout'}:1",
                               "-o", remote, "--report", out / "report.json",
                               "--sbom", out / "sbom.json", "--attach-report", "--attach-sbom",
                               "--json")
    assert code == 0, stderr
    code, tar_out, tar_err = cli("export", app, "--with-files", "-o", out / "churn.tar", "-v")
    assert code == 0, tar_err
    code, pulled_out, pulled_err = cli("copy", remote, f"oci:{out / 'pulled'}:1")
    assert code == 0, pulled_err

    # positive controls: each leak left out by the rule that names it; what ships, ships
    report = json.loads((out / "report.json").read_text())
    left = {f["path"]: f["rule"] for f in report["left_out_files"]}
    for path, rule in rules.items():
        assert left.get(path) == rule, (path, left.get(path), rule)
    assert left["/root/.bash_history"] == "shell-history"
    assert left["/home/jovyan/work/old.ipynb"] == "slack-token"
    assert left["/etc/acme/hub.conf"] == "huggingface-token"
    dropped = {d["name"]: d["rule"] for d in report["dropped_env"]}
    assert dropped == {"WAREHOUSE": "credential-in-dsn", "REPORTING_DB": "credential-in-dsn",
                       "BLOBS": "credential-in-dsn", "ERRORS": "sentry-dsn",
                       "HELPER_URL_SUFFIX": "secret-token-value"}
    for rule in set(rules.values()) | set(dropped.values()):
        assert report["rules"].get(rule), rule
    files = {m: d for m, d in _members(out / "layout") if m.startswith("files/")}
    for path in ships:
        assert path.lstrip("/") in files, path
    assert "etc/acme/app.conf" in dict(_members(out / "layout"))
    config = json.loads(_config(out / "layout"))
    assert "MODEL_ENDPOINT=https://api.acme.io/v1" in config["config"]["Env"]

    # the sweep: every output, every blob decompressed, every member opened
    written = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    printed = {"stdout": stdout.encode(), "stderr": stderr.encode(),
               "tar export output": (tar_out + tar_err).encode(),
               "copy output": (pulled_out + pulled_err).encode()}
    leaks = sweep({**written, **printed}, secrets)
    assert not leaks, leaks
    # ...and the sweep does look inside: what ships is found in every copy of the image
    shipped = sweep(written, {"kept file": "return x\n", "kept variable": "api.acme.io/v1"})
    for where in ("layout/blobs", "churn.tar", "pulled/blobs"):
        assert any(f"kept file in {where}" in hit for hit in shipped), (where, shipped)
        assert any(f"kept variable in {where}" in hit for hit in shipped), (where, shipped)


def _members(layout: Path) -> Iterator[tuple[str, bytes]]:
    from ociforge.layers.decompress import open_decompressed

    image = parse_location(f"oci:{layout}:1").read(Options(platform=PLATFORM))
    for layer in image.layers:  # type: ignore[union-attr]
        with open_decompressed(layer.open()) as plain, \
                tarfile.open(fileobj=plain, mode="r|") as tar:  # type: ignore[arg-type]
            for member in tar:
                handle = tar.extractfile(member) if member.isfile() else None
                yield member.name.rstrip("/"), handle.read() if handle else b""


def _config(layout: Path) -> bytes:
    image = parse_location(f"oci:{layout}:1").read(Options(platform=PLATFORM))
    return image.config_bytes  # type: ignore[union-attr]


def test_a_text_file_past_the_scan_cap_is_named_in_the_report(cli: Any, tmp_path: Path) -> None:
    """Tokens are looked for in the first 64 MiB of a text file: a longer one is named in
    the report's warnings and the summary, on a build and on a cache hit alike."""
    from ociforge.app.tokens import TEXT_SCAN_CAP

    app = tmp_path / "app"
    line = "2024-05-01T10:00:00Z INFO request served in 12 ms\n"
    _write(app / "project" / "logs" / "big.log", line * (TEXT_SCAN_CAP // len(line) + 2))
    _write(app / "project" / "logs" / "small.log", line * 1000)
    _write(app / "ociforge.toml", '[app]\nname = "logs"\n[files]\nsrc = "project"\n')
    expected = (f"/files/logs/big.log was read for tokens up to {TEXT_SCAN_CAP >> 20} MiB "
                "only: the rest of it was not scanned")
    for run in ("built", "reused"):
        report = tmp_path / f"{run}.json"
        code, _, err = cli("export", app, "--with-files", "-o", f"oci:{tmp_path / 'out'}:{run}",
                           "--report", report, "--cache-dir", tmp_path / "cache",
                           "--progress", "plain")
        assert code == 0, err
        assert ("reused" in err) == (run == "reused"), err
        warnings = json.loads(report.read_text())["warnings"]
        assert [w for w in warnings if "read for tokens" in w] == [
            expected + " (leave it out, or split it, if it may hold secrets)"], warnings
        assert f"warning  {expected}" in err
