# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_diff and _redact: what --diff and a failure log show, and that no secret value is among it."""

from __future__ import annotations

from ansible_collections.podops.gitops.plugins.module_utils._compose import load_project
from ansible_collections.podops.gitops.plugins.module_utils._diff import service_diff
from ansible_collections.podops.gitops.plugins.module_utils._digest import Secrets
from ansible_collections.podops.gitops.plugins.module_utils._plan import ServiceSpec
from ansible_collections.podops.gitops.plugins.module_utils._redact import MASK, mask_env_text, redact, secret_values

COMPOSE = """\
services:
  web:
    image: localhost/web:1
    ports: ["127.0.0.1:8080:80"]
    env_file: [app.env]
secrets:
  key: {file: ./key.pem}
"""


def spec_in(tmp_path, write_tree, files):
    write_tree(tmp_path / "repo", {"services/web/compose.yaml": COMPOSE, **{f"services/web/{k}": v for k, v in files.items()}})
    service_dir = str(tmp_path / "repo" / "services" / "web")
    return ServiceSpec("web", "services/web", service_dir, "web", project=load_project(service_dir, environ={}))


def snapshot(tmp_path, write_tree, files):
    write_tree(tmp_path / "snap", {f"services/web/{k}": v for k, v in files.items()})
    return str(tmp_path / "snap" / "services" / "web")


def test_changed_files_show_as_unified_diffs_with_secrets_masked(tmp_path, write_tree):
    old = {"app.env": "TOKEN=old-token-123\n", "key.pem": "old-private-key\n", "conf/site.conf": "listen 80;\ntoken old-token-123\n", ".env": "A=1\n"}
    new = {"app.env": "TOKEN=new-token-456\nEXTRA=more-secret\n", "key.pem": "new-private-key\n", "conf/site.conf": "listen 81;\ntoken new-token-456\n"}
    new[".env"] = "A=1\n"
    new["logo.png"] = "\0PNG"
    spec = spec_in(tmp_path, write_tree, new)
    snap = snapshot(tmp_path, write_tree, dict(old, **{"logo.png": "\0OLD"}))

    lines = service_diff(spec, ["app.env", "conf/site.conf", "key.pem", "logo.png"], snap, Secrets())
    text = "\n".join(lines)

    assert "    --- a/app.env" in lines and "    +EXTRA=" + MASK in lines
    assert "    -listen 80;" in lines and "    +listen 81;" in lines
    assert "    +token " + MASK in lines, "a secret value of the service is masked in any file"
    assert "    key.pem: secret file changed (content not shown)" in lines
    assert "    Binary file logo.png changed" in lines
    for secret in ("new-token-456", "more-secret", "new-private-key", "old-private-key"):
        assert secret not in text


def test_a_new_service_shows_its_images_and_ports(tmp_path, write_tree):
    spec = spec_in(tmp_path, write_tree, {"app.env": "TOKEN=x1234\n", "key.pem": "k"})
    assert service_diff(spec, ["compose.yaml"], None) == ["    images: localhost/web:1", "    published ports: 127.0.0.1:8080"]


def test_secret_values_and_masking(tmp_path, write_tree):
    spec = spec_in(tmp_path, write_tree, {"app.env": "TOKEN=tok-abcdef\nPORT=80\n", "key.pem": "pem-secret\n"})
    values = secret_values(spec.project, Secrets({str(tmp_path / "vaulted"): "VAULTED=vault-plain\n"}))
    assert "tok-abcdef" in values and "pem-secret" in values and "vault-plain" in values
    assert "80" not in values, "too short to mask"
    assert redact("using tok-abcdef and vault-plain on 80", values) == f"using {MASK} and {MASK} on 80"
    assert mask_env_text("# comment\nA=1\nexport B='x y'\n\n") == f"# comment\nA={MASK}\nexport B={MASK}\n\n"
