// WebhookOps operator UI: the few things a server-rendered page cannot do
// alone. Every page works without it; it adds keyboard focus for search,
// copy buttons, confirm dialogs, choose-all boxes and the live tail.
"use strict";

// "/" focuses the page's search box, unless the user is typing somewhere.
// The keypress that may follow the keydown (synthetic input sends both)
// must not type the "/" into the box it just focused.
var swallowSlash = false;
document.addEventListener("keydown", function (e) {
  swallowSlash = false;
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
  var t = e.target;
  if (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)) return;
  var box = document.querySelector("[data-search]");
  if (!box) return;
  e.preventDefault();
  box.focus();
  box.select();
  swallowSlash = true;
});
document.addEventListener("keypress", function (e) {
  if (swallowSlash && e.key === "/") e.preventDefault();
  swallowSlash = false;
}, true);

// Copy buttons: data-copy names the element whose text is copied.
function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text);
  }
  return new Promise(function (resolve, reject) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand("copy");
    document.body.removeChild(area);
    if (ok) { resolve(); } else { reject(new Error("copy refused")); }
  });
}

document.addEventListener("click", function (e) {
  var btn = e.target.closest("[data-copy]");
  if (!btn) return;
  var src = document.getElementById(btn.dataset.copy);
  if (!src) return;
  var label = btn.dataset.label || btn.textContent;
  btn.dataset.label = label;
  copyText(src.textContent.trim()).then(function () {
    btn.textContent = "Copied";
    btn.classList.add("copied");
  }, function () {
    // Leave the text selected so Ctrl+C still works.
    var range = document.createRange();
    range.selectNodeContents(src);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    btn.textContent = "Press Ctrl+C";
  });
  setTimeout(function () { btn.textContent = label; btn.classList.remove("copied"); }, 2500);
});

// Destructive forms carry data-confirm: the <dialog> asks first. Escape
// or Cancel closes it and nothing is sent.
var pending = null;
document.addEventListener("submit", function (e) {
  var form = e.target;
  if (!form.dataset || !form.dataset.confirm || form.dataset.confirmed === "1") return;
  var dlg = document.getElementById("confirm");
  if (!dlg || typeof dlg.showModal !== "function") return;
  e.preventDefault();
  pending = { form: form, submitter: e.submitter || null };
  document.getElementById("confirm-text").textContent = form.dataset.confirm;
  dlg.returnValue = "";
  dlg.showModal();
  document.getElementById("confirm-cancel").focus();
});

var dialog = document.getElementById("confirm");
if (dialog) {
  dialog.addEventListener("close", function () {
    var p = pending;
    pending = null;
    if (!p || dialog.returnValue !== "ok") return;
    p.form.dataset.confirmed = "1";
    if (p.submitter) { p.form.requestSubmit(p.submitter); } else { p.form.requestSubmit(); }
  });
}

// A header box with data-select-all="name" ticks every box of that name.
document.addEventListener("change", function (e) {
  var all = e.target.closest("[data-select-all]");
  if (!all) return;
  var form = all.form || document;
  form.querySelectorAll('input[type=checkbox][name="' + all.dataset.selectAll + '"]').forEach(function (b) {
    b.checked = all.checked;
  });
});

// Live tail: while the box is ticked, the first page of the event list
// asks for its rows every three seconds and adds the new ones on top.
var live = document.querySelector("[data-live]");
var timer = null;
function tail() {
  var rows = document.getElementById("event-rows");
  var params = new URLSearchParams(location.search);
  params.set("rows", "1");
  fetch(location.pathname + "?" + params.toString(), { credentials: "same-origin", redirect: "error" })
    .then(function (r) {
      if (!r.ok) throw new Error("status " + r.status);
      return r.text();
    })
    .then(function (html) {
      var tpl = document.createElement("template");
      tpl.innerHTML = "<table><tbody>" + html + "</tbody></table>";
      var fresh = Array.prototype.slice.call(tpl.content.querySelectorAll("tr[data-id]"));
      var first = rows.firstElementChild;
      fresh.forEach(function (tr) {
        if (!rows.querySelector('tr[data-id="' + tr.dataset.id + '"]')) {
          tr.classList.add("new");
          rows.insertBefore(document.importNode(tr, true), first);
        }
      });
    })
    .catch(function () {
      live.checked = false;
      stopTail();
    });
}
function stopTail() {
  if (timer) { clearInterval(timer); timer = null; }
}
if (live) {
  live.addEventListener("change", function () {
    if (live.checked) { tail(); timer = setInterval(tail, 3000); } else { stopTail(); }
  });
}
