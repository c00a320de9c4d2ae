"""``rlhf-gym label serve`` as a real server in a subprocess: where it listens, and no label lost to SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import threading
from pathlib import Path

import httpx
from label_server import serving, write_pairs

from rlhf_gym.cli import build_parser
from rlhf_gym.feedback.store import LabelStore


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of LISTEN sockets on ``port`` (Linux /proc/net/tcp; hex, little-endian IPv4)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                found.add(addr)
    return found


def test_serves_on_127_0_0_1_unless_told_otherwise(tmp_path):
    args = build_parser().parse_args(["label", "serve", "--db", "x.sqlite"])
    assert args.host == "127.0.0.1"
    pairs = write_pairs(tmp_path / "pairs.jsonl", [{"prompt": "p", "candidate1": "a", "candidate2": "b"}])
    with serving(pairs, tmp_path / "l.sqlite") as (proc, url):
        port = int(url.rsplit(":", 1)[1])
        if Path("/proc/net/tcp").exists():
            assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
        assert httpx.get(url + "/labels.jsonl").status_code == 401


def test_sigkill_during_a_burst_loses_no_acknowledged_label(tmp_path):
    n, kill_after = 200, 20  # killed long before the burst could end
    pairs = write_pairs(tmp_path / "pairs.jsonl",
                        [{"prompt": f"prompt {i}", "candidate1": f"a{i}", "candidate2": f"b{i}"} for i in range(n)])
    db = tmp_path / "l.sqlite"
    token = LabelStore(db).add_annotator("alice")
    acknowledged: list[int] = []
    with serving(pairs, db, "--no-shuffle") as (proc, url):  # posted sides are the file's sides
        killed = threading.Event()

        def burst() -> None:
            with httpx.Client(base_url=url, cookies={"rlhf_label_token": token}) as client:
                for item_id in range(1, n + 1):
                    if killed.is_set():
                        return
                    try:
                        r = client.post("/label", data={"item_id": str(item_id), "choice": "ab"[item_id % 2]})
                    except httpx.HTTPError:
                        return  # the server died under this request: not acknowledged
                    if r.status_code == 303:
                        acknowledged.append(item_id)

        worker = threading.Thread(target=burst)
        worker.start()
        while len(acknowledged) < kill_after and worker.is_alive():
            threading.Event().wait(0.005)
        proc.send_signal(signal.SIGKILL)  # mid-burst
        killed.set()
        proc.wait(10)
        worker.join(30)
    assert kill_after <= len(acknowledged) < n
    with sqlite3.connect(db) as conn:  # a plain reopen, as after a crash
        stored = {row[0]: row[1] for row in conn.execute("SELECT item_id, choice FROM labels")}
    assert set(acknowledged) <= set(stored)
    assert len(stored) - len(acknowledged) <= 1  # at most the one in flight, committed but never answered
    assert all(stored[i] == "ab"[i % 2] for i in acknowledged)
