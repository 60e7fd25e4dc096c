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

Both give what ``portal.core.i18n.template_gettext`` gives at run time. Only a message written
out as it is (``{{ _("…") }}``, or a branch of ``{{ a if c else b }}``) is replaced: Jinja
folds constants, and a constant joined with ``~`` or passed through a filter would be joined
as plain text or filtered as the template compiles, not as it runs; those stay calls.

The language is the request's (``i18n.language()``, which ``force_locale`` also sets). Outside
any request there is none, and the template is compiled as written. Nothing may give ``_`` or
``gettext`` another meaning: a template that binds either (a variable, a macro, an import)
fails to compile, in every language (an included template sees its includer's names), and
``render_template`` with a context that names either fails."""
from __future__ import annotations

from flask import before_render_template
from flask.templating import Environment
from flask_babel import force_locale
from jinja2 import TemplateAssertionError, nodes
from jinja2.visitor import NodeTransformer

from portal.core import i18n

MESSAGE_FUNCTIONS = ("_", "gettext")
CACHE_SIZE = 400  # Jinja's default, per language


def init_app(app) -> None:
    """Before anything makes ``app.jinja_env``."""
    app.jinja_environment = LocalisedEnvironment
    before_render_template.connect(refuse_message_names, app)


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

    @property
    def auto_reload(self) -> bool:
        # Flask sets it on app.jinja_env (debug, TEMPLATES_AUTO_RELOAD); the overlays follow.
        return self.linked_to.auto_reload if self.language is not None else self._auto_reload

    @auto_reload.setter
    def auto_reload(self, value: bool) -> None:
        self._auto_reload = value

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


def refuse_message_names(sender, template, context, **extra) -> None:
    """``before_render_template``: a render's own names come before the globals."""
    for bound in MESSAGE_FUNCTIONS:
        if bound in context:
            raise RuntimeError(f"{template.name}: {bound!r} in the render's context names the message function")


def _refuse_rebinding(template: nodes.Template, name: str | None) -> None:
    bound = [(n.name, n.lineno) for n in template.find_all(nodes.Name) if n.ctx in ("store", "param")]
    bound += [(n.name, n.lineno) for n in template.find_all(nodes.Macro)]
    bound += [(n.target, n.lineno) for n in template.find_all(nodes.Import)]
    for node in template.find_all(nodes.FromImport):
        bound += [(i[1] if isinstance(i, tuple) else i, node.lineno) for i in node.names]
    for bound_name, lineno in bound:
        if bound_name in MESSAGE_FUNCTIONS:
            raise TemplateAssertionError(f"{bound_name!r} names the message function: use another name",
                                         lineno, name)


def _translate_literals(template: nodes.Template, language: str) -> nodes.Template:
    if i18n.language() == language:  # as a template is compiled: for the request's language
        catalogue = i18n.translations()
    else:
        with force_locale(language):
            if i18n.language() != language:  # no context to find the catalogue in: compiled as written
                return template
            catalogue = i18n.translations()
    return _Literals(catalogue.ugettext).visit(template)


class _Literals(NodeTransformer):
    """Replaces the messages an Output writes out as they are (or as a branch of a condition)."""

    def __init__(self, translate):
        self.translate = translate

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        node.nodes = [self._written(child) for child in node.nodes]
        return self.generic_visit(node)

    def _written(self, node: nodes.Node) -> nodes.Node:
        if isinstance(node, nodes.CondExpr):
            node.expr1 = self._written(node.expr1)
            node.expr2 = node.expr2 and self._written(node.expr2)
            return node
        return self._translated(node) if isinstance(node, nodes.Call) else node

    def _translated(self, node: nodes.Call) -> nodes.Node:
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
