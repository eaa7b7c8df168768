"""The vote connectors as registry entries: labels.exports validated by kind, mistakes named."""

from __future__ import annotations

import pytest

from ingest.votes.ground_truth import GroundTruthExport
from ingest.votes.label_studio import LabelStudioExport
from ingest.votes.labelbox import LabelboxExport
from ingest.votes.mturk import MTurkExport
from ingest.votes.nested import NestedVotesExport
from ingest.votes.plain_csv import CsvVotesExport
from ingest.votes.wide import WideVotesExport
from sluice.connectors import connectors
from sluice.errors import ConfigError


def test_the_seven_kinds_are_registered():
    found = connectors("votes")
    assert {k: c.config for k, c in found.items()} == {"csv": CsvVotesExport, "ground_truth": GroundTruthExport,
                                                       "label_studio": LabelStudioExport, "labelbox": LabelboxExport,
                                                       "mturk": MTurkExport, "nested": NestedVotesExport,
                                                       "wide": WideVotesExport}


def test_exports_are_validated_by_their_kind(make_params):
    params = make_params({"labels": {"exports": [
        {"name": "m", "kind": "mturk", "path": "m.csv", "item_key": "file_name"},
        {"name": "c", "kind": "csv", "path": "v.csv", "item_key": "column:item_id", "item_pattern": r"task-(\d+)"}]}})
    m, c = params.labels.exports
    assert isinstance(m, MTurkExport) and m.item_key == "file_name" and m.item_column == "Input.image_url"
    assert isinstance(c, CsvVotesExport) and c.item_pattern == r"task-(\d+)"


@pytest.mark.parametrize("entry, message", [
    ({"name": "c", "kind": "csv", "path": "v.csv", "item_colum": "x"}, "unknown key 'item_colum'; allowed keys: class_names, delimiter, header, item_column"),
    ({"name": "c", "kind": "tsv", "path": "v.csv"}, "unknown kind 'tsv'; known kinds: csv, ground_truth, label_studio, labelbox, mturk, nested, wide"),
    ({"name": "c", "kind": "csv", "path": "v.csv", "item_key": "image"}, "item_key: item_key must be one of auto"),
    ({"name": "c", "kind": "csv", "path": "v.csv", "item_pattern": "("}, "not a valid regular expression"),
])
def test_mistakes_are_one_line_config_errors(make_params, entry, message):
    with pytest.raises(ConfigError) as err:
        make_params({"labels": {"exports": [entry]}})
    assert "labels.exports.0" in str(err.value) and message in str(err.value)
