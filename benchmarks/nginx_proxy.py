"""A real nginx reverse proxy as a plain process, for the blue-green benchmark and tests.

Debian's nginx-light (installed by `make setup`), its own config, pid file and logs in ``base``; the upstream
is the file ``<base>/<name>.upstream`` that podops renders for the active slot, and ``reload_command`` is
what podops runs after writing it (a graceful ``nginx -s reload``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

CONF = """\
user root;
worker_processes 1;
pid {base}/nginx.pid;
error_log {base}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {base}/tmp-body;
  proxy_temp_path {base}/tmp-proxy;
  fastcgi_temp_path {base}/tmp-fcgi;
  uwsgi_temp_path {base}/tmp-uwsgi;
  scgi_temp_path {base}/tmp-scgi;
  upstream {name} {{ include {upstream}; }}
  server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://{name}; }} }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


class NginxProxy:
    """nginx on 127.0.0.1:``port`` proxying to the upstream file, first pointed at ``first_upstream``."""

    def __init__(self, base: Path, port: int, first_upstream: int, name: str = "app"):
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is missing: run `make setup` (it installs nginx-light)")
        self.binary = binary
        self.base = base
        self.port = port
        self.upstream = base / f"{name}.upstream"
        self.conf = base / "nginx.conf"
        base.mkdir(parents=True, exist_ok=True)
        self.upstream.write_text(f"server 127.0.0.1:{first_upstream};\n")
        self.conf.write_text(CONF.format(base=base, port=port, name=name, upstream=self.upstream))
        self.proc = subprocess.Popen([binary, "-c", str(self.conf), "-p", str(base), "-g", "daemon off;"], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not (base / "nginx.pid").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                error = self.proc.stderr.read().decode() if self.proc.stderr and self.proc.poll() is not None else "no pid file after 10 s"
                self.stop()
                raise RuntimeError(f"nginx did not start: {error}")
            time.sleep(0.05)

    @property
    def reload_command(self) -> list[str]:
        return [self.binary, "-c", str(self.conf), "-p", str(self.base), "-s", "reload"]

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
