"""Reading corpora: every format, field options, skipped rows, and a clear located error for each kind of bad input."""

from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embtune.data import iter_text_chunks, read_corpus, read_pairs
from embtune.data.readers import count_rows_estimate
from embtune.errors import InputError


def write(path, text: str | bytes):
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def test_jsonl_with_labels(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"text": "a b", "label": "x"}\n\n{"text": "c", "label": 3}\n')
    corpus = read_corpus(path)
    assert corpus.texts == ["a b", "c"]
    assert corpus.labels == ["x", "3"]
    assert corpus.n_labels == 2


def test_txt_one_text_per_line_and_empty_lines_counted(tmp_path, caplog):
    path = write(tmp_path / "c.txt", "first text\n   \nsecond text\r\n\nthird")
    with caplog.at_level(logging.INFO):
        corpus = read_corpus(path)
    assert corpus.texts == ["first text", "second text", "third"]
    assert corpus.labels is None
    assert corpus.skipped_empty == 2
    assert "skipped 2 row(s) with an empty text (lines 2, 4)" in caplog.text


def test_csv_custom_fields_and_multiline_quoted_text(tmp_path):
    path = write(tmp_path / "c.csv", 'body,intent\n"line one\nline two",a\nplain,b\n')
    corpus = read_corpus(path, text_field="body", label_field="intent", require_labels=True)
    assert corpus.texts == ["line one\nline two", "plain"]
    assert corpus.labels == ["a", "b"]


def test_tsv(tmp_path):
    path = write(tmp_path / "c.tsv", "text\tlabel\nhello, world\tgreet\n")
    assert read_corpus(path).texts == ["hello, world"]


def test_parquet(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"text": ["a", "", "b"], "label": ["x", "y", "z"]}), path)
    corpus = read_corpus(path)
    assert corpus.texts == ["a", "b"] and corpus.labels == ["x", "z"] and corpus.skipped_empty == 1


def test_utf8_bom_is_ignored(tmp_path):
    path = write(tmp_path / "c.csv", "\ufefftext,label\nhi,a\n")
    assert read_corpus(path).texts == ["hi"]


def test_labels_dropped_with_warning_when_some_rows_lack_them(tmp_path, caplog):
    path = write(tmp_path / "c.jsonl", '{"text": "a", "label": "x"}\n{"text": "b"}\n')
    corpus = read_corpus(path)
    assert corpus.labels is None
    assert "reading without labels" in caplog.text


def test_streaming_chunks(tmp_path):
    path = write(tmp_path / "c.txt", "\n".join(f"t{i}" for i in range(10)) + "\n")
    chunks = list(iter_text_chunks(path, chunk_size=4))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert count_rows_estimate(path) == 10


# -- bad input: each one is a single located message ------------------------------------------------------------------


def error_of(fn, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_nonexistent_path(tmp_path):
    assert error_of(read_corpus, tmp_path / "nope.jsonl") == f"{tmp_path / 'nope.jsonl'}: no such file"


def test_empty_file(tmp_path):
    path = write(tmp_path / "c.jsonl", "")
    assert "is empty (0 bytes)" in error_of(read_corpus, path)


def test_file_of_blank_lines_has_no_rows(tmp_path):
    path = write(tmp_path / "c.jsonl", "\n\n  \n")
    assert "has no rows" in error_of(read_corpus, path)


def test_all_rows_empty(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"text": ""}\n{"text": "   "}\n{"text": null}\n')
    assert "all 3 row(s) have an empty 'text'" in error_of(read_corpus, path)


def test_all_rows_empty_when_streaming(tmp_path):
    path = write(tmp_path / "c.txt", "\n \n")
    assert "all 2 row(s) have an empty" in error_of(lambda: list(iter_text_chunks(path)))


def test_missing_text_field_names_line_and_suggests_field(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"text": "ok"}\n{"sentence": "no text here", "label": "x"}\n')
    message = error_of(read_corpus, path)
    assert message.startswith(f"{path} line 2: no field 'text'")
    assert "--text-field sentence" in message


def test_missing_text_column_in_parquet(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"body": ["a"]}), path)
    assert "no column 'text' (columns: 'body')" in error_of(read_corpus, path)


def test_malformed_json_line(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"text": "ok"}\n{"text": "broken\n')
    message = error_of(read_corpus, path)
    assert message.startswith(f"{path} line 2: malformed JSON")
    assert "one JSON object" in message


def test_json_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path / "c.jsonl", '["a", "b"]\n')
    assert "line 1: expected a JSON object" in error_of(read_corpus, path)


def test_non_string_text(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"text": 42}\n')
    assert "line 1: field 'text' is a int, expected a string" in error_of(read_corpus, path)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = write(tmp_path / "c.txt", "fine\n".encode() + "caf\xe9 cr\xe8me\n".encode("latin-1"))
    message = error_of(read_corpus, path)
    assert message.startswith(f"{path} line 2: not valid UTF-8 (byte 0xe9 at column 4)")
    assert "iconv" in message


def test_csv_row_with_too_many_fields(tmp_path):
    path = write(tmp_path / "c.csv", "text,label\na,b\nc,d,e\n")
    assert "line 3: 3 fields but the header has 2" in error_of(read_corpus, path)


def test_required_label_missing(tmp_path):
    path = write(tmp_path / "c.jsonl", '{"text": "a", "intent": "x"}\n{"text": "b"}\n')
    message = error_of(read_corpus, path, label_field="intent", require_labels=True)
    assert message.startswith(f"{path} line 2: no field 'intent' but labels were asked for")


def test_unsupported_suffix(tmp_path):
    path = write(tmp_path / "c.xlsx", "x")
    assert "unsupported file type '.xlsx'" in error_of(read_corpus, path)


def test_directory_instead_of_file(tmp_path):
    assert "is a folder" in error_of(read_corpus, tmp_path)


# -- pairs ---------------------------------------------------------------------------------------------------------------


def test_pairs_with_scores(tmp_path):
    rows = [{"text1": "a", "text2": "b", "score": 4.5}, {"text1": "c", "text2": "d", "score": "1"}]
    path = write(tmp_path / "p.jsonl", "\n".join(json.dumps(r) for r in rows))
    pairs = read_pairs(path)
    assert pairs.text1 == ["a", "c"] and pairs.scores.tolist() == [4.5, 1.0]
    assert pairs.positive_mask().tolist() == [True, False]


def test_pairs_with_labels_csv(tmp_path):
    path = write(tmp_path / "p.csv", "text1,text2,label\na,b,1\nc,d,0\n")
    pairs = read_pairs(path)
    assert pairs.labels.tolist() == [1, 0] and pairs.scores is None


def test_pairs_bad_score(tmp_path):
    path = write(tmp_path / "p.jsonl", '{"text1": "a", "text2": "b", "score": "high"}\n')
    assert "line 1: field 'score' is 'high', expected a number" in error_of(read_pairs, path)


def test_pairs_labels_must_be_binary(tmp_path):
    path = write(tmp_path / "p.jsonl", '{"text1": "a", "text2": "b", "label": 3}\n')
    assert "must be 0 or 1" in error_of(read_pairs, path)


def test_pairs_missing_field(tmp_path):
    path = write(tmp_path / "p.jsonl", '{"text1": "a", "other": "b"}\n')
    assert "line 1: no field 'text2'" in error_of(read_pairs, path)
