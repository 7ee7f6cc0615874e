"""Datasets: the shipped files, selection, ids, mapping, and bad input said clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from treadle.eval.datasets import DatasetError, load_dataset

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "data"


def test_the_arithmetic_set_is_what_its_script_makes() -> None:
    made = subprocess.run(
        [sys.executable, str(DATA / "make_arithmetic.py")], capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    assert made == (DATA / "arithmetic.jsonl").read_text()
    rows = [orjson.loads(line) for line in made.splitlines()]
    assert len(rows) == 50 and all(isinstance(r["answer"], int) for r in rows)
    # the numbers in the text give the answer (spot-check a hand-read row)
    assert rows[0]["problem"].startswith("Ada buys 2 boxes of pencils with 9 pencils")
    assert rows[0]["answer"] == 2 * 9 + 5


def test_shipped_sets_load_with_targets() -> None:
    arith = load_dataset(DATA / "arithmetic.jsonl")
    assert len(arith) == 50 and arith.target == "answer" and arith.rows[0].id == "arith-001"
    qa = load_dataset(DATA / "qa.jsonl")
    assert qa.rows[1].target == ["8", "eight"]
    people = load_dataset(DATA / "extraction.jsonl")
    assert people.target == "target" and people.rows[0].target["city"] == "Valencia"


def test_selection(tmp_path: Path) -> None:
    ds = load_dataset(DATA / "arithmetic.jsonl", rows="3-6")
    assert [r.id for r in ds.rows] == ["arith-003", "arith-004", "arith-005", "arith-006"]
    ds = load_dataset(DATA / "arithmetic.jsonl", ids="arith-010,arith-002")
    assert [r.id for r in ds.rows] == ["arith-010", "arith-002"]
    a = load_dataset(DATA / "arithmetic.jsonl", shuffle=True, seed=7, limit=5)
    b = load_dataset(DATA / "arithmetic.jsonl", shuffle=True, seed=7, limit=5)
    c = load_dataset(DATA / "arithmetic.jsonl", shuffle=True, seed=8, limit=5)
    assert [r.id for r in a.rows] == [r.id for r in b.rows] != [r.id for r in c.rows]


def test_ids_are_line_numbers_without_an_id_column(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"q": "a"}\n\n{"q": "b"}\n')
    assert [r.id for r in load_dataset(f).rows] == ["1", "3"]
    rows = load_dataset([{"q": "a", "answer": 1}, {"q": "b", "answer": 2}])
    assert [(r.id, r.target) for r in rows.rows] == [("1", 1), ("2", 2)]


def test_bind_maps_inputs_and_names_a_missing_column() -> None:
    ds = load_dataset(DATA / "qa.jsonl", limit=2)
    bound = ds.bind(["q"], {"q": "question"})
    assert bound.rows[0].inputs == {"q": "What is the capital of France?"}
    with pytest.raises(DatasetError, match=r"row qa-01 lacks the column 'problem'") as e:
        ds.bind(["problem"], None)
    assert "--map problem=COLUMN" in e.value.message
    with pytest.raises(DatasetError, match="does not take"):
        ds.bind(["question"], {"nope": "question"})


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.jsonl", '{"a": 1}\n{"a": \n', "line 2 is not JSON"),
        ("list.jsonl", "[1, 2]\n", "line 1 holds a list"),
        ("empty.jsonl", "\n", "has no rows"),
        ("bad.csv", "a,b\n1,2,3\n", "more fields than the header"),
        ("data.txt", "hello", "reads .jsonl"),
        ("dup.jsonl", '{"id": 1}\n{"id": 1}\n', "two rows with the id '1'"),
    ],
)
def test_malformed_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(DatasetError, match=message):
        load_dataset(f)


def test_missing_file_and_bad_options(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="There is no dataset file"):
        load_dataset(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="--rows takes A-B"):
        load_dataset(DATA / "qa.jsonl", rows="x-y")
    with pytest.raises(DatasetError, match="no column 'gold'"):
        load_dataset(DATA / "qa.jsonl", target="gold")
    with pytest.raises(DatasetError, match="no row with the id 'zz'"):
        load_dataset(DATA / "qa.jsonl", ids=["zz"])


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("d.csv", "id,text,target\nr1,hello,a\nr2,world,b\n"),
        ("d.tsv", "id\ttext\ttarget\nr1\thello\ta\nr2\tworld\tb\n"),
        (
            "d.jsonl",
            '{"id": "r1", "text": "hello", "target": "a"}\n{"id": "r2", "text": "world"}\n',
        ),
        ("d.json", '[{"id": "r1", "text": "hello", "target": "a"}, {"id": "r2", "text": "x"}]'),
    ],
)
def test_a_byte_order_mark_is_not_part_of_the_first_column(
    tmp_path: Path, name: str, text: str
) -> None:
    f = tmp_path / name
    f.write_bytes(b"\xef\xbb\xbf" + text.encode())  # what spreadsheets write as "UTF-8 CSV"
    ds = load_dataset(f)
    assert [r.id for r in ds.rows] == ["r1", "r2"]
    assert set(ds.rows[0].columns) == {"id", "text", "target"}
    assert ds.rows[0].target == "a"
