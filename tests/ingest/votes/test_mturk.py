"""MTurk batch results as requesters' own templates write them (``ingest/votes/mturk.py``)."""

import pytest

from ingest.votes.mturk import MTurkExport, detect, read
from sluice.errors import InputError

HEAD = "HITId,AssignmentId,WorkerId,AssignmentStatus"


def test_the_input_and_answer_columns_are_found_by_their_names(tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text(f"{HEAD},Input.batch,Input.img,Answer.category.label\nH1,A1,W1,Approved,b1,cat/1.jpg,Cat\n")
    assert detect(str(path)) == {"item_column": "Input.img", "label_column": "Answer.category.label"}
    path.write_text(f"{HEAD},Input.image_url,Answer.label\nH1,A1,W1,Approved,x.jpg,cat\n")
    assert detect(str(path)) == {}  # Amazon's template: the defaults
    path.write_text(f"{HEAD},Input.photo_link,Answer.taskAnswers,Answer.comment\nH1,A1,W1,Approved,x.jpg,[],\n")
    assert detect(str(path)) == {"item_column": "Input.photo_link", "label_column": "Answer.taskAnswers"}
    path.write_text(f"{HEAD},Input.a,Input.b,Answer.label\nH1,A1,W1,Approved,x,y,cat\n")
    with pytest.raises(InputError, match="cannot tell which Input. column names the image .found Input.a, Input.b"):
        detect(str(path))


def test_a_radio_button_answer_is_the_option_checked(tmp_path):
    """crowd-radio-button / crowd-checkbox write [{"cat": {"on": true}, "dog": {"on": false}}] to taskAnswers."""
    path = tmp_path / "batch.csv"
    rows = ['[{""cat"":{""on"":false},""dog"":{""on"":true}}]', '[{""animal"":{""cat"":true,""dog"":false}}]',
            '[{""crowd-image-classifier"":{""label"":""Cat""}}]']
    path.write_text(f"{HEAD},Input.image_url,Answer.taskAnswers\n"
                    + "".join(f'H1,A{k},W{k},Approved,x.jpg,"{r}"\n' for k, r in enumerate(rows)))
    votes = read(MTurkExport(name="m", kind="mturk", path=str(path), label_column="Answer.taskAnswers")).votes
    assert votes["label"].to_list() == ["dog", "cat", "Cat"]
