"""CSV/TSV as people save them (CASES.md: tables)."""
import pandas as pd
import pytest

from core.data.tables import MAX_TEXT_CHARS, clean_text_table, guess_columns, read_table
from core.errors import DataError

ROWS = [("Café crème très bon", "positif"), ("naïve façade", "négatif")]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252", "latin-1"])
def test_encodings_decode_correctly(tmp_path, encoding):
    p = tmp_path / "t.csv"
    p.write_bytes(("text,label\n" + "\n".join(f"{t},{l}" for t, l in ROWS) + "\n").encode(encoding))
    tr = read_table(p)
    assert tr.df["text"].tolist() == [t for t, _ in ROWS]
    assert tr.df["label"].tolist() == [l for _, l in ROWS]


@pytest.mark.parametrize("sep,name", [(";", "t.csv"), ("\t", "t.tsv"), ("\t", "t.csv"), ("|", "t.csv")])
def test_delimiters(tmp_path, sep, name):
    p = tmp_path / name
    p.write_text(f"text{sep}label\nhello, world{sep}a\nbye{sep}b\n", encoding="utf-8")
    tr = read_table(p)
    assert list(tr.df.columns) == ["text", "label"]
    assert tr.df["text"].iloc[0] == "hello, world"


def test_quoted_cells_with_newlines(tmp_path):
    p = tmp_path / "t.csv"
    pd.DataFrame({"text": ["line one\nline two", "plain"], "label": ["x", "y"]}).to_csv(p, index=False)
    tr = read_table(p)
    assert len(tr.df) == 2 and tr.df["text"].iloc[0] == "line one\nline two"


def test_no_obvious_columns_lists_them():
    df = pd.DataFrame({"a": ["1", "2", "3", "4"], "b": ["5", "6", "7", "8"], "c": ["x", "y", "z", "w"]})
    with pytest.raises(DataError) as e:
        guess_columns(df, "odd.csv")
    assert "odd.csv" in str(e.value) and "a, b, c" in str(e.value)


def test_guess_by_shape():
    df = pd.DataFrame({"review_body": ["a long sentence about a thing " * 2] * 6, "stars": ["1", "2"] * 3})
    assert guess_columns(df) == ("review_body", "stars")


def test_empty_and_header_only(tmp_path):
    (tmp_path / "e.csv").write_bytes(b"")
    with pytest.raises(DataError, match="no rows"):
        read_table(tmp_path / "e.csv")
    (tmp_path / "h.csv").write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match="no rows"):
        read_table(tmp_path / "h.csv")


def test_na_like_labels_are_real_and_empty_ones_counted(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("text,label\na,NA\nb,None\nc,null\nd,\n   ,x\ne,ok\n", encoding="utf-8")
    df = read_table(p).df
    items, rep = clean_text_table(df, "text", "label")
    assert items["label"].tolist() == ["NA", "None", "null", "ok"]
    assert rep.empty_label == 1 and rep.empty_input == 1
    assert any("empty label were dropped: line 5" in n for n in rep.notes())
    assert any("empty input (blank, or only invisible characters) were dropped: line 6" in n for n in rep.notes())


def test_text_of_only_invisible_characters_is_empty_at_ingest_and_at_prediction(tmp_path):
    """A zero-width space, a BOM or a word joiner is nothing a model should score: the row is dropped at ingest
    (named by its line) and a prediction of it reports an empty text, in the studio and in every export."""
    from core.portable import text_problem

    p = tmp_path / "t.csv"
    p.write_text("text,label\nhello,a\n\u200b\u200b,b\n\ufeff\u2060,a\nworld,\u200d\nhi\u200b,b\n", encoding="utf-8")
    items, rep = clean_text_table(read_table(p).df, "text", "label")
    assert items["text"].tolist() == ["hello", "hi\u200b"] and items["row"].tolist() == [2, 6]
    assert any("dropped: lines 3, 4" in n for n in rep.notes()) and any("dropped: line 5" in n for n in rep.notes())
    assert not any("Spaces around labels" in n for n in rep.notes())
    assert text_problem("\u200b \u00a0") == "empty text (only invisible characters)" and text_problem("ok") is None
    assert text_problem("   ") == "empty text"


def test_huge_cell_truncated_with_warning(tmp_path):
    p = tmp_path / "t.csv"
    big = "w" * (10 * 1024 * 1024)
    p.write_text(f"text,label\n{big},a\nsmall,b\n", encoding="utf-8")
    items, rep = clean_text_table(read_table(p).df, "text", "label")
    assert len(items["text"].iloc[0]) == MAX_TEXT_CHARS and rep.truncated == 1
    assert any("truncated" in n for n in rep.notes())


def test_size_limit_is_stated(tmp_path, monkeypatch):
    import core.data.tables as T

    monkeypatch.setattr(T, "MAX_TABLE_BYTES", 100)
    p = tmp_path / "big.csv"
    p.write_text("text,label\n" + "x,y\n" * 100, encoding="utf-8")
    with pytest.raises(DataError, match="big.csv.*limit"):
        T.read_table(p)


def test_binary_file_is_refused(tmp_path):
    p = tmp_path / "sheet.csv"
    p.write_bytes(b"PK\x03\x04\x00\x00\x00binary\x00\x00")
    with pytest.raises(DataError, match="sheet.csv"):
        read_table(p)


def test_headers_equal_after_trimming_are_told_apart(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("text, text,label\nhello,world,a\nbye,now,b\n", encoding="utf-8")
    tr = read_table(p)
    assert list(tr.df.columns) == ["text", "text (2)", "label"] and "repeated: text" in tr.notes[0]
    assert guess_columns(tr.df) == ("text", "label")


@pytest.mark.parametrize("body", ["text,label\nhello there,a,\nbye now,b,\n", "text,label,\nhello there,a,\nbye now,b,\n"])
def test_a_trailing_comma_on_every_row(tmp_path, body):
    p = tmp_path / "t.csv"
    p.write_text(body, encoding="utf-8")
    df = read_table(p).df
    assert list(df.columns) == ["text", "label"] and df.values.tolist() == [["hello there", "a"], ["bye now", "b"]]


def test_a_value_past_the_last_column_is_named(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("text,label\nhello, world,a\nbye,b\n", encoding="utf-8")
    with pytest.raises(DataError, match="row 2 has 3 fields"):
        read_table(p)


def test_json_lines_json_parquet_and_excel_are_read_as_tables(tmp_path):
    want = [["good film", "pos"], ["bad film", "neg"]]
    (tmp_path / "t.jsonl").write_text('{"text": "good film", "label": "pos"}\n{"text": "bad film", "label": "neg"}\n')
    (tmp_path / "t.json").write_text('{"data": [{"text": "good film", "label": "pos"}, {"text": "bad film", "label": "neg"}]}')
    df = pd.DataFrame(want, columns=["text", "label"])
    df.to_parquet(tmp_path / "t.parquet")
    with pd.ExcelWriter(tmp_path / "t.xlsx") as w:
        df.to_excel(w, index=False, sheet_name="reviews")
        df.to_excel(w, index=False, sheet_name="other")
    for name in ("t.jsonl", "t.json", "t.parquet", "t.xlsx"):
        tr = read_table(tmp_path / name)
        assert tr.df[["text", "label"]].values.tolist() == want, name
    assert "first sheet, 'reviews', of 2" in read_table(tmp_path / "t.xlsx").notes[0]
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "b"}\n["not", "an object"]\n')
    with pytest.raises(DataError, match="line 2 is not a JSON object"):
        read_table(tmp_path / "bad.jsonl")
    (tmp_path / "old.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.raises(DataError, match="save it as .xlsx or CSV"):
        read_table(tmp_path / "old.xls")


@pytest.mark.parametrize("encoding,expect,texts", [
    ("shift_jis", "cp932", ["今日はとても良い天気です", "この映画は本当に面白かった"]),
    ("gbk", "gb18030", ["这部电影非常好看我很喜欢", "服务态度很差不会再来"]),
    ("cp1251", "cp1251", ["Очень хороший товар рекомендую", "Ужасное качество не покупайте"]),
])
def test_east_asian_and_cyrillic_encodings_are_detected_and_named(tmp_path, encoding, expect, texts):
    p = tmp_path / "t.csv"
    rows = [(f"{texts[i % 2]} {i}", "a" if i % 2 else "b") for i in range(20)]
    p.write_bytes(("text,label\n" + "\n".join(f"{t},{l}" for t, l in rows) + "\n").encode(encoding))
    tr = read_table(p)
    assert tr.df["text"].tolist() == [t for t, _ in rows]
    assert tr.encoding == expect and f"Read as {expect} (detected)." in tr.notes
