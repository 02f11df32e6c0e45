"""`netboot serve` as a real process: start, log what it serves, stop cleanly."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from netboot_lab.daemon import Daemon
from netboot_lab.factories import make_set
from netboot_lab.netns import netboot_in, run_in
from tests.netns import veth_lab


@pytest.fixture
def root(tmp_path: Path) -> Path:
    images = tmp_path / "nbimages"
    make_set(images, "Alpha", Index=1)
    make_set(images, "Broken", Index=2, Type="FTP")
    return images


@pytest.fixture
def ephemeral(tmp_path: Path) -> list[str]:
    """Options that keep a daemon outside a namespace off the host's ports 67, 69 and 80."""
    config = tmp_path / "ephemeral.toml"
    config.write_text(
        "[dhcp]\nport = 0\nboot_server_port = 0\n"
        '[tftp]\nport = 0\n[http]\nport = 0\n[nfs]\nmode = "off"\n'
        '[admin]\nlisten = "127.0.0.1:0"\n'
    )
    return ["--config", str(config)]


def serve_once(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a `netboot serve` that is expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "netboot", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_logs_what_it_serves_and_stops_cleanly(
    root: Path, ephemeral: list[str], sig: int
) -> None:
    with Daemon([*ephemeral, "--root", str(root)]) as daemon:
        daemon.wait_ready()
        assert daemon.stop(sig) == 0
    log = "\n".join(daemon.lines)
    assert "serving image 0x01000001 'Alpha' (HTTP) from Alpha.nbi" in log
    assert f"{root}/Broken.nbi/NBImageInfo.plist: Type: 'FTP' is not one of" in log
    assert f"catalog: 1 of 2 NBI sets servable from {root}" in log
    assert "netboot stopping" in log
    assert "Traceback" not in log


def test_json_log_lines_carry_named_fields(root: Path, ephemeral: list[str]) -> None:
    with Daemon([*ephemeral, "--root", str(root), "--log-format", "json"]) as daemon:
        daemon.wait_ready()
        assert daemon.stop() == 0
    records = [json.loads(line) for line in daemon.lines]
    for record in records:
        assert {"time", "level", "system", "message"} <= record.keys()
    serving = next(r for r in records if r["message"].startswith("serving image"))
    assert serving["image_id"] == "0x01000001"
    assert serving["set"] == "Alpha.nbi"
    assert serving["system"] == "netboot.catalog"
    problem = next(r for r in records if r.get("key") == "Type")
    assert (problem["level"], problem["set"]) == ("warning", "Broken.nbi")


def test_log_level_hides_less_severe_lines(root: Path, ephemeral: list[str]) -> None:
    with Daemon([*ephemeral, "--root", str(root), "--log-level", "warn"]) as daemon:
        daemon.wait_for("Broken.nbi/NBImageInfo.plist: Type:")
        assert daemon.stop() == 0
    assert not any(" info " in line for line in daemon.lines), daemon.lines


def test_config_file_is_used_and_the_command_line_wins(root: Path, tmp_path: Path) -> None:
    config = tmp_path / "netboot.toml"
    config.write_text(
        '[server]\nroot = "nbimages"\nallow_root = true\n'
        "[dhcp]\nport = 0\nboot_server_port = 0\n[tftp]\nport = 0\n[http]\nport = 0\n"
        '[nfs]\nmode = "off"\n[admin]\nlisten = "127.0.0.1:0"\n'
        '[logging]\nformat = "json"\n'
        # Its own state files, so the lab's Daemon adds no command-line option.
        '[bsdp]\nbindings_database = "bindings.sqlite3"\n'
    )
    text = config.read_text()
    text = text.replace(
        "allow_root = true\n", 'allow_root = true\nstate_database = "state.sqlite3"\n'
    )
    text = text.replace(
        'listen = "127.0.0.1:0"\n',
        'listen = "127.0.0.1:0"\ntoken_file = "token"\naudit_log = "audit.log"\n',
    )
    config.write_text(text)
    with Daemon(["--config", str(config)]) as daemon:
        ready = json.loads(daemon.wait_ready())
        assert daemon.stop() == 0
    assert ready["root"] == str(root)
    assert ready["source"] == str(config)

    other = tmp_path / "other"
    other.mkdir()
    with Daemon(["--config", str(config), "--root", str(other), "--log-format", "text"]) as daemon:
        line = daemon.wait_ready()
        assert daemon.stop() == 0
    assert f"serving {other} on all interfaces (config: {config} + command line)" in line


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        ("[server]\nrooot = 'x'\n", "server.rooot: unknown key"),
        ("[logging]\nformat = 'xml'\n", "logging.format: must be one of text, json, journal"),
        ("[server]\nroot = 'absent'\n", "server.root: "),
    ],
)
def test_bad_config_is_refused_with_exit_2(tmp_path: Path, config_text: str, message: str) -> None:
    config = tmp_path / "netboot.toml"
    config.write_text(config_text)
    done = serve_once("--config", str(config))
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: {config}: ")
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_root_is_refused_with_exit_2(tmp_path: Path) -> None:
    done = serve_once("--root", str(tmp_path / "absent"))
    assert done.returncode == 2
    assert f"server.root: {tmp_path / 'absent'} is not a directory" in done.stderr


def test_unknown_interface_is_refused_with_exit_2(root: Path) -> None:
    done = serve_once("--allow-root", "--root", str(root), "--interface", "no-such-if0")
    assert done.returncode == 2
    assert "server.interfaces: no network interface named 'no-such-if0'" in done.stderr


def test_serve_binds_to_an_interface_inside_a_network_namespace(root: Path) -> None:
    with veth_lab() as lab:
        with Daemon(["--root", str(root), "--interface", lab.server_if], netns=lab.server) as d:
            line = d.wait_ready()
            assert d.stop() == 0
        assert f"on {lab.server_if} " in line
        refused = netboot_in(
            lab.server, "serve", "--allow-root", "--root", str(root), "--interface", lab.client_if
        )
        assert refused.returncode == 2
        assert f"no network interface named {lab.client_if!r} (have: lo, {lab.server_if})" in (
            refused.stderr
        )


def _status_field(pid: int, name: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split()[1:]
    raise AssertionError(f"no {name} in /proc/{pid}/status")


def test_root_without_a_user_is_refused(root: Path, ephemeral: list[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    done = subprocess.run(
        [sys.executable, "-m", "netboot", "serve", *ephemeral, "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "refusing to run as root" in done.stderr


def test_started_as_root_it_drops_to_the_user_and_keeps_serving(tmp_path: Path) -> None:
    """After start the process is nobody:nogroup with no capabilities, and TFTP answers."""
    # pytest's tmp_path sits under a directory only root may enter.
    root = Path(tempfile.mkdtemp(prefix="netboot-nobody-"))
    root.chmod(0o755)
    make_set(root, "Alpha")
    state = Path(tempfile.mkdtemp(prefix="netboot-nobody-state-"))
    state.chmod(0o755)
    with veth_lab("10.231.5") as lab:
        args = [
            "--root", str(root),
            "--interface", lab.server_if,
            "--user", "nobody",
            "--group", "nogroup",
            "--admin-token-file", str(state / "admin-token"),
            "--state-database", str(state / "state.sqlite3"),
            "--audit-log", str(state / "audit.log"),
        ]  # fmt: skip
        with Daemon(args, netns=lab.server) as daemon:
            daemon.wait_for(r"running as nobody:nogroup \(uid \d+, gid \d+\)")
            daemon.wait_ready()
            pid = daemon.process.pid
            nobody = str(pwd.getpwnam("nobody").pw_uid)
            nogroup = str(grp.getgrnam("nogroup").gr_gid)
            assert _status_field(pid, "Uid") == [nobody] * 4
            assert _status_field(pid, "Gid") == [nogroup] * 4
            assert _status_field(pid, "Groups") == []
            assert _status_field(pid, "CapEff") == ["0000000000000000"]
            assert _status_field(pid, "CapPrm") == ["0000000000000000"]
            booter = str(tmp_path / "b")
            fetched = netboot_in(
                lab.client, "tftp", "get", lab.server_ip, "Alpha.nbi/i386/booter", "-o", booter
            )
            assert fetched.returncode == 0, fetched.stderr + "\n".join(daemon.lines)
            # Assignments and audit lines are written after the drop, as nobody.
            token = (state / "admin-token").read_text().strip()
            assigned = run_in(
                lab.server, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                "-X", "PUT", "-H", f"Authorization: Bearer {token}",
                "--data-binary", '{"image_id": 16777217}',
                "http://127.0.0.1:9067/api/assignments/52:54:00:00:00:07",
            )  # fmt: skip
            assert assigned.stdout == "204", assigned.stderr + "\n".join(daemon.lines)
            audit = json.loads((state / "audit.log").read_text().splitlines()[-1])
            assert (audit["target"], audit["after"]) == ("52:54:00:00:00:07", 0x01000001)
            assert daemon.stop() == 0
    shutil.rmtree(root)
    shutil.rmtree(state)
