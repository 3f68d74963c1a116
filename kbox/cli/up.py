"""`kbox up`, `kbox down` and `kbox status`: a cluster's life as a process.

`kbox up` builds the cluster from its config, serves the API on 127.0.0.1,
writes the state file other `kbox` commands read, and keeps running until
Ctrl-C or `kbox down` (SIGTERM). With `--detach` it starts itself in the
background, waits until the API answers and returns, as `kind create
cluster` does. On a terminal it opens the dashboard (kbox.tui, imported
only then); headless (`--headless`, or stdout not a terminal) it prints the
cluster's events as they happen.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, TextIO

from kbox.cli import state as cluster_state


def add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", help="cluster name (default: kbox, or $KBOX_CLUSTER)")
    if name == "up":
        parser.add_argument("--config", help="cluster config YAML (nodes, capacities, timings, port)")
        parser.add_argument("--nodes", type=int, help="number of worker nodes (default 3)")
        parser.add_argument("--runtime", choices=["auto", "sim", "docker"],
                            help="node runtime (default auto: docker when an engine answers, else sim)")
        parser.add_argument("--data-dir", help="keep the store here (write-ahead log + snapshots) "
                                               "so a restart has every object back")
        parser.add_argument("--port", type=int, help="API port on 127.0.0.1 (default: a free one)")
        parser.add_argument("--seed", type=int, help="seed for generated names")
        parser.add_argument("--script", help="run this demo script against the cluster once it is up")
        parser.add_argument("--headless", action="store_true", help="no dashboard")
        parser.add_argument("--theme", help="dashboard theme: a name from themes/ (dark, light, "
                                            "high-contrast) or a .yaml path")
        parser.add_argument("-d", "--detach", action="store_true",
                            help="start in the background and return once the API answers")
        parser.add_argument("--quiet", action="store_true", help="do not print events")
        parser.add_argument("--wait", default="60s", help="how long to wait for nodes to be Ready")
        parser.add_argument("--no-kubeconfig", action="store_true",
                            help="do not add a kbox-NAME context to $KUBECONFIG / ~/.kube/config")


def _docker_answers() -> bool:
    from kbox.runtime.dind import engine_answers
    return engine_answers()


def _pick_runtime(requested: str | None, out: TextIO) -> str:
    if requested in ("sim", "docker"):
        return requested
    if _docker_answers():
        return "docker"
    print("kbox: no Docker engine answers (DOCKER_HOST or /var/run/docker.sock), so kbox is "
          "starting simulated nodes: pods go through real phases but run no containers. "
          "For real nodes, start Docker and run `kbox up --runtime docker`.", file=out)
    return "sim"


def _parse_duration(text: str) -> float:
    """`60s`, `2m`, `90` (seconds)."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    return float(text)


def cmd_up(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    from kbox.config import ConfigError, load_config

    try:
        config = load_config(args.config, name=args.name, nodes=args.nodes,
                             dataDir=args.data_dir, apiPort=args.port, seed=args.seed)
    except ConfigError as e:
        print(f"error: {e}", file=err)
        return 1
    running = cluster_state.read_state(config.name)
    if running:
        print(f'error: cluster "{config.name}" is already running (pid {running["pid"]}, '
              f'{running["url"]}); stop it with: kbox down --name {config.name}', file=err)
        return 1
    if args.detach:
        return _detach(args, config.name, out, err)
    dashboard = not args.headless
    if dashboard and not (hasattr(out, "isatty") and out.isatty()):
        print("kbox: stdout is not a terminal, so no dashboard: running headless "
              "(--headless says so explicitly)", file=err)
        dashboard = False
    if dashboard:
        from kbox.tui.launch import check_theme
        if not check_theme(getattr(args, "theme", None), err):
            return 1
    args.dashboard = dashboard
    runtime = _pick_runtime(args.runtime or (config.runtime if config.runtime != "auto" else None), err)
    if runtime == "docker" and not _docker_answers():
        print("error: --runtime docker needs a Docker engine, and none answers (DOCKER_HOST or "
              "/var/run/docker.sock); start dockerd, or use --runtime sim", file=err)
        return 1
    return run_foreground(config, runtime, args, out, err)


def _detach(args: argparse.Namespace, name: str, out: TextIO, err: TextIO) -> int:
    argv = [sys.executable, "-m", "kbox", "up", "--headless", "--quiet"]
    for flag in ("name", "config", "nodes", "runtime", "data_dir", "port", "seed", "script", "wait"):
        v = getattr(args, flag, None)
        if v is not None:
            argv += [f"--{flag.replace('_', '-')}", str(v)]
    if getattr(args, "no_kubeconfig", False):
        argv.append("--no-kubeconfig")
    d = cluster_state.cluster_dir(name)
    d.mkdir(parents=True, exist_ok=True)
    log_path = d / "kbox.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    deadline = time.monotonic() + _parse_duration(args.wait) + 30
    while time.monotonic() < deadline:
        st = cluster_state.read_state(name)
        if st and st.get("pid") == proc.pid and st.get("ready"):
            _print_summary(st, out)
            return 0
        if proc.poll() is not None:
            print(f"error: kbox up exited with code {proc.returncode}; see {log_path}", file=err)
            try:
                print(log_path.read_text()[-2000:], file=err)
            except OSError:
                pass
            return 1
        time.sleep(0.1)
    print(f"error: cluster did not come up in time; see {log_path}", file=err)
    return 1


def _print_summary(st: dict[str, Any], out: TextIO) -> None:
    print(f'Cluster "{st["name"]}" is up: {st.get("nodes", "?")} {st["runtime"]} node(s), '
          f'API at {st["url"]}', file=out)
    print(f"Try: kbox get nodes   |   kbox apply -f samples/web.yaml   |   kbox down"
          + (f" --name {st['name']}" if st["name"] != cluster_state.DEFAULT_CLUSTER else ""), file=out)


def run_foreground(config, runtime: str, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from kbox.cluster import Cluster

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    # the CA, serving certificate and tokens live with the cluster's state, so a restart
    # (with --data-dir) keeps every kubeconfig that trusts them working
    cluster = Cluster(config, runtime=runtime,
                      credentials_dir=str(cluster_state.cluster_dir(config.name) / "pki"))
    cluster.on_progress = lambda msg: print(f"kbox: {msg}", file=err, flush=True)
    state: dict[str, Any] = {"name": config.name, "pid": os.getpid(), "runtime": runtime,
                             "url": None, "token": None, "ca": None, "ready": False}
    kubeconfig = not getattr(args, "no_kubeconfig", False)
    try:
        cluster.start(wait_ready=False)
        state["url"] = cluster.url
        state["nodes"] = len(config.node_specs())
        if cluster.credentials is not None:
            state.update(token=cluster.credentials.admin_token, ca=cluster.credentials.ca_path,
                         viewer_token=cluster.credentials.viewer_token)
        cluster_state.write_state(state)
        if kubeconfig:
            _merge_kubeconfig(state, err)
        if getattr(args, "dashboard", False):
            from kbox.tui.launch import run_cluster_dashboard
            rc = run_cluster_dashboard(cluster, state, args, stop, _parse_duration(args.wait),
                                       cluster_state.cluster_dir(config.name) / "kbox.log")
            print(f'Stopping cluster "{config.name}"...', file=out)
            return rc
        try:
            cluster.wait_nodes_ready(_parse_duration(args.wait))
        except TimeoutError as e:
            print(f"warning: {e}", file=err)
        state["ready"] = True
        cluster_state.write_state(state)
        _print_summary(state, out)
        out.flush()
        if args.script:
            from kbox.cli.script import run_script_on_cluster
            rc = run_script_on_cluster(args.script, cluster, out, err)
            if rc != 0:
                print(f"warning: script {args.script} failed (exit {rc}); the cluster keeps running",
                      file=err)
        if not getattr(args, "quiet", False):
            threading.Thread(target=_print_events, args=(cluster, out, stop), daemon=True).start()
        while not stop.wait(0.5):
            pass
        print(f'Stopping cluster "{config.name}"...', file=out)
        return 0
    finally:
        cluster.stop()
        cluster_state.remove_state(config.name, os.getpid())
        if kubeconfig:
            _remove_kubeconfig(config.name, err)


def _merge_kubeconfig(state: dict[str, Any], err: TextIO) -> None:
    """kind's habit: the new cluster's context goes into the user's kubeconfig, current."""
    from kbox.cli import kubeconfig
    try:
        path = kubeconfig.merge(kubeconfig.for_state(state))
    except Exception as e:     # a broken kubeconfig must not stop the cluster
        print(f"warning: could not update the kubeconfig: {e}", file=err)
        return
    print(f'kbox: kubectl context "{kubeconfig.entry_name(state["name"])}" set in {path} '
          f'(kubectl cluster-info --context {kubeconfig.entry_name(state["name"])})', file=err)


def _remove_kubeconfig(name: str, err: TextIO) -> None:
    from kbox.cli import kubeconfig
    try:
        kubeconfig.remove(name)
    except Exception as e:
        print(f"warning: could not update the kubeconfig: {e}", file=err)


def _print_events(cluster, out: TextIO, stop: threading.Event) -> None:
    """Headless mode's live view: one line per event, as `kbox events -w` prints."""
    try:
        stream = cluster.client.watch("events", None,
                                      resource_version=cluster.client.list("events")["metadata"]["resourceVersion"])
        for etype, ev in stream:
            if stop.is_set():
                break
            if etype not in ("ADDED", "MODIFIED"):
                continue
            inv = ev.get("involvedObject") or {}
            src = (ev.get("source") or {}).get("component", "")
            print(f'{ev.get("type", ""):7} {src:22} {inv.get("kind", "").lower()}/{inv.get("name", "")}: '
                  f'{ev.get("reason", "")}: {ev.get("message", "")}', file=out, flush=True)
    except Exception:  # the event printer must never take the cluster down
        pass


def cmd_down(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    name = cluster_state.cluster_name(args.name or getattr(args, "cluster", None))
    st = cluster_state.read_state(name)
    if not st:
        cluster_state.remove_state(name)
        removed = _remove_docker_nodes(name, err)
        _forget_credentials(name, err)
        if removed:
            print(f'Deleted cluster "{name}" (its process was gone; removed {removed}).', file=out)
        else:
            print(f'No running cluster "{name}".', file=out)
        return 0
    pid = st["pid"]
    print(f'Deleting cluster "{name}" ...', file=out)
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and cluster_state.pid_alive(pid):
        time.sleep(0.1)
    if cluster_state.pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    cluster_state.remove_state(name)
    _remove_docker_nodes(name, err)
    _forget_credentials(name, err)
    print(f'Deleted cluster "{name}".', file=out)
    return 0


def _forget_credentials(name: str, err: TextIO) -> None:
    """A deleted cluster's kubeconfig entries and its CA and tokens go (a new cluster of the
    same name gets new ones, as kind's do)."""
    import shutil
    _remove_kubeconfig(name, err)
    shutil.rmtree(cluster_state.cluster_dir(name) / "pki", ignore_errors=True)


def _remove_docker_nodes(name: str, err: TextIO) -> str:
    """Every container, volume and network of cluster `name` on the host engine (kind's
    `delete cluster`); a description of what went, '' when there was nothing."""
    if not _docker_answers():
        return ""
    try:
        import docker
        from kbox.runtime.dind import remove_cluster
        client = docker.from_env(timeout=30)
        gone = remove_cluster(client, name)
        client.close()
    except Exception as e:   # the cluster is gone either way: say what is left behind
        print(f"warning: could not remove the docker nodes of {name}: {e}", file=err)
        return ""
    if not any(gone.values()):
        return ""
    return ", ".join(f"{n} {k}" for k, n in gone.items() if n)


def cmd_status(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    name = cluster_state.cluster_name(args.name or getattr(args, "cluster", None))
    st = cluster_state.read_state(name)
    if not st:
        print(f'kbox: no running cluster "{name}" (start one with: kbox up)', file=err)
        return 1
    from kbox.api.httpclient import HttpClient
    try:
        client = HttpClient(st["url"], token=st.get("token"), verify=st.get("ca") or False)
        info = client.kbox_status()
    except Exception as e:
        print(f'error: cluster "{name}" (pid {st["pid"]}) does not answer at {st["url"]}: {e}',
              file=err)
        return 1
    print(f'Cluster:   {info["name"]}', file=out)
    print(f'Runtime:   {info["runtime"]}', file=out)
    print(f'API:       {info["url"]}', file=out)
    if info.get("dns"):
        print(f'DNS:       {info["dns"]}', file=out)
    print(f'PID:       {st["pid"]}', file=out)
    print(f'Nodes:     {info["nodes"]}', file=out)
    print(f'Pods:      {info["pods"]}', file=out)
    print(f'Revision:  {info["revision"]}', file=out)
    return 0
