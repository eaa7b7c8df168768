import pytest

from sluice import connectors
from sluice.config import parse_params
from sluice.errors import ConfigError


def test_source_kinds_are_registered_with_their_models():
    found = connectors.connectors("source")
    assert set(found) >= {"image_folder", "cifar", "parquet"}
    for kind, connector in found.items():
        assert connector.family == "source" and connector.kind == kind and callable(connector.reader)
        assert connector.config.model_fields["kind"].annotation.__args__ == (kind,)


def test_get_unknown_kind_names_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown source kind 'zip'; known kinds: .*cifar.*image_folder.*parquet"):
        connectors.get("source", "zip")


def test_entries_are_validated_by_their_kind():
    params = parse_params({"ingest": {"sources": [{"name": "c", "kind": "cifar", "path": "p", "variant": "cifar100"}]}})
    src = params.ingest.sources[0]
    assert type(src) is connectors.get("source", "cifar").config and src.variant == "cifar100"
    assert params.model_dump()["ingest"]["sources"][0]["variant"] == "cifar100"
    assert parse_params(params.model_dump()).ingest.sources == params.ingest.sources  # round trip


@pytest.mark.parametrize("entry,message", [
    ({"name": "c", "kind": "cifar", "path": "p", "layot": "binary"},
     (r"unknown key 'ingest.sources.0.layot'; allowed keys in ingest.sources.0: kind, label_level, layout, license, "
      r"name, path, variant")),
    ({"name": "c", "path": "p"}, r"ingest.sources.0.kind: missing 'kind'; known kinds: cifar, hdf5, idx, image_folder, npz, parquet, pixel_csv, stl10, svhn, tfrecord, webdataset"),
    ({"name": "c", "kind": "cifar", "path": "p", "layout": "zip"}, r"ingest.sources.0.layout: input should be"),
    ("cifar", r"ingest.sources.0: must be a mapping with a 'kind' key"),
])
def test_entry_errors_name_the_key(entry, message):
    with pytest.raises(ConfigError, match=message):
        parse_params({"ingest": {"sources": [entry]}}, "p.yaml")
