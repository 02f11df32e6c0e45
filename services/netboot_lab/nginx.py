"""nginx, the peer of our HTTP service in the benchmarks: installed if missing, run with a
config of its own, and never left running as a host service.

`ensure_nginx` installs Debian's nginx-light (or nginx) with a policy-rc.d that
stops the package from starting its service, then disables whatever the
package enabled; `nginx_config` writes a config that touches nothing under /etc,
/var or /run, so several can run side by side in the lab's namespaces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
NGINX_PACKAGES = ("nginx-light", "nginx")


def host_nginx_pids() -> list[int]:
    """nginx processes in our own (the host's) network namespace; ours run in the lab's."""
    host_netns = Path("/proc/self/ns/net").readlink()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            is_nginx = (entry / "comm").read_text().strip() == "nginx"
            if is_nginx and (entry / "ns" / "net").readlink() == host_netns:
                pids.append(int(entry.name))
    return pids


def stop_host_nginx_service() -> None:
    """Stop and disable the nginx service a fresh package install may have enabled or started."""

    def quiet(command: list[str]) -> None:
        subprocess.run(command, capture_output=True, check=False, timeout=60)

    if shutil.which("systemctl"):
        # `disable` works without a running systemd too (it only removes the links).
        running = Path("/run/systemd/system").is_dir()
        quiet(["systemctl", "disable", *(["--now"] if running else []), "nginx"])
    if shutil.which("update-rc.d"):
        quiet(["update-rc.d", "nginx", "disable"])
    if host_nginx_pids() and Path("/run/nginx.pid").exists():
        # The stock config's master (no systemd to stop it), found through its pid file.
        quiet(["nginx", "-s", "quit"])
    deadline = time.monotonic() + 10
    while host_nginx_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    if host_nginx_pids():
        print("warning: an nginx is still running on the host", file=sys.stderr)


def ensure_nginx() -> str:
    """The nginx binary; installs nginx-light (or nginx) without starting its service."""
    found = shutil.which("nginx")
    if found:
        return found
    print("installing nginx-light (apt-get)", flush=True)
    # policy-rc.d exit 101 tells the package's maintainer scripts not to start nginx.
    made_policy = not POLICY_RC_D.exists()
    if made_policy:
        POLICY_RC_D.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for package in NGINX_PACKAGES:
            done = subprocess.run(
                ["apt-get", "install", "-y", "--no-install-recommends", package],
                capture_output=True,
                text=True,
                env=env,
                timeout=900,
                check=False,
            )
            if done.returncode == 0:
                break
        else:
            raise RuntimeError(f"apt-get install nginx failed: {done.stderr.strip()[-500:]}")
    finally:
        if made_policy:
            POLICY_RC_D.unlink(missing_ok=True)
        stop_host_nginx_service()
    found = shutil.which("nginx")
    if not found:
        raise RuntimeError("nginx installed but not on PATH")
    return found


def nginx_config(nginx: str, listen: str, root: Path, state: Path, workers: str) -> str:
    """A config of our own serving `root` on `listen` ("ADDRESS:PORT"): nothing read from
    or written to /etc, /var or /run."""
    built = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=False).stderr
    temp_paths = [f"client_body_temp_path {state / 'client_body'};"]
    for module in ("proxy", "fastcgi", "uwsgi", "scgi"):
        if f"--without-http_{module}_module" not in built:
            temp_paths.append(f"{module}_temp_path {state / module};")
    temp_lines = "\n    ".join(temp_paths)
    return f"""\
worker_processes {workers};
user root;
pid {state / "nginx.pid"};
error_log {state / "nginx-error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    {temp_lines}
    server {{
        listen {listen};
        root {root};
    }}
}}
"""
