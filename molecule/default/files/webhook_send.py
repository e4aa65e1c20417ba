"""Molecule helper, run inside the test server: a git host that keeps sending signed pushes to the webhook
shim during its self-update. Like a reverse proxy that follows GET /health, it sends each delivery to the
slot whose /health answers 200 and retries on the other slot while one answers 503 (draining).

usage: webhook_send.py SECRET_FILE SECONDS OUT_JSON
"""

import hashlib
import hmac
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

PORTS = {"a": 9300, "b": 9301}


def healthy():
    for slot, port in PORTS.items():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
                if response.status == 200:
                    return slot
        except (urllib.error.URLError, OSError):
            pass
    return None


def send(secret, delivery, head):
    body = json.dumps({"ref": "refs/heads/main", "after": head, "repository": {"full_name": "podops/env"}}).encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature}
    for attempt in range(600):
        slot = healthy()
        if slot:
            request = urllib.request.Request(f"http://127.0.0.1:{PORTS[slot]}/hooks/github", data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - a fixed http URL
                    return {"delivery": delivery, "slot": slot, "status": response.status, "retries": attempt}
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    return {"delivery": delivery, "slot": slot, "status": exc.code, "retries": attempt}
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.1)
    return {"delivery": delivery, "slot": None, "status": None, "retries": 600}


def main():
    with open(sys.argv[1], "rb") as handle:
        secret = handle.read().strip()
    end = time.time() + float(sys.argv[2])
    results = []
    while time.time() < end:
        results.append(send(secret, str(uuid.uuid4()), "1" * 40))
        with open(sys.argv[3] + ".tmp", "w") as handle:
            json.dump(results, handle)
        time.sleep(0.5)
    with open(sys.argv[3], "w") as handle:
        json.dump(results, handle)


if __name__ == "__main__":
    main()
