# Copyright (c) podops.gitops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""podops-pull: the one command every trigger runs on a podops host (timer, cron, webhook shim, bootstrap).

Installed by the role podops.gitops.podman_host as ``<install dir>/lib/podops_pull.py`` and started by the
launcher ``<install dir>/bin/podops-pull`` with the podops venv's Python. What it does, in order:

1. takes the host lock (flock on ``<state dir>/reconcile.lock``, the file the compose_deploy module locks),
   waiting up to ``lock_timeout`` seconds, and exports ``PODOPS_LOCK_HELD=1`` to what it runs;
2. fetches the env repo like ansible-pull: shallow fetch of the wanted branch/tag/commit, optional
   ``git verify-commit`` *before* the checkout moves, then a hard reset (untracked files such as the
   gitignored ``secrets/`` stay);
3. runs the env repo's ``local.yml`` (or ``podops.gitops.reconcile`` when the repo has none) with
   ansible-playbook on localhost, passing every other argument through; ``-e podops_service=NAME`` (a
   redeploy of one service with fresh images) runs the very same playbook, so it has exactly the settings of
   the reconcile (``local.yml``'s, the env repo's ``group_vars/all.yml``). Every run reconciles: failed services are retried on
   every tick, not only when a new commit arrived (no ansible-pull ``--only-if-changed``);
4. or, instead of 3, takes the *fast lane* when only files under the services folder changed since the last
   full playbook run that succeeded (and that run is younger than ``fast_lane_max_age`` seconds, the
   collection and the arguments are the same, the repo has no ansible-vault files): the same reconcile
   engine, run in this process with the options that playbook run used - no ``ansible-playbook`` start-up.
   Each run logs which path it took and why (the rules: ``plugins/module_utils/_lane.py``).

Usage: podops-pull [--config FILE] [--jitter SECONDS] [ansible-playbook arguments ...]
Exit status: 0 ok, 1 error before the playbook (message on stderr), 75 the host lock is busy,
otherwise the status of ansible-playbook. No shell is involved anywhere: every command is an argv list.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import typing as t

DEFAULT_CONFIG = "/opt/podops/etc/pull.json"
EXIT_ERROR = 1
EXIT_BUSY = 75
SSH_URL_RE = re.compile(r"^(ssh://|git\+ssh://|ssh\+git://|[\w.-]+@[\w.-]+:)")


USAGE = """\
usage: podops-pull [--config FILE] [--jitter SECONDS] [ansible-playbook arguments ...]

Fetch the env repo and reconcile this host under the host lock (what the timer, cron and the webhook shim run).

  --config FILE       podops-pull's settings (default /opt/podops/etc/pull.json, written by podops.gitops.bootstrap)
  --jitter SECONDS    wait a random time up to SECONDS first
  -e podops_service=NAME
                      redeploy one service with fresh images, with the env repo's settings (local.yml)
  -e podops_trigger=cli|timer|webhook|laptop, -e podops_run_id=ID
                      recorded in the run report (<state dir>/runs/<run id>.json)
  -h, --help          print this help and exit (nothing is fetched or run)

Any other argument goes to ansible-playbook unchanged (for example --check --diff).
Exit status: 0 ok, 1 error before the playbook, 75 the host lock is busy, else ansible-playbook's."""


def wants_help(argv: list[str]) -> bool:
    """-h/--help among podops-pull's own options or as the only argument: print the help, touch nothing."""
    return any(arg in ("-h", "--help") for arg in argv)


class PullError(Exception):
    """A failure with a message that says what is wrong and how to fix it."""


def log(message: str) -> None:
    print(f"podops-pull: {message}", flush=True)


def load_config(path: str) -> dict[str, t.Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except FileNotFoundError:
        raise PullError(f"config file {path} does not exist; run the podops.gitops.bootstrap playbook (role podman_host) on this host") from None
    except (OSError, ValueError) as exc:
        raise PullError(f"cannot read the config file {path}: {exc}; run the podops.gitops.bootstrap playbook again") from None
    missing = [key for key in ("repo_url", "repo_version", "repo_dir", "state_dir", "ansible_playbook", "python") if not config.get(key)]
    if missing:
        raise PullError(f"config file {path} lacks {', '.join(missing)}; run the podops.gitops.bootstrap playbook with -e podops_repo_url=...")
    return config


def split_args(argv: list[str]) -> tuple[str, float, list[str]]:
    """Our own leading options; everything after them goes to ansible-playbook unchanged."""
    config, jitter = DEFAULT_CONFIG, 0.0
    rest = list(argv)
    while rest and rest[0] in ("--config", "--jitter"):
        if len(rest) < 2:
            raise PullError(f"{rest[0]} needs a value")
        option, value = rest[0], rest[1]
        rest = rest[2:]
        if option == "--config":
            config = value
        else:
            try:
                jitter = float(value)
            except ValueError:
                raise PullError(f"--jitter wants seconds, not {value!r}") from None
    return config, jitter, rest


def extra_vars(args: list[str]) -> dict[str, str]:
    """key=value pairs given with -e/--extra-vars (other forms, such as @file or JSON, are passed on as they are)."""
    found: dict[str, str] = {}
    values: list[str] = []
    for index, arg in enumerate(args):
        if arg in ("-e", "--extra-vars") and index + 1 < len(args):
            values.append(args[index + 1])
        elif arg.startswith("--extra-vars="):
            values.append(arg.split("=", 1)[1])
        elif arg.startswith("-e") and len(arg) > 2 and not arg.startswith("--"):
            values.append(arg[2:])
    for value in values:
        if value.startswith(("@", "{")):
            continue
        for item in shlex.split(value):
            if "=" in item:
                key, val = item.split("=", 1)
                found[key] = val
    return found


# Seconds a git command may take (a first fetch of a large env repo over a slow link takes minutes); one
# that takes longer is ended with its process group (ssh, git-remote-https) and fails the run: a hanging
# fetch must not hold the host lock for good.
GIT_TIMEOUT = 600.0


class Git:
    """git as argv lists, with the deploy key and the pinned known_hosts when the config has them."""

    def __init__(self, config: dict[str, t.Any]):
        self.config = config
        self.url = config["repo_url"]
        self.env = dict(os.environ)
        self.env["GIT_TERMINAL_PROMPT"] = "0"
        self.env["LC_ALL"] = "C"
        key = config.get("ssh_key") or ""
        known_hosts = config.get("ssh_known_hosts") or ""
        if SSH_URL_RE.match(self.url):
            if key and not os.path.isfile(key):
                raise PullError(
                    f"the deploy key {key} is missing on this host; run the podops.gitops.bootstrap playbook again with "
                    "podops_deploy_key (from ansible-vault), or put the private key there (mode 0600)"
                )
            ssh = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
            if key:
                ssh += ["-i", key, "-o", "IdentitiesOnly=yes"]
            if known_hosts:
                ssh += ["-o", f"UserKnownHostsFile={known_hosts}"]
            # git runs GIT_SSH_COMMAND itself; every word here is quoted and comes from the role's config
            self.env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        if config.get("gnupg_home"):
            self.env["GNUPGHOME"] = config["gnupg_home"]

    def run(self, *args: str, cwd: str | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
        timeout = timeout or float(self.config.get("git_timeout") or GIT_TIMEOUT)
        argv = ["git", *args]
        proc = subprocess.Popen(
            argv, cwd=cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                try:
                    proc.wait(timeout=5)
                    break
                except subprocess.TimeoutExpired:
                    continue
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            proc.wait()
            verb = next((arg for arg in args if not arg.startswith("-") and arg not in (cwd or "", self.config.get("repo_dir"))), "")
            raise PullError(f"'git {verb}' timed out after {timeout:g}s; its processes were ended and nothing was deployed") from None
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def fetch_error(self, stderr: str) -> str:
        version = self.config["repo_version"]
        text = stderr.strip()
        # git's whole message: the first lines ("fatal: unable to access ...") say why, the last often only "exiting".
        last = " / ".join(line.strip() for line in text.splitlines() if line.strip()) or "no output"
        if "couldn't find remote ref" in text or "not our ref" in text or "unadvertised object" in text:
            heads = self.run("ls-remote", "--heads", "--tags", self.url)
            names = sorted({line.split("\t", 1)[1].split("/", 2)[-1] for line in heads.stdout.splitlines() if "\t" in line})
            there = f"; it has: {', '.join(names[:20])}" if names else ""
            return f"the env repo {self.url} has no branch, tag or commit {version!r}{there}. Set podops_repo_version (bootstrap -e podops_repo_version=...)"
        if "Host key verification failed" in text or "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
            return (
                f"the git server's host key is not the one pinned in {self.config.get('ssh_known_hosts') or 'known_hosts'} ({last}). "
                "Set podops_repo_known_hosts to the server's key lines (ssh-keyscan output you have checked)"
            )
        if "Permission denied" in text or "publickey" in text:
            key = self.config.get("ssh_key") or "none configured"
            return f"the git server refused the deploy key ({key}) for {self.url}: {last}. Add the key's public half as a deploy key, or set podops_deploy_key"
        return f"cannot fetch the env repo {self.url}: {last}. Check podops_repo_url and that this host can reach it"


def sync_repo(config: dict[str, t.Any]) -> str:
    """Fetch and hard-reset the checkout; returns the deployed commit. Changes nothing when the fetch or the
    signature check fails."""
    git = Git(config)
    repo_dir, version = config["repo_dir"], config["repo_version"]
    if not os.path.isdir(os.path.join(repo_dir, ".git")):
        os.makedirs(repo_dir, mode=0o700, exist_ok=True)
        result = git.run("init", "-q", repo_dir)
        if result.returncode != 0:
            raise PullError(f"cannot create the checkout {repo_dir}: {result.stderr.strip()}")
    git.run("-C", repo_dir, "remote", "remove", "origin")
    git.run("-C", repo_dir, "remote", "add", "origin", git.url)
    result = git.run("-C", repo_dir, "fetch", "--quiet", "--depth", "1", "--no-tags", "origin", version)
    if result.returncode != 0:
        raise PullError(git.fetch_error(result.stderr))
    fetched = git.run("-C", repo_dir, "rev-parse", "FETCH_HEAD^{commit}")
    commit = fetched.stdout.strip()
    if fetched.returncode != 0 or not commit:
        raise PullError(f"{version!r} in {git.url} is not a commit: {fetched.stderr.strip()}")
    if config.get("verify_commit"):
        verified = git.run("-C", repo_dir, "verify-commit", commit)
        if verified.returncode != 0:
            reason = verified.stderr.strip().splitlines()[-1] if verified.stderr.strip() else "no signature"
            raise PullError(
                f"commit {commit[:12]} of {version!r} is not signed by a key in podops_verify_commit_keys ({reason}); "
                "nothing was deployed and the checkout keeps the last verified commit"
            )
    result = git.run("-C", repo_dir, "reset", "--quiet", "--hard", commit)
    if result.returncode != 0:
        raise PullError(f"cannot check out {commit[:12]} in {repo_dir}: {result.stderr.strip()}")
    return commit


def write_failed_report(core: Core, state_dir: str, run_id: str, trigger: str, started: str, error: str, config: dict[str, t.Any]) -> None:
    """A run that fails before the playbook still leaves a report (for the webhook shim and the status page),
    and is told like any other run (with the notification settings of the last full run)."""
    report = core.report.build_report(run_id, trigger, None, started, False, {}, error=error)
    notified = notify_failed_run(config, state_dir, report)
    if notified:
        report["notifications"] = notified
    core.report.write_report(state_dir, report, int(config.get("keep_runs", 100)))


def playbook_argv(config: dict[str, t.Any], args: list[str], run_id: str, passed_run_id: bool) -> list[str]:
    """The env repo's playbook for every run, a redeploy (``-e podops_service=NAME``, passed on) included: one path,
    so a redeploy can never run with other settings (project prefix, podops_services) than the reconcile."""
    repo_dir = config["repo_dir"]
    argv = [config["ansible_playbook"], "-i", "localhost,", "-c", "local"]
    local = os.path.join(repo_dir, config.get("playbook") or "local.yml")
    if os.path.isfile(local):
        argv.append(local)
    else:
        log(f"the env repo has no {os.path.basename(local)}: running podops.gitops.reconcile on it")
        argv.append("podops.gitops.reconcile")
    argv += ["-e", f"ansible_python_interpreter={config['python']}"]
    argv += ["-e", json.dumps({"podops_repo_dir": repo_dir, "podops_state_dir": config["state_dir"]})]
    if not passed_run_id:
        argv += ["-e", f"podops_run_id={run_id}"]
    return argv + args


def lane_args(args: list[str]) -> list[str]:
    """podops-pull's pass-through arguments without the trigger, the run ID and the service of a redeploy, which
    change from run to run (a redeploy takes the fast lane the last full run opened, with the same settings)."""
    kept: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg in ("-e", "--extra-vars") and index + 1 < len(args) and re.match(r"^podops_(trigger|run_id|service)=[^\s]*$", args[index + 1]):
            index += 2
            continue
        kept.append(arg)
        index += 1
    return kept


def max_age(config: dict[str, t.Any]) -> float:
    return float(config.get("fast_lane_max_age", 3600))


class Core(t.NamedTuple):
    """What podops-pull shares with the engine, from the installed collection: one lock, one run-id pattern,
    one report writer, one clock."""

    common: t.Any
    report: t.Any
    state: t.Any


def load_core(config: dict[str, t.Any]) -> Core:
    bytecode_cache(config)
    import_collection(config)
    try:
        # pylint: disable-next=import-outside-toplevel
        from ansible_collections.podops.gitops.plugins.module_utils import _common, _report, _state
    except ImportError as exc:
        raise PullError(
            f"cannot import the podops.gitops collection ({exc}; collections_path {config.get('collections_path')!r}); "
            "run the podops.gitops.bootstrap playbook again"
        ) from None
    return Core(_common, _report, _state)


def bytecode_cache(config: dict[str, t.Any]) -> str:
    """Keep the bytecode of what this process imports from now on under ``<ANSIBLE_HOME>/podops/pycache`` (the
    folder the laptop path's local module process uses, made private to this user), also where
    ``PYTHONDONTWRITEBYTECODE`` is set or the collection's folder is not this user's to write (a rootless host
    whose collection root installed): compiling the collection from source was about a sixth of a fast-lane
    no-op. Python checks each cached file against its source's mtime and size. Empty where it cannot be made."""
    home = (config.get("env") or {}).get("ANSIBLE_HOME") or os.environ.get("ANSIBLE_HOME") or "~/.ansible"
    path = os.path.join(os.path.expanduser(str(home)), "podops", "pycache")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError:
        return ""
    sys.pycache_prefix = path
    sys.dont_write_bytecode = False
    return path


def import_collection(config: dict[str, t.Any]) -> None:
    """Make the podops.gitops collection podops installed importable (its module_utils)."""
    paths = [p for p in (config.get("collections_path") or os.environ.get("ANSIBLE_COLLECTIONS_PATH") or "").split(os.pathsep) if p]
    for path in paths:
        if os.path.isdir(os.path.join(path, "ansible_collections", "podops", "gitops")):
            if path not in sys.path:
                sys.path.insert(0, path)
            break


def notify_failed_run(config: dict[str, t.Any], state_dir: str, report: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Notifications of a run that failed before the engine ran (see the collection's _deliver); [] when none
    are set up or the collection cannot be imported."""
    import_collection(config)
    try:
        from ansible_collections.podops.gitops.plugins.module_utils import _deliver  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        log(f"cannot notify (cannot import the podops.gitops collection: {exc})")
        return []
    settings = _deliver.load_settings(state_dir)  # None when no notifications are set up
    if settings is None:
        return []
    announcer = _deliver.Announcer(settings, state_dir)
    results = announcer.finished(report)
    for warning in announcer.warnings():
        log(f"warning: {warning}")
    return results


def load_lane(config: dict[str, t.Any]) -> t.Any:
    """The collection's fast-lane code (``_lane``), imported from the collections podops installed; None when
    the lane is off or the collection cannot be imported (then every run is a full playbook run)."""
    if max_age(config) <= 0:
        return None
    import_collection(config)
    try:
        from ansible_collections.podops.gitops.plugins.module_utils import _lane  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        log(f"fast lane unavailable (cannot import the podops.gitops collection: {exc}); running the playbook")
        return None
    return _lane


def run_lane(lane_module: t.Any, lane: t.Any, config: dict[str, t.Any], trigger: str, run_id: str, service: str | None = None) -> int | None:
    """The reconcile (``service``: the redeploy of that one) without ansible-playbook; None when it needs the
    playbook after all (vault files)."""
    os.environ["PODOPS_LOCK_HELD"] = "1"  # this process holds the host lock
    env = child_env(config)
    try:
        result = lane_module.run(lane, trigger, run_id, env, service=service)
    except Exception as exc:  # noqa: BLE001 - PodopsError (a run report was written) or a bug: both are reported
        if not isinstance(exc, lane_module.PodopsError):
            log(f"run {run_id}: the fast lane failed unexpectedly ({type(exc).__name__}: {exc}); running the playbook instead")
            return None
        print(f"podops-pull: error: {exc}", file=sys.stderr, flush=True)
        return 2
    if result is None:
        log(f"run {run_id}: the run needs ansible-vault plaintext; running the playbook")
        return None
    for line in result.summary:
        log(f"run {run_id}: {line}")
    for warning in result.warnings:
        log(f"warning: {warning}")
    if result.failed_services:
        print(f"podops-pull: error: {result.message}", file=sys.stderr, flush=True)
        # As after a failed playbook run: the next run is a full one, whichever path saw the failure first.
        lane_module.forget(config["state_dir"])
    return result.exit_code


def child_env(config: dict[str, t.Any]) -> dict[str, str]:
    env = dict(os.environ)
    env.update({str(k): str(v) for k, v in (config.get("env") or {}).items()})
    env["PODOPS_LOCK_HELD"] = "1"
    # Under a systemd unit (the timer's service, the webhook shim) podman keeps conmon in the unit's cgroup when
    # it sees INVOCATION_ID, and systemd kills it when the unit ends: the containers would lose their monitor.
    # Without it, podman gives every container's conmon a scope of its own.
    env.pop("INVOCATION_ID", None)
    if config.get("collections_path"):
        env["ANSIBLE_COLLECTIONS_PATH"] = config["collections_path"]
    env.setdefault("HOME", pwd.getpwuid(os.getuid()).pw_dir)
    env.setdefault("ANSIBLE_LOCALHOST_WARNING", "false")
    env.setdefault("ANSIBLE_FORCE_COLOR", "false")
    venv_bin = os.path.dirname(config["ansible_playbook"])
    env["PATH"] = venv_bin + os.pathsep + env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


class ProgressTail:
    """Prints the engine's progress lines (``path``: the core's ``<state dir>/progress.log``) as they come, while a
    run goes on."""

    def __init__(self, path: str, run_id: str, interval: float = 1.0):
        self.path = path
        self.run_id = run_id
        self.interval = interval
        self.offset = 0
        self.done = threading.Event()
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # the last run's lines are not this run's
        self.thread = threading.Thread(target=self._loop, name="podops-progress", daemon=True)

    def __enter__(self) -> ProgressTail:
        self.thread.start()
        return self

    def __exit__(self, *_exc: t.Any) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        self.poll()

    def _loop(self) -> None:
        while not self.done.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() < self.offset:
                    self.offset = 0  # emptied by the engine when its run started
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return
        complete = data[: data.rfind("\n") + 1]
        self.offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            log(f"run {self.run_id}: {line}")


def summarize(state_dir: str, run_id: str, failures: bool = True) -> None:
    """The run's one-line result; with ``failures``, each failed service's error and last log lines first."""
    path = os.path.join(state_dir, "runs", f"{run_id}.json")
    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError):
        log(f"run {run_id}: no run report at {path}")
        return
    services = report.get("services") or {}
    counts: dict[str, int] = {}
    for outcome in services.values():
        action = outcome.get("action", "?")
        counts[action] = counts.get(action, 0) + 1
    parts = ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "no services"
    for name, outcome in sorted(services.items()):
        if failures and outcome.get("action") in ("failed", "rolled_back"):
            log(f"run {run_id}: {name}: {outcome.get('action')} - {outcome.get('error')}")
            failure = outcome.get("failure_log") or {}
            lines = failure.get("lines") or []
            if failure:
                log(f"run {run_id}: {name}: last {len(lines)} log line(s) of {failure.get('container')} (before the rollback):")
            for line in lines:
                log(f"run {run_id}: {name}: | {line}")
    log(f"run {run_id}: result={report.get('result')} commit={(report.get('commit') or '-')[:12]} ({parts}); report {path}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if wants_help(argv):
        print(USAGE)
        return 0
    try:
        config_path, jitter, args = split_args(argv)
        config = load_config(config_path)
        core = load_core(config)
    except PullError as exc:
        print(f"podops-pull: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    given = extra_vars(args)
    trigger = given.get("podops_trigger", "cli")
    service = given.get("podops_service")
    if service is not None and not service.strip():
        print("podops-pull: error: podops_service is empty: name the service folder to redeploy (-e podops_service=NAME)", file=sys.stderr)
        return EXIT_ERROR
    started = core.common.utcnow()
    run_id = given.get("podops_run_id") or core.report.new_run_id(started, "pull")
    if not core.report.RUN_ID_RE.match(run_id):
        print(f"podops-pull: error: podops_run_id {run_id!r} must be letters, digits, . _ - (at most 64, not starting with '.')", file=sys.stderr)
        return EXIT_ERROR
    state_dir = config["state_dir"]
    if jitter > 0:
        delay = random.SystemRandom().uniform(0, jitter)
        log(f"waiting {delay:.0f}s (jitter)")
        time.sleep(delay)
    timeout = float(config.get("lock_timeout", 300))
    lock = core.state.HostLock(
        state_dir,
        timeout,
        f"podops-pull pid {os.getpid()} trigger {trigger} run {run_id} since {started}",
        waiting=lambda holder: log(f"waiting up to {timeout:g}s for the reconcile already running ({holder or 'holder unknown'})"),
        wrapper=True,
    )
    try:
        lock.__enter__()  # held until this process exits: the kernel drops it then
    except core.state.LockBusy as exc:
        print(f"podops-pull: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_BUSY
    except OSError as exc:
        print(f"podops-pull: error: cannot take the host lock in {state_dir}: {exc}", file=sys.stderr, flush=True)
        return EXIT_ERROR
    try:
        log(f"run {run_id} (trigger {trigger}): fetching {config['repo_version']} of {config['repo_url']}")
        commit = sync_repo(config)
        log(f"run {run_id}: checked out {commit[:12]} in {config['repo_dir']}")
    except PullError as exc:
        print(f"podops-pull: error: {exc}", file=sys.stderr, flush=True)
        write_failed_report(core, state_dir, run_id, trigger, started, str(exc), config)
        return EXIT_ERROR
    lane_module = load_lane(config)
    kept_args = lane_args(args)
    progress = os.path.join(state_dir, core.report.PROGRESS_FILE)
    fingerprint = ""
    if lane_module is not None:
        fingerprint = lane_module.collection_fingerprint()
        lane, why = lane_module.decide(state_dir, config["repo_dir"], commit, kept_args, fingerprint, max_age(config))
        if lane is not None:
            log(f"run {run_id}: fast lane ({why})" + (f", redeploying {service}" if service is not None else ""))
            with ProgressTail(progress, run_id):
                rc = run_lane(lane_module, lane, config, trigger, run_id, service)
            if rc is not None:
                summarize(state_dir, run_id, failures=False)  # the lane printed the engine's summary already
                return rc
        else:
            log(f"run {run_id}: full playbook run ({why})")
    argv_playbook = playbook_argv(config, args, run_id, "podops_run_id" in given)
    log(f"run {run_id}: {' '.join(shlex.quote(a) for a in argv_playbook)}")
    with ProgressTail(progress, run_id):
        result = subprocess.run(argv_playbook, cwd=config["repo_dir"], env=child_env(config), check=False)
    summarize(state_dir, run_id)
    if result.returncode != 0:
        print(f"podops-pull: error: the reconcile failed (ansible-playbook exit {result.returncode}); see the output above", file=sys.stderr, flush=True)
    if lane_module is not None and service is None:  # a redeploy's playbook run records no engine call to replay
        if result.returncode == 0:
            why_not = lane_module.promote(state_dir, run_id, commit, kept_args, fingerprint)
            if why_not:
                log(f"run {run_id}: no fast lane for the next runs: {why_not}")
        else:
            lane_module.forget(state_dir)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
