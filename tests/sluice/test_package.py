"""`sluice.connect()` and `sluice.table()` for notebooks: the same answer as `sluice sql`."""

from __future__ import annotations

import pytest

import sluice
from sluice.config import load_params
from sluice.errors import InputError
from tests.sluice.test_sql import filled  # noqa: F401  (fixture)


@pytest.fixture
def in_lake(filled, tmp_path, monkeypatch):  # noqa: F811
    path = tmp_path / "params.yaml"
    path.write_text(f"lake:\n  root: {filled.root}\n")
    monkeypatch.setenv("SLUICE_PARAMS", str(path))
    load_params.cache_clear()
    yield filled
    load_params.cache_clear()


def test_connect_table_polars_pandas_agree(in_lake):
    con = sluice.connect()  # keep it: a DuckDB relation does not keep its connection alive
    duck = con.sql("select source, count(*) n from raw_images group by 1 order by 1").fetchall()
    pl_df = sluice.table("raw_images")
    polars = sorted(pl_df.group_by("source").len().rows())
    pandas = sorted(sluice.table("raw_images", to="pandas").groupby("source").size().items())
    assert duck == polars == pandas == [("a", 4), ("b", 6)]
    assert sluice.table("raw_images", version="@1", to="arrow").num_rows == 4
    assert sluice.connect({"raw_images": 1}).execute("select count(*) from raw_images").fetchone() == (4,)
    with pytest.raises(InputError, match="does not exist yet"):
        sluice.table("labels")
    with pytest.raises(InputError, match="expected 'polars'"):
        sluice.table("raw_images", to="excel")
