"""ImageNet's WordNet-id class folders named from the mapping file beside them (sluice/synsets.py)."""

from __future__ import annotations

from sluice import synsets


def test_ids_are_named_from_the_mapping_file_found_above_the_source(tmp_path):
    """Kaggle's layout: ILSVRC/Data/CLS-LOC/train/<wnid>/ with LOC_synset_mapping.txt at the top; ImageNet's two
    `crane` classes are kept apart by their ids; a class the file does not name, or a folder that is no id, names
    nothing (the folders stay as they are)."""
    (tmp_path / "LOC_synset_mapping.txt").write_text(
        "n01440764 tench, Tinca tinca\nn02012849 crane\nn03126707 crane\nn02102040 English springer, springer\n")
    source = tmp_path / "ILSVRC" / "Data" / "CLS-LOC"
    source.mkdir(parents=True)
    named, path = synsets.names(["n01440764", "n02012849", "n03126707", "n02102040"], source)
    assert path == tmp_path / "LOC_synset_mapping.txt"
    assert named == {"n01440764": "tench", "n02012849": "crane (n02012849)", "n03126707": "crane (n03126707)",
                     "n02102040": "English springer"}
    assert synsets.names(["n01440764", "n09999999"], source) is None
    assert synsets.names(["cat", "dog"], source) is None


def test_tiny_imagenet_words_are_tab_separated(tmp_path):
    (tmp_path / "words.txt").write_text("n01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander\n")
    assert synsets.names(["n01443537", "n01629819"], tmp_path)[0] == {"n01443537": "goldfish",
                                                                      "n01629819": "European fire salamander"}
