"""Whole-or-nothing JSON and JSON-lines writes, and the one reader of JSON records."""

from pathlib import Path

import pytest

from tulu_lib.core.io import read_json, write_json, write_jsonl


@pytest.mark.parametrize("content", ["", '{"stage": "01_da', "[]", '"done"'],
                         ids=["empty", "truncated", "list", "string"])
def test_unreadable_json_files_are_named_in_one_line(tmp_path, capsys, content):
    path = tmp_path / "stages" / "01_data.json"
    path.parent.mkdir()
    path.write_text(content)
    assert read_json(path, "ignored") is None and read_json(tmp_path / "missing.json", "x") is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and err[0].endswith("ignored")


def test_a_json_write_cut_short_leaves_the_previous_file(tmp_path, monkeypatch):

    path = tmp_path / "stages" / "01_data.json"
    path.parent.mkdir()
    write_json(path, {"status": "done"})

    def cut_short(self, text, *args, **kwargs):  # a kill part-way through the write
        Path.write_bytes(self, text[:5].encode())
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", cut_short)
    with pytest.raises(KeyboardInterrupt):
        write_json(path, {"status": "failed", "last_attempt": {"error": "x" * 100}})
    assert read_json(path, "ignored") == {"status": "done"}
    assert sorted(p.name for p in path.parent.iterdir()) == [".01_data.json.tmp", "01_data.json"]


def test_a_jsonl_write_cut_short_leaves_the_previous_file(tmp_path):

    path = tmp_path / "items.jsonl"
    write_jsonl(path, [{"id": "a", "text": "é"}])
    assert path.read_text() == '{"id": "a", "text": "\\u00e9"}\n'

    def rows():  # a kill part-way through the write, after one row
        yield {"id": "b"}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(path, rows())
    assert path.read_text() == '{"id": "a", "text": "\\u00e9"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == [".items.jsonl.tmp", "items.jsonl"]
    write_jsonl(path, [{"id": "c", "text": "é"}], ensure_ascii=False)
    assert path.read_text(encoding="utf-8") == '{"id": "c", "text": "é"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["items.jsonl"]
