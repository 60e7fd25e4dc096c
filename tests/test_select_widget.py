"""The portal's select writes the same markup as WTForms' own (portal.core.forms.Select)."""
from hypothesis import given, settings, strategies as st
from wtforms import Form, widgets
from wtforms import SelectField as LibrarySelectField
from wtforms.fields.choices import Choice

from portal.core.forms import Select, SelectField

texts = st.text(alphabet=st.sampled_from(list('ab&<>"\'# 　秘密区分') + ["\u00e9"]), max_size=12)
values = st.one_of(texts, st.integers(-5, 500), st.booleans())


@settings(max_examples=300, deadline=None)
@given(value=values, label=st.one_of(st.none(), texts), selected=st.booleans())
def test_a_plain_option_is_the_librarys(value, label, selected):
    choice = Choice(value=value, label=label, selected=selected, render_kw=None)
    assert Select.render_option(choice) == widgets.Select.render_option(choice)


@settings(max_examples=100, deadline=None)
@given(value=texts, label=texts, selected=st.booleans(), extra=st.dictionaries(st.sampled_from(["disabled", "data_x"]),
                                                                                  st.one_of(st.booleans(), texts), max_size=2))
def test_an_option_with_attributes_of_its_own_is_the_librarys(value, label, selected, extra):
    choice = Choice(value=value, label=label, selected=selected, render_kw=extra or None)
    assert Select.render_option(choice) == widgets.Select.render_option(choice)


@settings(max_examples=100, deadline=None)
@given(choices=st.lists(st.tuples(texts, texts), min_size=0, max_size=6, unique_by=lambda c: c[0]),
       pick=st.integers(0, 6), attrs=st.dictionaries(st.sampled_from(["class_", "aria_describedby", "required"]),
                                                        texts, max_size=3))
def test_a_whole_select_is_the_librarys(choices, pick, attrs):
    class Ours(Form):
        f = SelectField("F", choices=choices, validate_choice=False)

    class Theirs(Form):
        f = LibrarySelectField("F", choices=choices, validate_choice=False)

    data = {"f": choices[pick][0]} if pick < len(choices) else {}
    ours, theirs = Ours(data=data), Theirs(data=data)
    assert ours.f(**attrs) == theirs.f(**attrs)
    assert "<option" in ours.f() or not choices
