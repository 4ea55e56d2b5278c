"""A run's optional JSON files (nat.json, access.json) are read by one rule: absent is none, damaged is said."""

import pytest

from analysis.load import read_section


def test_absent_file_is_none(tmp_path):
    assert read_section(tmp_path, "nat.json") is None


def test_object_is_read(tmp_path):
    (tmp_path / "nat.json").write_text('{"nodes": {"1": "symmetric"}}')
    assert read_section(tmp_path, "nat.json") == {"nodes": {"1": "symmetric"}}


@pytest.mark.parametrize("content", [b'{"nodes": ', b"\xff\xfe", b"[1, 2]"])
def test_damaged_file_is_said_and_left_out(tmp_path, content):
    (tmp_path / "access.json").write_bytes(content)
    with pytest.warns(UserWarning, match="access.json: left out"):
        assert read_section(tmp_path, "access.json") is None
