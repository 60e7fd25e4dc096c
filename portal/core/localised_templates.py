"""Templates compiled once per language, their constant messages translated as they compile.

A template says ``{{ _("Reference") }}``. Run as written, that is a call through Jinja's
context, a catalogue look-up and an escape each time the line runs. A list page repeats each
column's name in every row (the stacked table's ``data-label``), about a thousand escapes a
page, and a case page translates about a hundred messages (bench/profile_case.py). The
catalogues do not change while the process runs. So each template is compiled once per
language, and a message given as a literal is looked up when the template compiles:

- ``_("Reference")`` becomes the translated text, which Jinja writes out like the markup
  around it;
- ``_("Due %(date)s", date=d)`` becomes the translated format string, formatted (its values
  escaped) as the template runs.

Both give what ``portal.core.i18n.template_gettext`` gives at run time.

The language is the request's (``i18n.language()``, which ``force_locale`` also sets). Outside
any request there is none, and the template is compiled as written. A template may not bind
``_`` or ``gettext`` itself: an included template sees its includer's names, so that would
change what another template's messages mean. Compiling such a template fails, in every
language."""
from __future__ import annotations

from flask.templating import Environment
from flask_babel import force_locale
from jinja2 import TemplateAssertionError, nodes
from jinja2.visitor import NodeTransformer

from portal.core import i18n

MESSAGE_FUNCTIONS = ("_", "gettext")
CACHE_SIZE = 400  # Jinja's default, per language


class LocalisedEnvironment(Environment):
    """Flask's environment, which hands each language's templates to an overlay of itself (the
    same loader, globals and filters, its own cache) compiled for that language."""

    language: str | None = None  # set on an overlay: the language its templates are compiled for

    def for_language(self, language: str) -> LocalisedEnvironment:
        """The overlay that compiles for ``language`` (made once), or this environment when
        ``language`` is none of the portal's."""
        if self.language is not None or language not in i18n.LANGUAGES:
            return self
        overlays = self.__dict__.setdefault("_overlays", {})
        env = overlays.get(language)
        if env is None:
            env = self.overlay(cache_size=CACHE_SIZE)
            env.language = language
            env = overlays.setdefault(language, env)  # another thread may have made one first
        return env

    def _current(self) -> LocalisedEnvironment:
        return self if self.language is not None else self.for_language(i18n.language())

    def get_template(self, name, parent=None, globals=None):
        env = self._current()
        if env is self:
            return super().get_template(name, parent, globals)
        return env.get_template(name, parent, globals)

    def select_template(self, names, parent=None, globals=None):
        env = self._current()
        if env is self:
            return super().select_template(names, parent, globals)
        return env.select_template(names, parent, globals)

    def _generate(self, source, name, filename, defer_init=False):
        # Jinja's documented hook between parsing and code generation.
        _refuse_rebinding(source, name)
        if self.language is not None:
            source = _translate_literals(source, self.language)
        return super()._generate(source, name, filename, defer_init=defer_init)


def _refuse_rebinding(template: nodes.Template, name: str | None) -> None:
    for node in template.find_all(nodes.Name):
        if node.name in MESSAGE_FUNCTIONS and node.ctx in ("store", "param"):
            raise TemplateAssertionError(f"{node.name!r} names the message function: use another name",
                                         node.lineno, name)
    for node in template.find_all(nodes.FromImport):
        for imported in node.names:
            if (imported[1] if isinstance(imported, tuple) else imported) in MESSAGE_FUNCTIONS:
                raise TemplateAssertionError("an import may not be named like the message function",
                                             node.lineno, name)


def _translate_literals(template: nodes.Template, language: str) -> nodes.Template:
    with force_locale(language):
        if i18n.language() != language:  # no context to find the catalogue in: compiled as written
            return template
        catalogue = i18n.translations()
    return _Literals(catalogue.ugettext).visit(template)


class _Literals(NodeTransformer):
    def __init__(self, translate):
        self.translate = translate

    def visit_Call(self, node: nodes.Call) -> nodes.Node:
        node = self.generic_visit(node)  # a message inside another call's arguments, too
        if not (isinstance(node.node, nodes.Name) and node.node.name in MESSAGE_FUNCTIONS
                and len(node.args) == 1 and isinstance(node.args[0], nodes.Const)
                and isinstance(node.args[0].value, str) and node.dyn_args is None and node.dyn_kwargs is None):
            return node
        text = self.translate(node.args[0].value)
        lineno = node.lineno
        if not node.kwargs:
            if "%" in text:  # "%%" is a percent sign, as template_gettext formats it
                try:
                    text = text % {}
                except (KeyError, TypeError, ValueError):
                    return node  # fails when it runs, as it would have
            return nodes.MarkSafeIfAutoescape(nodes.Const(text, lineno=lineno), lineno=lineno)
        variables = nodes.Dict([nodes.Pair(nodes.Const(k.key, lineno=lineno), k.value, lineno=lineno)
                                for k in node.kwargs], lineno=lineno)
        return nodes.Mod(nodes.MarkSafeIfAutoescape(nodes.Const(text, lineno=lineno), lineno=lineno), variables,
                         lineno=lineno)
