"""The portal's select and text area write the same markup as WTForms' own
(portal.core.forms.Select, TextArea, html_attributes)."""
from hypothesis import given, settings, strategies as st
from markupsafe import Markup
from wtforms import Form, widgets
from wtforms import SelectField as LibrarySelectField
from wtforms import TextAreaField as LibraryTextAreaField
from wtforms.fields.choices import Choice
from wtforms.validators import DataRequired

from portal.core.forms import Select, SelectField, TextAreaField, html_attributes

texts = st.text(alphabet=st.sampled_from(list('ab&<>"\'# 　秘密区分') + ["\u00e9"]), max_size=12)
values = st.one_of(texts, st.integers(-5, 500), st.booleans())
# Already-safe markup keeps its characters, a quote among them: written as the library does (&quot;).
option_values = st.one_of(values, texts.map(Markup))


@settings(max_examples=300, deadline=None)
@given(value=option_values, label=st.one_of(st.none(), texts), selected=st.booleans())
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


attr_names = st.sampled_from(["class_", "id", "name", "rows", "aria_describedby", "data_test_id", "for_", "required",
                              "maxlength", "disabled"])
attr_values = st.one_of(texts, st.integers(0, 30000), st.booleans(), texts.map(Markup))


@settings(max_examples=300, deadline=None)
@given(attrs=st.dictionaries(attr_names, attr_values, max_size=6))
def test_attributes_are_the_librarys(attrs):
    assert html_attributes(**attrs) == widgets.html_params(**attrs)


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(st.none(), texts), attrs=st.dictionaries(attr_names.filter(lambda n: n not in ("name",)),
                                                               attr_values, max_size=4),
       required=st.booleans())
def test_a_text_area_is_the_librarys(text, attrs, required):
    validators = [DataRequired()] if required else []

    class Ours(Form):
        f = TextAreaField("F", validators=validators)

    class Theirs(Form):
        f = LibraryTextAreaField("F", validators=validators)

    ours, theirs = Ours(data={"f": text}), Theirs(data={"f": text})
    assert ours.f(**attrs) == theirs.f(**attrs)
    assert ours.f().startswith("<textarea ")


@settings(max_examples=100, deadline=None)
@given(groups=st.dictionaries(texts, st.lists(st.tuples(texts, texts), max_size=3), min_size=1, max_size=3),
       attrs=st.dictionaries(st.sampled_from(["class_", "aria_describedby", "required"]), texts, max_size=2))
def test_a_select_with_option_groups_is_the_librarys(groups, attrs):
    class Ours(Form):
        f = SelectField("F", choices=groups, validate_choice=False)

    class Theirs(Form):
        f = LibrarySelectField("F", choices=groups, validate_choice=False)

    assert Ours().f(**attrs) == Theirs().f(**attrs)


def test_the_csrf_token_is_the_librarys(app):
    from flask_wtf import FlaskForm

    from portal.core.forms import BaseForm

    class Ours(BaseForm):
        pass

    class Theirs(FlaskForm):
        pass

    with app.test_request_context("/"):
        ours, theirs = Ours(), Theirs()
        assert ours.csrf_token.current_token == theirs.csrf_token.current_token
        assert str(ours.csrf_token()) == str(theirs.csrf_token(id=False))
        assert 'type="hidden"' in ours.csrf_token() and "id=" not in ours.csrf_token()
        # Attributes asked for still go through the library's widget.
        assert str(ours.csrf_token(data_x="1")) == str(theirs.csrf_token(id=False, data_x="1"))
