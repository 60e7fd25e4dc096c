// Attachment upload with a progress bar (forms marked data-upload). Without script, or in a
// browser without XHR upload events, the form posts as an ordinary form; the server's answer
// is the same page either way. No inline script: the texts come from the form's data-* attributes.
(function () {
  "use strict";

  function parts(form) {
    var box = form.querySelector("[data-upload-progress]");
    return {
      button: form.querySelector("button[type=submit]"),
      box: box,
      bar: box && box.querySelector("progress"),
      status: box && box.querySelector("[role=status]"),
      error: form.querySelector("[data-upload-error]"),
      group: form.querySelector("[data-upload-group]"),
      input: form.querySelector("input[type=file]")
    };
  }

  function showError(form, text) {
    var p = parts(form);
    if (p.button) { p.button.disabled = false; }
    if (p.box) { p.box.hidden = true; }
    if (p.error) {
      p.error.textContent = "＊" + text;
      p.error.hidden = false;
      p.error.setAttribute("role", "alert");
    }
    if (p.group) { p.group.classList.add("form-group--error"); }
    if (p.input) {
      p.input.setAttribute("aria-invalid", "true");
      p.input.setAttribute("aria-describedby", "file-hint file-error");
      p.input.focus();
    }
  }

  function clearError(form) {
    var p = parts(form);
    if (p.error) { p.error.hidden = true; p.error.textContent = ""; }
    if (p.group) { p.group.classList.remove("form-group--error"); }
    if (p.input) { p.input.removeAttribute("aria-invalid"); p.input.setAttribute("aria-describedby", "file-hint"); }
  }

  // The server answered with a page (the list with the new file and its notice, or the form
  // with the reason it refused): show it as an ordinary submission would have.
  function showPage(doc, url) {
    document.title = doc.title;
    document.body.replaceWith(document.adoptNode(doc.body));
    if (url && window.history && window.history.replaceState) { window.history.replaceState(null, "", url); }
    // Let portal.js wire up the new page (focus on an error summary, double-submit guards).
    document.dispatchEvent(new Event("DOMContentLoaded"));
    window.scrollTo(0, 0);
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-upload")) { return; }
    if (!window.FormData || !window.XMLHttpRequest || !("upload" in new XMLHttpRequest())) { return; }
    var p = parts(form);
    if (!p.box || !p.bar || !p.status) { return; }
    ev.preventDefault();
    if (p.button && p.button.disabled) { return; }  // already sending
    clearError(form);
    var limit = parseInt(form.getAttribute("data-upload-limit"), 10);
    var file = p.input && p.input.files && p.input.files[0];
    if (file && limit && file.size > limit) {
      // Said at once rather than after sending a file the server will refuse.
      showError(form, form.getAttribute("data-upload-too-large"));
      return;
    }
    var sending = form.getAttribute("data-upload-sending") || "{percent}";
    var failed = form.getAttribute("data-upload-failed") || "";
    if (p.button) { p.button.disabled = true; }
    p.box.hidden = false;
    p.bar.value = 0;
    p.status.textContent = sending.replace("{percent}", "0");

    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.responseType = "document";
    xhr.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) { return; }
      var percent = Math.floor(e.loaded * 100 / e.total);
      p.bar.value = percent;
      p.status.textContent = sending.replace("{percent}", String(percent));
    });
    xhr.upload.addEventListener("load", function () {
      p.bar.removeAttribute("value");  // indeterminate while the server encrypts and checks
      p.status.textContent = form.getAttribute("data-upload-waiting") || "";
    });
    xhr.addEventListener("load", function () {
      var doc = xhr.response;
      if (xhr.status === 0 || !doc || !doc.body) { showError(form, failed); return; }
      showPage(doc, xhr.responseURL);
    });
    xhr.addEventListener("error", function () { showError(form, failed); });
    xhr.addEventListener("abort", function () { showError(form, failed); });
    xhr.send(new FormData(form));
  });
})();
