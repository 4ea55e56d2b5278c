"""Hostile and mistaken node configurations (issue 14): `p2pnode run` exits 2 with one short line naming the key,
before it listens, never a traceback or a hang; every number has a range; the TOML loader is property-tested."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p2pnode.cli import check_config, main
from p2pnode.nodeconfig import NodeConfig, NodeConfigError, load_config, parse_config, validate_config
from tests.helpers.bounds import numeric_fields, unbounded

LISTEN = '[network]\nlisten_addresses = ["/ip4/127.0.0.1/tcp/0"]\n'


def refusal(tmp_path: Path, capsys, text: str | bytes, name: str = "node.toml") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    assert main(["run", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("p2pnode: ") and len(line) < 320
    return line.removeprefix("p2pnode: ")


@pytest.mark.parametrize(("text", "expected"), [
    ('[network]\nlisten_addresses = [""]', "network.listen_addresses[0]: '' is not a multiaddr ('an empty multiaddr')"),
    ('[network]\ntransports = ["tcp"]\nlisten_addresses = ["/ip4/127.0.0.1/udp/0/quic-v1"]',
     "network.transports: lacks 'quic', which listen_addresses[0] ('/ip4/127.0.0.1/udp/0/quic-v1') needs"),
    ("[pubsub]\nexpected_rate = 1e300", "pubsub.expected_rate: must be <= 100000 (got 1e+300)"),
    (f'[mcp]\nserver_address = "{"a" * 300}:8545"', "mcp.server_address: 'aaaa"),
    ('[network]\nkey_file = "a\\u0000b"', "network.key_file: a path cannot contain a NUL byte"),
    ('base_dir = "/"', "base_dir: unknown key"),
    ("[resources]\nconnection_timeout = inf", "resources.connection_timeout: Input should be a finite number"),
    ("[dht]\nrefresh_interval = inf", "dht.refresh_interval: Input should be a finite number (got inf)"),
    ("[pubsub]\nexpected_rate = inf", "pubsub.expected_rate: Input should be a finite number (got inf)"),
    ("[dht]\nrefresh_interval = 1e-9", "dht.refresh_interval: must be >= 1 (got 1e-09)"),
    ('[network]\n"a\\nb" = 1', "'network.a\\nb': unknown key"),
    ('[nat]\nport_mapping_protocols = ["natpmp"]', "nat.port_mapping_protocols[0]: Input should be 'pcp', "),
])
def test_issue_values_name_the_key(tmp_path, capsys, text, expected):
    line = refusal(tmp_path, capsys, text)
    assert line.startswith(f"{tmp_path / 'node.toml'}: {expected}"), line


def test_a_huge_value_is_quoted_briefly(tmp_path, capsys):
    line = refusal(tmp_path, capsys, f'[network]\nkey_file = {"9" * 100_000}\n')
    assert line.endswith("node.toml: not valid TOML: an integer of more than 4300 digits")
    line = refusal(tmp_path, capsys, f'[network]\nkey_file = {"9" * 1000}\n')
    assert line.endswith("network.key_file: Input should be a valid string (got an integer of about 1000 digits)")
    line = refusal(tmp_path, capsys, f'[log]\nlevel = "{"x" * 1_000_000}"\n')
    assert line.endswith("log.level: Input should be 'debug', 'info', 'warning' or 'error'")


def test_not_utf8_fifo_device(tmp_path, capsys):
    assert refusal(tmp_path, capsys, b"[log]\nlevel = \"caf\xe9\"\n").endswith(
        "node.toml: not UTF-8 text (byte 0xe9 on line 2)")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    assert main(["run", "--config", str(fifo)]) == 2  # and does not wait for a writer
    assert capsys.readouterr().err.strip() == f"p2pnode: {fifo}: is a FIFO; expected a regular file"
    assert main(["run", "--config", "/dev/urandom"]) == 2
    assert "is a character device" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "expected"), [
    ('key_file = "file/node.key"', "network.key_file: 'file/node.key': "),
    ('key_file = "dir"', "network.key_file: 'dir': is a folder; expected a file"),
    ('[dht]\nstorage_path = "file/records"', "dht.storage_path: 'file/records': "),
    ('[dht]\nstorage_path = "."', "dht.storage_path: '.': is a folder; expected a file"),
    ('[dht]\nstorage_path = "latin.jsonl"', "dht.storage_path: 'latin.jsonl': not UTF-8 text (byte 0xff on line 2)"),
    ('[log]\nevents_file = "missing/events.csv"', "log.events_file: 'missing/events.csv': its folder"),
    ('[log]\nevents_file = "."', "log.events_file: '.': is a folder; expected a file"),
])
def test_paths_are_checked_the_way_the_node_uses_them(tmp_path, capsys, text, expected):
    (tmp_path / "file").write_text("a regular file\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "latin.jsonl").write_bytes(b"{}\n\xff\n")
    head = LISTEN if text.startswith("key_file") else LISTEN + "\n"
    line = refusal(tmp_path, capsys, head + text + "\n")
    assert line.startswith(expected), line
    assert not list(tmp_path.glob("*.lock"))  # refused before the key was locked or made


def test_key_file_in_a_read_only_folder(tmp_path):
    """A read-only mount (permission bits would not stop root): the check tries to create a file there."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a private read-only mount")
    ro = tmp_path / "ro"
    ro.mkdir()
    config = tmp_path / "node.toml"
    config.write_text(LISTEN + 'key_file = "ro/node.key"\n')
    script = (f"mount -t tmpfs -o ro none {ro} || exit 99; "
              f"exec {sys.executable} -m p2pnode.cli run --config {config}")
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    if proc.returncode == 99:
        pytest.skip("cannot mount here")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (f"p2pnode: network.key_file: 'ro/node.key': cannot create files in "
                                   f"'{ro}': Read-only file system")


def test_storage_below_a_regular_file_is_refused_before_start(tmp_path):
    (tmp_path / "file").write_text("x")
    config = parse_config(LISTEN + '[dht]\nstorage_path = "file/records.jsonl"\n', tmp_path)
    with pytest.raises(Exception) as info:
        check_config(config)
    assert str(info.value) == "dht.storage_path: 'file/records.jsonl': a part of it is a file, not a folder"


def test_a_good_config_passes_and_makes_nothing(tmp_path):
    config = parse_config(LISTEN + '[dht]\nstorage_path = "new/records.jsonl"\n[log]\nevents_file = "e.csv"\n',
                          tmp_path)
    check_config(config)
    assert list(tmp_path.iterdir()) == []


# ---- the classes -----------------------------------------------------------------------------------------------

def test_every_number_in_the_config_has_a_range():
    assert len(list(numeric_fields(NodeConfig))) > 20
    assert unbounded(NodeConfig) == []


_KEYS = sorted({name for section in NodeConfig.model_fields.values() for name in
                getattr(section.annotation, "model_fields", {})} | set(NodeConfig.model_fields))
_SCALARS = st.one_of(st.booleans(), st.integers(), st.integers(-(10**30), 10**30),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
                     st.text(max_size=2).map(lambda t: t * 5000), st.sampled_from(_KEYS))
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=6), inner, max_size=4),
                       max_leaves=20)


def _short_lines(exc: Exception) -> None:
    for line in str(exc).splitlines():
        assert len(line) <= 320 and line.isprintable(), line


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(list(NodeConfig.model_fields)) | st.text(max_size=8),
                       st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=8), _VALUES, max_size=4)
                       | _VALUES, max_size=4))
def test_any_document_gives_a_config_or_short_lines(tmp_path_factory, document):
    try:
        config = validate_config(document, source="n.toml")
    except NodeConfigError as exc:
        _short_lines(exc)
        return
    for path, _ in numeric_fields(NodeConfig):
        value = config
        for name in path:
            value = getattr(value, name, None) if name != "[]" else None
        assert value is None or not isinstance(value, float) or math.isfinite(value)


_VALID = """[network]
listen_addresses = ["/ip4/127.0.0.1/tcp/0", "/ip6/::1/udp/0/quic-v1"]
transports = ["quic", "tcp"]
[dht]
record_ttl = 3600
refresh_interval = 600
storage_path = "records.jsonl"
[mcp]
server_address = "127.0.0.1:8545"
[pubsub]
expected_rate = 2.5
[log]
level = "info"
"""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(_VALID)), st.integers(0, 40),
       st.text(alphabet='[]="\'\\.,=#\n \t0123456789e+-infa\x00\xe9\U0001f600', max_size=20))
def test_any_text_gives_a_config_or_short_lines(cut, drop, junk):
    try:
        parse_config(_VALID[:cut] + junk + _VALID[cut + drop:], source="n.toml")
    except NodeConfigError as exc:
        _short_lines(exc)


def test_load_config_reads_only_bounded_regular_files(tmp_path):
    big = tmp_path / "big.toml"
    with open(big, "wb") as f:
        f.truncate(300 << 20)
    with pytest.raises(NodeConfigError, match=r"big.toml: is 300 MiB; at most 1 MiB is read"):
        load_config(big)
