"""Secrets encrypted with ansible-vault in the env repo (issue 3, point 4)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from conftest import free_port, http_get, sh

SECRET = "s3cr3t-value-7f1c"
TOKEN = "token-9a8b7c-mounted"
HEALTH = "x-podops:\n  health: {timeout: 20, samples: 2, interval: 0.3}\n"


def encrypt(path: Path, password_file: Path) -> None:
    sh("ansible-vault", "encrypt", "--vault-password-file", str(password_file), str(path))
    assert path.read_text().startswith("$ANSIBLE_VAULT;")


def vault_repo(repo, port: int, password_file: Path) -> None:
    repo.write(
        "services/vaulted/compose.yaml",
        HEALTH + "services:\n  web:\n    image: localhost/podops-demo:1\n"
        '    command: ["sh", "-c", "trap \'exit 0\' TERM; echo \\"$$SECRET_VALUE $$(cat /conf/token)\\" > /www/index.html; httpd -f -p 8080 -h /www & wait"]\n'
        f'    ports: ["127.0.0.1:{port}:8080"]\n'
        "    env_file: [secret.env]\n"
        "    volumes: [./conf:/conf:ro]\n",
    )
    encrypt(repo.write("services/vaulted/secret.env", f"SECRET_VALUE={SECRET}\n"), password_file)
    encrypt(repo.write("services/vaulted/conf/token", TOKEN), password_file)


def files_under(*roots: Path):
    for root in roots:
        if root.is_file():
            yield root
        for base, _dirs, names in os.walk(root):
            for name in names:
                path = Path(base) / name
                if path.is_file() and not path.is_symlink():
                    yield path


def test_vault_files_are_decrypted_for_the_deploy_only(host, repo, tmp_path):
    password = tmp_path / "vault-pass"
    password.write_text("correct horse battery staple\n")
    port, other_port = free_port(), free_port()
    vault_repo(repo, port, password)
    repo.add_web("plain", other_port, "plain")
    repo.commit()

    run = host.reconcile(repo, "--vault-password-file", str(password), "-vvv")
    assert run.rc == 0, run
    assert http_get(port).strip() == f"{SECRET} {TOKEN}"
    assert run.report["services"]["vaulted"]["action"] == "deployed"
    ids = host.ids("vaulted")

    # the mounted secret lives in a root-only runtime folder; the env file is gone once podman read it
    (container,) = host.containers("vaulted")
    mounts = sh("podman", "inspect", "--format", "{{range .Mounts}}{{.Source}}\n{{end}}", container["Id"]).stdout.split()
    (conf,) = [m for m in mounts if m.endswith("/conf")]
    runtime_service = Path(conf).parent
    assert (Path(conf) / "token").read_text() == TOKEN
    assert stat.S_IMODE((Path(conf) / "token").stat().st_mode) == 0o600
    assert not (runtime_service / "secret.env").exists(), "decrypted env files are removed after the deploy"
    runtime_base = runtime_service.parents[3]
    assert stat.S_IMODE(runtime_base.stat().st_mode) == 0o700

    # re-encrypting the same content redeploys nothing
    for rel, content in (("secret.env", f"SECRET_VALUE={SECRET}\n"), ("conf/token", TOKEN)):
        encrypt(repo.write(f"services/vaulted/{rel}", content), password)
    repo.commit("re-encrypt")
    again = host.reconcile(repo, "--vault-password-file", str(password))
    assert again.rc == 0 and not again.changed, again
    assert host.ids("vaulted") == ids

    # no plaintext anywhere in the output (-vvv included) or in what podops wrote outside the runtime folder
    written = [p for p in files_under(host.state_dir) if runtime_base not in p.parents]
    for text in (SECRET, TOKEN):
        assert text not in run.stdout + run.stderr + again.stdout + again.stderr
        for path in written:
            assert text not in path.read_text(errors="replace"), path


def test_wrong_or_missing_vault_password_fails_that_service_only(host, repo, tmp_path):
    password = tmp_path / "vault-pass"
    password.write_text("the right one\n")
    wrong = tmp_path / "wrong-pass"
    wrong.write_text("not it\n")
    port, other_port = free_port(), free_port()
    vault_repo(repo, port, password)
    repo.add_web("plain", other_port, "plain v1")
    repo.commit()
    assert host.reconcile(repo, "--vault-password-file", str(password)).rc == 0
    ids = host.ids("vaulted")

    encrypt(repo.write("services/vaulted/secret.env", "SECRET_VALUE=rotated\n"), password)
    repo.write("services/plain/site/index.html", "plain v2")
    repo.commit("rotate")
    bad = host.reconcile(repo, "--vault-password-file", str(wrong))
    assert bad.rc != 0
    entry = bad.report["services"]["vaulted"]
    assert entry["action"] == "failed"
    assert "cannot decrypt conf/token, secret.env:" in entry["error"] and "wrong password" in entry["error"]
    assert "rotated" not in bad.stdout + bad.stderr
    assert host.ids("vaulted") == ids, "the running version is left alone"
    assert http_get(port).strip() == f"{SECRET} {TOKEN}"
    assert bad.report["services"]["plain"]["action"] == "deployed"

    missing = host.reconcile(repo)
    assert missing.rc != 0
    assert "no vault password was given" in missing.report["services"]["vaulted"]["error"]
    assert host.ids("vaulted") == ids

    good = host.reconcile(repo, "--vault-password-file", str(password))
    assert good.rc == 0, good
    assert http_get(port).strip() == f"rotated {TOKEN}"
