"""Molecule helper, run inside the test server: did every delivery the sender sent lead to a run?

usage: webhook_check.py SENT_JSON   prints JSON: sent, answered (status -> count), slots, deliveries found in
runs, missing ones, the statuses of those runs, and whether a run is still queued or running.
"""

import json
import sys
import urllib.error
import urllib.request


def get(path):
    for port in (9300, 9301):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                return json.load(response)
        except (urllib.error.URLError, OSError):
            continue
    raise SystemExit("no shim answers on 9300 or 9301")


def main():
    with open(sys.argv[1]) as handle:
        sent = json.load(handle)
    # The status first: a run that ends between the two reads then counts as busy (its status in the list
    # below is still "running"), never as a finished run with an unfinished status.
    status = get("/api/status")
    unfinished = False
    found = {}
    errors = {}  # what a failed run says, for the test's message
    for run in get("/api/runs?limit=500")["runs"]:
        detail = get(f"/api/runs/{run['id']}")
        for delivery in detail["delivery_ids"]:
            found[delivery] = run["status"]
        unfinished = unfinished or run["status"] in ("queued", "running", "released")
        if run["status"] == "failed":
            errors[run["id"]] = [detail.get("error"), (detail.get("log") or "")[-1500:]]
    ids = [item["delivery"] for item in sent]
    answered = {}
    for item in sent:
        answered[str(item["status"])] = answered.get(str(item["status"]), 0) + 1
    print(
        json.dumps(
            {
                "sent": len(ids),
                "answered": answered,
                "slots": sorted({item["slot"] for item in sent if item["slot"]}),
                "in_runs": sum(1 for delivery in ids if delivery in found),
                "missing": sorted(delivery for delivery in ids if delivery not in found),
                "run_statuses": sorted({found[delivery] for delivery in ids if delivery in found}),
                "busy": bool(status.get("running") or status.get("queued") or unfinished),
                "failed_runs": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
