"""Labels page (AppTest): labels created one after another through the form, without touching
the colour picker, get different palette colours (issue #11: all came out #e6194b)."""

from __future__ import annotations

from endolite.records import Role
from endolite.storage import connect, labels
from tests.support import make_user, page


def _add(at, name: str):
    at.text_input(key="label_name").input(name)
    next(b for b in at.button if b.label == "Add label").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def test_labels_added_in_a_row_get_different_colours(app_env):
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD)
    at = page("views/labels.py", lead).run()
    for name in ("polyp", "instrument", "blood"):
        _add(at, name)
    colours = [labels.get_by_name(con, n).color for n in ("polyp", "instrument", "blood")]
    assert len(set(colours)) == 3, colours
    assert at.text_input(key="label_name").value == "", "the name is cleared for the next label"
    assert colours[0] == "#e6194b" and colours[1] == "#3cb44b", "the palette, in order"
    assert at.color_picker(key="label_color").value == labels.next_color(con), \
        "the picker offers the next free colour"


def test_a_colour_chosen_in_the_picker_is_kept(app_env):
    con = connect(app_env)
    lead = make_user(con, "lena", Role.LEAD)
    at = page("views/labels.py", lead).run()
    at.color_picker(key="label_color").pick("#123456")
    _add(at, "polyp")
    assert labels.get_by_name(con, "polyp").color == "#123456"
    _add(at, "instrument")
    assert labels.get_by_name(con, "instrument").color == "#e6194b", "next free palette colour"
