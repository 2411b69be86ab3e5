"""The warm CLI server (engine/cli_server.py) as a user meets it: a real background server, real `python -m engine
run` clients in their own processes, real files, real signals."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine import cli_server
from helpers.waiting import wait_until
from engine.imaging import encode_png

REPO = Path(__file__).resolve().parents[2]


def cli(env, *args, cwd=None, **kw):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env=env, timeout=300, **kw)


def photo(path: Path, h: int, w: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * np.sin(6 * x * y)], -1)
    img = np.clip(img + 0.03 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)
    path.write_bytes(encode_png(img))
    return path


def status(env) -> dict | None:
    proc = cli(env, "cli-server", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def server_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clisock")
    os.chmod(folder, 0o700)
    env = {**os.environ, "PYTHONPATH": str(REPO), cli_server.DIR_ENV: str(folder), cli_server.IDLE_ENV: "300"}
    env.pop(cli_server.MODE_ENV, None)
    proc = cli(env, "cli-server", "start")
    assert proc.returncode == 0, proc.stderr + (folder / "server.log").read_text()
    assert proc.stdout.startswith("started: CLI server")
    yield env
    cli(env, "cli-server", "stop")
    assert status(env) is None


def test_warm_run_gives_the_cold_run_outputs(server_env, tmp_path):
    img = photo(tmp_path / "p.png", 96, 128)
    before = status(server_env)["served"]
    warm = cli(server_env, "run", "jiep", str(img), "--out", str(tmp_path / "warm"))
    assert warm.returncode == 0, warm.stderr
    assert status(server_env)["served"] == before + 1  # it went through the server
    cold = cli({**server_env, cli_server.MODE_ENV: "off"}, "run", "jiep", str(img), "--out", str(tmp_path / "cold"))
    assert cold.returncode == 0, cold.stderr
    assert status(server_env)["served"] == before + 1  # off: never through the server
    assert warm.stdout.startswith(f"jiep: wrote 3 layer(s) to {tmp_path / 'warm'} in ")
    assert cold.stdout.startswith(f"jiep: wrote 3 layer(s) to {tmp_path / 'cold'} in ")
    warm_record = json.loads((tmp_path / "warm" / "result.json").read_text())
    cold_record = json.loads((tmp_path / "cold" / "result.json").read_text())
    assert warm_record["parameters"] == cold_record["parameters"] and warm_record["values"] == cold_record["values"]
    assert set(warm_record["files"]) == set(cold_record["files"]) and warm_record["files"]
    for entry in warm_record["files"].values():
        assert (tmp_path / "warm" / entry["file"]).read_bytes() == (tmp_path / "cold" / entry["file"]).read_bytes()


def test_warm_run_uses_the_clients_folder_and_reports_errors_like_a_cold_one(server_env, tmp_path):
    img = photo(tmp_path / "p.png", 64, 64)
    proc = cli(server_env, "run", "jiep", "p.png", "--out", "rel_out", cwd=tmp_path)  # relative paths: client's cwd
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rel_out" / "result.json").is_file()
    before = status(server_env)["served"]
    for args, code, text in [
        (("run", "no-such-method", str(img), "--out", str(tmp_path / "o")), 2, "unknown method 'no-such-method'"),
        (("run", "jiep", str(tmp_path / "nope.png"), "--out", str(tmp_path / "o")), 2, "no such file"),
        (("run", "jiep", str(img), "--out", str(tmp_path / "o"), "-p", "nonsense=1"), 2, "unknown parameter"),
        (("run",), 2, "the following arguments are required"),
    ]:
        proc = cli(server_env, *args)
        assert proc.returncode == code, (args, proc.stderr)
        assert text in proc.stderr and "Traceback" not in proc.stderr
    assert status(server_env)["served"] == before + 4


def test_other_environment_runs_cold(server_env, tmp_path):
    img = photo(tmp_path / "p.png", 64, 64)
    before = status(server_env)["served"]
    # a variable read when libraries load differs from the server's: served cold, same result
    proc = cli({**server_env, "OMP_WAIT_POLICY": "ACTIVE"}, "run", "jiep", str(img), "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert status(server_env)["served"] == before
    # any other variable is the client's own, in the warm child
    proc = cli({**server_env, "SOME_USER_VARIABLE": "1"}, "run", "jiep", str(img), "--out", str(tmp_path / "o2"))
    assert proc.returncode == 0, proc.stderr
    assert status(server_env)["served"] == before + 1


def _start_long_run(env, tmp_path):
    img = photo(tmp_path / "big.png", 1600, 2400)
    before = status(env)["running"]
    client = subprocess.Popen([sys.executable, "-m", "engine", "run", "jiep", str(img), "--out", str(tmp_path / "o")],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: status(env)["running"] == before + 1)
    return client


def test_ctrl_c_reaches_the_command(server_env, tmp_path):
    client = _start_long_run(server_env, tmp_path)
    time.sleep(0.5)
    client.send_signal(signal.SIGINT)
    _out, err = client.communicate(timeout=60)
    assert client.returncode == 130 and "interrupted" in err
    wait_until(lambda: status(server_env)["running"] == 0)


def test_a_killed_client_takes_its_command_with_it(server_env, tmp_path):
    client = _start_long_run(server_env, tmp_path)
    client.kill()
    client.wait(timeout=10)
    wait_until(lambda: status(server_env)["running"] == 0, timeout=10)
    assert not (tmp_path / "o" / "result.json").exists()


def test_stale_code_stops_the_server_and_runs_cold(tmp_path):
    folder = tmp_path / "sock"
    folder.mkdir(mode=0o700)
    env = {**os.environ, "PYTHONPATH": str(REPO), cli_server.DIR_ENV: str(folder), cli_server.IDLE_ENV: "60"}
    assert cli(env, "cli-server", "start").returncode == 0
    info = status(env)
    # a client of an edited checkout: its fingerprint differs, so the server refuses and stops
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(info["socket"])
    request = {"command": "run", "argv": ["run", "jiep"], "code": "edited", "envfp": info["envfp"]}
    data = json.dumps(request).encode()
    with open(os.devnull, "rb") as devnull:
        sock.sendmsg([cli_server._HEADER.pack(len(data)) + data],
                     [(socket.SOL_SOCKET, socket.SCM_RIGHTS, np.array([devnull.fileno()] * 3, np.int32).tobytes())])
        reply = cli_server._recv(sock)
    sock.close()
    assert reply == {"refused": "the engine's code changed since the server started", "stopping": True}
    wait_until(lambda: status(env) is None)
    wait_until(lambda: not cli_server._alive(info["pid"]), timeout=10)
    assert not Path(info["socket"]).exists()
    img = photo(tmp_path / "p.png", 48, 48)
    proc = cli(env, "run", "jiep", str(img), "--out", str(tmp_path / "o"))  # no server: cold, as ever
    assert proc.returncode == 0, proc.stderr


def test_auto_starts_a_server_for_the_next_command_and_idle_ends_it(tmp_path):
    folder = tmp_path / "sock"
    folder.mkdir(mode=0o700)
    env = {**os.environ, "PYTHONPATH": str(REPO), cli_server.DIR_ENV: str(folder), cli_server.IDLE_ENV: "4",
           cli_server.MODE_ENV: "auto"}
    img = photo(tmp_path / "p.png", 48, 48)
    proc = cli(env, "run", "jiep", str(img), "--out", str(tmp_path / "o1"))
    assert proc.returncode == 0, proc.stderr
    info = wait_until(lambda: status(env), timeout=60)
    proc = cli(env, "run", "jiep", str(img), "--out", str(tmp_path / "o2"))
    assert proc.returncode == 0, proc.stderr
    assert status(env)["served"] == 1
    wait_until(lambda: status(env) is None, timeout=30)  # 4 s without a command: it exits by itself
    assert "idle for 4 s: exiting" in (folder / "server.log").read_text()
    assert not list(folder.glob("*.sock"))
    assert info["pid"] > 0


def test_code_fingerprint_follows_every_source_file(tmp_path, monkeypatch):
    package = tmp_path / "engine"
    (package / "sub").mkdir(parents=True)
    (package / "a.py").write_text("x = 1\n")
    (package / "sub" / "b.py").write_text("y = 2\n")
    monkeypatch.setattr(cli_server, "_ENGINE_DIR", package)
    first = cli_server.code_fingerprint()
    assert cli_server.code_fingerprint() == first
    os.utime(package / "sub" / "b.py", ns=(0, 10**9))
    assert cli_server.code_fingerprint() != first
    second = cli_server.code_fingerprint()
    (package / "c.py").write_text("")
    assert cli_server.code_fingerprint() != second


def test_socket_folder_must_be_private(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    monkeypatch.setenv(cli_server.DIR_ENV, str(shared))
    with pytest.raises(cli_server.ServerError, match="not a private folder"):
        cli_server.socket_dir()
    monkeypatch.setenv(cli_server.DIR_ENV, str(tmp_path / "fresh"))
    assert oct(os.stat(cli_server.socket_dir()).st_mode & 0o777) == "0o700"
    monkeypatch.setenv(cli_server.MODE_ENV, "sometimes")
    proc = cli({**os.environ, "PYTHONPATH": str(REPO)}, "run", "jiep", "x.png", "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and f"{cli_server.MODE_ENV}='sometimes'" in proc.stderr


def test_environment_fingerprint_covers_load_time_variables():
    base = {"HOME": "/h", "OMP_NUM_THREADS": "2"}
    assert cli_server.env_fingerprint(base) == cli_server.env_fingerprint({**base, "HOME": "/other", "TERM": "x"})
    for name in ("OMP_NUM_THREADS", "LD_PRELOAD", "INTRINSIC_LAB_MALLOC", "CUDA_VISIBLE_DEVICES", "MKL_X"):
        assert cli_server.env_fingerprint(base) != cli_server.env_fingerprint({**base, name: "9"}), name
    assert cli_server.env_fingerprint(base) == cli_server.env_fingerprint({**base, cli_server.MODE_ENV: "off"})
