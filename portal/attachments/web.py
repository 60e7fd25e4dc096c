"""Receiving a multipart body whose file part streams into an UploadSink (used by the
report attachments page and by dialogue messages). The caller has already asked the
policy; the CSRF token is checked here, after parsing, since it travels in the body."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import request
from flask_babel import gettext as _
from flask_wtf.csrf import validate_csrf
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from wtforms import ValidationError

from portal.attachments import services
from portal.core.service import ServiceError


@dataclass
class Received:
    form: MultiDict
    filename: str | None
    sink: services.UploadSink | None
    sinks: list = field(default_factory=list)

    def abort(self) -> None:
        for s in self.sinks:
            s.abort()


class UploadRefused(ServiceError):
    def __init__(self, message: str, reason: str, status: int = 400):
        super().__init__(message, reason=reason)
        self.status = status


def receive(store, limit: int, *, file_field: str = "file") -> Received:
    sinks: list[services.UploadSink] = []

    def factory(total_content_length=None, content_type=None, filename=None, content_length=None):
        if sinks:
            raise UploadRefused(_("Upload one file at a time."), "several_files")
        sinks.append(services.UploadSink(store, limit))
        return sinks[0]

    request.max_content_length = limit + 256 * 1024
    request._get_file_stream = factory  # type: ignore[method-assign]
    try:
        files, form = request.files, request.form
    except RequestEntityTooLarge:
        _abort(sinks)
        raise UploadRefused(_("The file is larger than %(mb)d MB.", mb=limit // (1024 * 1024)), "too_large", 413)
    except UploadRefused:
        _abort(sinks)
        raise
    except BadRequest:
        _abort(sinks)
        raise UploadRefused(_("The upload did not arrive complete. Try again."), "broken_upload")
    if any("\x00" in v for v in form.values()):
        _abort(sinks)
        raise UploadRefused(_("The request could not be understood. Go back and try again."), "nul_in_form")
    try:
        validate_csrf(form.get("csrf_token"))
    except ValidationError:
        _abort(sinks)
        raise UploadRefused(_("The page was open too long or was sent twice. Go back, reload the page and try again."),
                            "csrf")
    upload = files.get(file_field)
    sink = sinks[0] if sinks else None
    if upload is not None and not upload.filename and sink is not None and sink.size == 0:
        # An empty file input: the browser sent no file.
        sink.abort()
        sink = None
        sinks = []
    return Received(form=form, filename=upload.filename if upload is not None and sink else None, sink=sink,
                    sinks=sinks)


def _abort(sinks) -> None:
    for s in sinks:
        s.abort()
