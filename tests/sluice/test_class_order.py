"""What the class indices of crowd votes name, read from the folders of the images they name."""

from sluice.class_order import class_list, folded, from_votes, ordered

FILES = [("train/highway/h1.jpg", "highway"), ("train/highway/h2.jpg", "highway"), ("train/forest/f1.jpg", "forest"),
         ("train/forest/f2.jpg", "forest"), ("train/insidecity/c1.jpg", "insidecity"),
         ("train/insidecity/c2.jpg", "insidecity")]


def test_each_index_is_the_folder_most_of_its_votes_images_lie_in():
    """LabelMe numbers highway 0, insidecity 1, forest 2: not the folders' sorted order; one vote in four wrong."""
    items = ["h1.jpg", "h2.jpg", "h1.jpg", "f1.jpg", "c1.jpg", "c2.jpg", "c1.jpg", "h2.jpg",
             "f1.jpg", "f2.jpg", "f2.jpg", "c1.jpg"]
    labels = ["0", "0", "0", "0", "1", "1", "1", "1", "2", "2", "2", "2"]
    assert from_votes(items, labels, FILES) == (["highway", "insidecity", "forest"], 12)


def test_names_from_other_machines_and_paths_resolve():
    items = ["https://bucket/x/highway/h1.jpg?sig=1", "D:\\set\\train\\highway\\h2.jpg", "train/highway/h1.jpg",
             "forest/f1.jpg", "forest/f2.jpg", "f1.jpg"]
    assert from_votes(items, ["0", "0", "0", "1", "1", "1"], FILES) == (["highway", "forest"], 6)


def test_nothing_is_guessed_without_enough_evidence():
    assert from_votes(["h1.jpg", "h2.jpg"], ["0", "0"], FILES) is None  # two votes: fewer than MIN_VOTES
    assert from_votes(["h1.jpg"] * 3 + ["f1.jpg"] * 3, ["0"] * 3 + ["2"] * 3, FILES) is None  # index 1: no votes
    split = ["h1.jpg", "f1.jpg", "c1.jpg", "h2.jpg"]
    assert from_votes(split, ["0"] * 4, FILES) is None  # no majority
    assert from_votes(["h1.jpg"] * 3 + ["h2.jpg"] * 3, ["0"] * 3 + ["1"] * 3, FILES) is None  # two indices, one class
    shared = FILES + [("val/forest/h1.jpg", "forest")]  # a file name two folders share names neither
    assert from_votes(["h1.jpg"] * 3, ["0"] * 3, shared) is None
    assert from_votes(["cat", "dog"], ["cat", "dog"], FILES) is None  # names, not indices


def test_class_list_keeps_the_declared_order_then_adds_what_was_found():
    assert ordered(["10", "9", "1"]) == ["1", "9", "10"] and ordered(["b", "10", "a"]) == ["10", "a", "b"]
    assert class_list(["dog", "cat"], ["cat", "bird", "dog", "ant"]) == ["dog", "cat", "ant", "bird"]
    assert class_list(None, ["12", "2", "1"]) == ["1", "2", "12"]
    assert class_list(["a", "a"], []) == ["a"]


def test_names_differing_only_in_case_fold_to_one():
    assert folded(["dog", "cat", "Cat", "CAT"]) == (["CAT", "dog"], [["CAT", "Cat", "cat"]])
    assert folded(["2", "10"]) == (["2", "10"], [])
