"""`scripts/cluster start|stop|status`: the several-servers topology as processes on one machine.

nats-server (JetStream on a store directory), redis-server (the socket.io manager), N servers
(`python server.py --redis-url ... --nats-url ...`), M workers and Debian's nginx in front with
sticky sessions. Everything lives under a run directory: `state.json` (pids, ports, commands),
`logs/`, `nginx/` (its own prefix and config; no system config is read), `nats/` (the store).
Each process is started in its own session so it outlives this command; `stop` sends SIGTERM,
waits, and only then SIGKILLs what is left.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import topology  # noqa: E402  (a sibling module; this file is run as a script)

ROOT = topology.ROOT
# The checkout's own `server` package (installed, it is `pipelines_server`): this script runs
# from a checkout, and so do the processes it starts (their working directory is ROOT).
sys.path.insert(1, str(ROOT))
DEFAULT_RUN_DIR = ROOT / ".cluster"
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def binary(name: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if Path(p).exists()), None)
    if found is None:
        sys.exit(f"cluster: {name} is missing (apt-get install {name})")
    return found


def server_flags() -> set[str]:
    """Flags this checkout's server accepts (`--nats-url` only exists with pool support)."""
    from server.__main__ import build_parser

    return {opt for action in build_parser()._actions for opt in action.option_strings}


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return bool(r.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def redis_ok(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def nats_connections(monitor_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/connz",
                                    timeout=1.0) as r:
            return int(json.load(r)["num_connections"])
    except (OSError, ValueError, KeyError):
        return -1


def alive(pid: int, expect: str) -> bool:
    """Is `pid` running and still the process we started (its command line names `expect`)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return expect in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z"


def exited(pid: int, expect: str) -> bool:
    """Has our child `pid` ended? Asked of the kernel (waitpid), not read from /proc: a child
    cannot be replaced by another process before it is reaped, and a reading of /proc taken
    while the process rewrites its title (redis-server does) can miss its name."""
    try:
        ended, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not a child of this process (started by an earlier command)
        return not alive(pid, expect)
    return ended == pid


def healthy(proc: dict[str, Any], state: dict[str, Any]) -> bool:
    if not alive(proc["pid"], proc["expect"]):
        return False
    kind, ports = proc["kind"], state["ports"]
    if kind == "nats":
        return http_ok(f"http://127.0.0.1:{ports['nats_monitor']}/healthz?js-enabled-only=true")
    if kind == "redis":
        return redis_ok(ports["redis"])
    if kind == "server":
        return http_ok(f"http://127.0.0.1:{proc['port']}/healthz")
    if kind == "worker":
        # Workers are up once NATS counts one more connection per worker than it did before
        # they started (the servers' connections, if any, are in that baseline).
        workers = sum(1 for p in state["processes"] if p["kind"] == "worker")
        return nats_connections(ports["nats_monitor"]) >= int(state["nats_baseline"]) + workers
    if kind == "nginx":
        return http_ok(f"http://127.0.0.1:{ports['nginx']}/healthz")
    return False


def load_state(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "state.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def spawn(run_dir: Path, name: str, kind: str, argv: list[str], expect: str,
          env: dict[str, str] | None = None, as_user: pwd.struct_passwd | None = None,
          **extra: Any) -> dict[str, Any]:
    log = open(run_dir / "logs" / f"{name}.log", "ab")  # handed to the child, closed here
    ids: dict[str, Any] = {} if as_user is None else {
        "user": as_user.pw_uid, "group": as_user.pw_gid, "extra_groups": []}
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                            env={**os.environ, **(env or {})}, start_new_session=True, **ids)
    log.close()
    (run_dir / "pids" / f"{name}.pid").write_text(f"{proc.pid}\n")
    return {"name": name, "kind": kind, "pid": proc.pid, "argv": argv, "expect": expect, **extra}


def nginx_user(run_dir: Path) -> pwd.struct_passwd | None:
    """Started as root, nginx runs as `nobody` (master and workers) when `nobody` can reach the
    run directory; else (not root, or a private run directory) as the user running this."""
    if os.geteuid() != 0:
        return None
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None
    if any(not d.stat().st_mode & 0o001 for d in (run_dir, *run_dir.parents)):
        print(f"cluster: {run_dir} is private; nginx's master runs as root (its workers as "
              "nobody)", file=sys.stderr)
        return None
    return nobody


def hand_over(run_dir: Path, user: pwd.struct_passwd) -> None:
    """Give nginx's own files (prefix directory, its two logs) to `user`."""
    paths = [run_dir / "logs" / "nginx-error.log", run_dir / "logs" / "nginx-access.log"]
    for path in paths:
        path.touch()
    prefix = run_dir / "nginx"
    paths += [prefix, *prefix.rglob("*")]
    for path in paths:
        os.chown(path, user.pw_uid, user.pw_gid)


def nginx_conf(run_dir: Path, listen_port: int, servers: list[str]) -> Path:
    prefix = run_dir / "nginx"
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    snippet = prefix / "pipelines.conf"
    snippet.write_text(topology.nginx_snippet(listen_port, servers))
    logs = run_dir / "logs"
    conf = prefix / "nginx.conf"
    conf.write_text(f"""# Rendered by scripts/cluster; nginx runs in the foreground, managed by it.
daemon off;
worker_processes 1;
pid {prefix / 'nginx.pid'};
error_log {logs / 'nginx-error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    log_format routed '$remote_addr [$time_local] "$request" $status '
                      'upstream=$upstream_addr route=$pipelines_route';
    access_log {logs / 'nginx-access.log'} routed;
    client_body_temp_path {prefix / 'tmp/client_body'};
    proxy_temp_path {prefix / 'tmp/proxy'};
    fastcgi_temp_path {prefix / 'tmp/fastcgi'};
    uwsgi_temp_path {prefix / 'tmp/uwsgi'};
    scgi_temp_path {prefix / 'tmp/scgi'};
    include {snippet};
}}
""")
    return conf


def start(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir.resolve()
    state = load_state(run_dir)
    if state is not None and any(alive(p["pid"], p["expect"]) for p in state["processes"]):
        print(f"cluster: already running from {run_dir} (stop it first)", file=sys.stderr)
        return 1
    if args.workers > 0 and importlib_missing("server.worker"):
        print("cluster: --workers needs the worker (server/worker.py) in this checkout; "
              "use --workers 0", file=sys.stderr)
        return 2
    for sub in ("logs", "pids", "nats"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    ports = {"nats": free_port(), "nats_monitor": free_port(), "redis": free_port(),
             "nginx": args.port}
    use_nats = "--nats-url" in server_flags()
    state = {"run_dir": str(run_dir), "ports": ports, "processes": [],
             "servers_use_nats": use_nats, "started_at": time.time()}
    procs: list[dict[str, Any]] = state["processes"]

    def save() -> None:
        (run_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")

    local = "127.0.0.1"
    nats = topology.nats_url(local, ports["nats"])
    redis = topology.redis_url(local, ports["redis"])
    argv = topology.nats_argv(ports["nats"], str(run_dir / "nats"), ports["nats_monitor"], local)
    procs.append(spawn(run_dir, "nats", "nats", [binary("nats-server"), *argv[1:]],
                       "nats-server"))
    argv = topology.redis_argv(ports["redis"], local)
    procs.append(spawn(run_dir, "redis", "redis", [binary("redis-server"), *argv[1:]],
                       "redis-server"))
    save()
    if not wait_healthy(state, ("nats", "redis"), args.timeout):
        return fail_start(args, state)
    server_env = {"PIPELINES_DEMO_SLEEP_SCALE": str(args.demo_sleep_scale)}
    if args.token:
        server_env["PIPELINES_TOKEN"] = args.token
    addresses = []
    for i in range(1, args.servers + 1):
        port = free_port()
        argv = topology.server_argv(port, redis, nats, local)
        if not use_nats:
            cut = argv.index("--nats-url")
            argv = argv[:cut] + argv[cut + 2:]
        procs.append(spawn(run_dir, f"server{i}", "server",
                           [sys.executable, *argv[1:], *args.server_flag], "server.py",
                           env=server_env, port=port))
        addresses.append(f"{local}:{port}")
    save()
    if not wait_healthy(state, ("server",), args.timeout):
        return fail_start(args, state)
    state["nats_baseline"] = max(0, nats_connections(ports["nats_monitor"]))
    for i in range(1, args.workers + 1):
        argv = topology.worker_argv(nats)
        procs.append(spawn(run_dir, f"worker{i}", "worker",
                           [sys.executable, "-m", "server.worker", *argv[1:]], "server.worker",
                           env=server_env))
    save()
    if not wait_healthy(state, ("worker",), args.timeout):
        return fail_start(args, state)
    conf = nginx_conf(run_dir, ports["nginx"], addresses)
    nginx = binary("nginx")
    user = nginx_user(run_dir)
    if user is not None:
        hand_over(run_dir, user)
    ids: dict[str, Any] = {} if user is None else {
        "user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    check = subprocess.run([nginx, "-t", "-q", "-p", str(run_dir / "nginx"), "-c", str(conf)],
                           capture_output=True, text=True, **ids)
    if check.returncode != 0:
        print(f"cluster: nginx config refused:\n{check.stderr}", file=sys.stderr)
        return fail_start(args, state)
    procs.append(spawn(run_dir, "nginx", "nginx",
                       [nginx, "-p", str(run_dir / "nginx"), "-c", str(conf)], "nginx",
                       as_user=user, user=user.pw_name if user is not None else None))
    save()
    if not wait_healthy(state, ("nginx",), args.timeout):
        return fail_start(args, state)
    print(f"cluster: up on http://127.0.0.1:{ports['nginx']}/ ({args.servers} servers, "
          f"{args.workers} workers; run dir {run_dir})")
    return 0


def importlib_missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def wait_healthy(state: dict[str, Any], kinds: tuple[str, ...], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    waiting = [p for p in state["processes"] if p["kind"] in kinds]
    while waiting:
        waiting = [p for p in waiting if not healthy(p, state)]
        dead = [p for p in waiting if exited(p["pid"], p["expect"])]
        if dead:
            for p in dead:
                print(f"cluster: {p['name']} exited; see {state['run_dir']}/logs/{p['name']}.log",
                      file=sys.stderr)
            return False
        if waiting and time.monotonic() > deadline:
            names = ", ".join(p["name"] for p in waiting)
            print(f"cluster: not healthy after {timeout:.0f} s: {names}", file=sys.stderr)
            return False
        time.sleep(0.1)
    return True


def fail_start(args: argparse.Namespace, state: dict[str, Any]) -> int:
    stop_processes(state)
    return 1


def stop_processes(state: dict[str, Any]) -> bool:
    """SIGTERM in reverse start order (nginx, workers, servers, then redis and nats), waiting
    for each group; SIGKILL only what is still there after STOP_TIMEOUT. True if all ended."""
    clean = True
    procs = state["processes"]
    for kind in reversed(topology.SERVICES):
        group = [p for p in procs if p["kind"] == kind and alive(p["pid"], p["expect"])]
        for p in group:
            try:
                os.kill(p["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while group and time.monotonic() < deadline:
            group = [p for p in group if alive(p["pid"], p["expect"])]
            time.sleep(0.05)
        for p in group:
            print(f"cluster: {p['name']} ignored SIGTERM for {STOP_TIMEOUT:.0f} s; killing",
                  file=sys.stderr)
            clean = False
            try:
                os.kill(p["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
    return clean


def stop(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir.resolve()
    state = load_state(run_dir)
    if state is None:
        print(f"cluster: nothing started from {run_dir}")
        return 0
    clean = stop_processes(state)
    for p in state["processes"]:
        (run_dir / "pids" / f"{p['name']}.pid").unlink(missing_ok=True)
    (run_dir / "state.json").unlink()
    print("cluster: stopped" + ("" if clean else " (some processes had to be killed)"))
    return 0 if clean else 1


def status(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir.resolve()
    state = load_state(run_dir)
    if state is None:
        print(f"cluster: nothing started from {run_dir}")
        return 3
    rows = []
    for p in state["processes"]:
        up = alive(p["pid"], p["expect"])
        rows.append({"name": p["name"], "pid": p["pid"], "running": up,
                     "healthy": up and healthy(p, state), "port": p.get("port")})
    if args.json:
        print(json.dumps({"url": f"http://127.0.0.1:{state['ports']['nginx']}",
                          "ports": state["ports"], "processes": rows}, indent=2))
    else:
        print(f"url http://127.0.0.1:{state['ports']['nginx']}/  run dir {run_dir}")
        for r in rows:
            word = "healthy" if r["healthy"] else "running" if r["running"] else "stopped"
            print(f"  {r['name']:<9} pid {r['pid']:<8} {word}")
    return 0 if all(r["healthy"] for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "status"):
        p = sub.add_parser(name)
        p.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR,
                       help="pids, logs, config and the NATS store (default: .cluster/)")
        if name == "start":
            p.add_argument("--port", type=int, default=8080, help="nginx's public port")
            p.add_argument("--servers", type=int, default=2, help="pipelines servers (2)")
            p.add_argument("--workers", type=int, default=2,
                           help=f"workers of pool '{topology.POOL}' (2; 0: none)")
            p.add_argument("--token", default=os.environ.get("PIPELINES_TOKEN"),
                           help="the servers' token (needed for POST /api/announce)")
            p.add_argument("--demo-sleep-scale", type=float, default=1.0)
            p.add_argument("--server-flag", action="append", default=[],
                           help="one more flag for every server (repeatable), e.g. "
                           "--server-flag=--test-coroutines")
            p.add_argument("--timeout", type=float, default=30.0,
                           help="seconds to wait for each part to be healthy")
        if name == "status":
            p.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "start":
        if args.servers < 1 or args.workers < 0:
            parser.error("--servers must be >= 1 and --workers >= 0")
        return start(args)
    return stop(args) if args.command == "stop" else status(args)


if __name__ == "__main__":
    sys.exit(main())
