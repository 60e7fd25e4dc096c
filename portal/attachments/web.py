"""Receiving a multipart body whose file part streams into an UploadSink (used by the
report attachments page and by dialogue messages). The caller has already asked the
policy; the CSRF token is checked here, after parsing, since it travels in the body, and
the policy is asked again once the body is in (the request path held no transaction while
it arrived: portal.core.guard)."""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import flash, request
from flask_wtf.csrf import validate_csrf
from werkzeug.datastructures import ImmutableMultiDict, MultiDict
from werkzeug.exceptions import BadRequest, ClientDisconnected, RequestEntityTooLarge
from wtforms import ValidationError

from portal.attachments import scanning, services
from portal.core.guard import authenticated_by_token, decide_again
from portal.core.i18n import gettext as _
from portal.core.service import ServiceError
from portal.core.web import settings


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
    """Each file part is streamed to clamd as it is encrypted (portal.attachments.scanning),
    whatever the route: the verdict is on the sink when the body has ended."""
    scanner = scanning.scanner_for(settings())
    sinks: list[services.UploadSink] = []

    def factory(total_content_length=None, content_type=None, filename=None, content_length=None):
        if sinks:
            raise UploadRefused(_("Upload one file at a time."), "several_files")
        sinks.append(services.UploadSink(store, limit, scan=scanning.UploadScan(scanner)))
        return sinks[0]

    request.max_content_length = limit + 256 * 1024
    request._get_file_stream = factory  # type: ignore[method-assign]
    request.environ["wsgi.input"] = _WholeBody(request.environ["wsgi.input"], request.content_length)
    try:
        try:
            files, form = request.files, request.form
        except BaseException:
            _abort(sinks)
            # Whatever reads the form later (the page that shows the refusal) must not parse
            # the rest of the body again.
            request.form = request.files = ImmutableMultiDict()  # type: ignore[misc]
            raise
    except RequestEntityTooLarge:
        raise UploadRefused(_("The file is larger than %(mb)d MB.", mb=limit // (1024 * 1024)), "too_large", 413) from None
    except ClientDisconnected:
        # Cut off half-way: the client went away, or the server closed a client too slow.
        raise UploadRefused(_("The upload did not arrive complete. Try again."), "incomplete") from None
    except BadRequest:
        raise UploadRefused(_("The upload did not arrive complete. Try again."), "broken_upload") from None
    if any("\x00" in v for v in form.values()):
        _abort(sinks)
        raise UploadRefused(_("The request could not be understood. Go back and try again."), "nul_in_form")
    try:
        if not authenticated_by_token():  # an API client sends no CSRF token (portal.core.guard)
            validate_csrf(form.get("csrf_token"))
    except ValidationError:
        _abort(sinks)
        raise UploadRefused(_("The page was open too long or was sent twice. Go back, reload the page and try again."),
                            "csrf")
    try:
        decide_again()
    except BaseException:
        _abort(sinks)
        raise
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


class _WholeBody:
    """The request body as the parser reads it. A body that ends before its Content-Length
    is a client that went away, not a shorter form: Werkzeug would otherwise parse what came
    as a form without its later fields (and call a cut-off upload a missing CSRF token)."""

    def __init__(self, stream, expected: int | None):
        self.stream = stream
        self.expected = expected
        self.seen = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.seen += len(data)
        if not data and size != 0 and self.expected is not None and self.seen < self.expected:
            raise ClientDisconnected()
        return data


def flash_verdict(att: services.Attachment) -> None:
    """Tell the uploader what the malware scan made of the file (also for message files)."""
    if att.scan_state == "clean":
        flash(_("The file %(name)s has been encrypted and attached.", name=att.filename), "success")
    elif att.scan_state == "infected":
        flash(_("The file %(name)s was refused: %(why)s. Nobody can open it; it is kept for the record.",
                name=att.filename, why=att.scan_signature), "error")
    else:
        flash(_("The file %(name)s has been encrypted and attached. It is being checked for malware and can be "
                "opened once the check is done.", name=att.filename), "warning")
