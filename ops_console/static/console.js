/* Deme console: the only hand-written script. No framework, no network calls of its own.
 * - live GSM-7 / UCS-2 segment counter for SMS text areas (same rules as gateway/gsm7.py)
 * - canned replies: fill the reply box ({reference} replaced)
 * - errors: a 422/409 answer (the server's message next to the field) is swapped in like a
 *   success; any other failure, or no network, is said in the #flash banner
 * - drafts: text typed in a textarea[data-draft] is kept in sessionStorage until its form is
 *   accepted, so an expired session (login, then back to the page) loses nothing
 */
(function () {
  "use strict";
  var BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENSION = "^{}\\[~]|€\f";

  function parts(costs, single, part) {
    var total = 0, i;
    for (i = 0; i < costs.length; i++) { total += costs[i]; }
    if (total <= single) { return 1; }
    var count = 1, used = 0;
    for (i = 0; i < costs.length; i++) {
      /* a two-unit character (escape pair, surrogate pair) never straddles two parts */
      if (used + costs[i] > part) { count += 1; used = 0; }
      used += costs[i];
    }
    return count;
  }

  function measure(text) {
    var chars = Array.from(text), gsm = true, costs = [], i, c;
    for (i = 0; i < chars.length; i++) {
      c = chars[i];
      if (BASIC.indexOf(c) >= 0) { costs.push(1); }
      else if (EXTENSION.indexOf(c) >= 0) { costs.push(2); }
      else { gsm = false; break; }
    }
    if (gsm) {
      return { encoding: "gsm7", length: chars.length, segments: parts(costs, 160, 153) };
    }
    costs = chars.map(function (ch) { return ch.codePointAt(0) > 0xFFFF ? 2 : 1; });
    return { encoding: "ucs2", length: chars.length, segments: parts(costs, 70, 67) };
  }
  window.demeMeasure = measure;

  function updateCounter(area) {
    var counter = document.getElementById(area.getAttribute("data-segment-counter"));
    if (!counter) { return; }
    var info = measure(area.value);
    var d = counter.dataset;
    counter.textContent = info.length + " " + (d.labelChars || "") + " · " + info.segments +
      " " + (d.labelParts || "") + " · " + (info.encoding === "gsm7" ? d.labelGsm : d.labelUcs);
    counter.setAttribute("data-segments", String(info.segments));
    counter.setAttribute("data-encoding", info.encoding);
    counter.classList.toggle("warn", info.encoding === "ucs2" || info.segments > 2);
  }

  function bind(root) {
    root.querySelectorAll("textarea[data-draft]").forEach(bindDraft);
    root.querySelectorAll("textarea[data-segment-counter]").forEach(function (area) {
      if (area.dataset.bound) { return; }
      area.dataset.bound = "1";
      area.addEventListener("input", function () { updateCounter(area); });
      updateCounter(area);
    });
    root.querySelectorAll("select#canned").forEach(function (select) {
      if (select.dataset.bound) { return; }
      select.dataset.bound = "1";
      select.addEventListener("change", function () {
        var box = document.getElementById("reply-body");
        if (!box || !select.value) { return; }
        box.value = select.value.split("{reference}").join(select.dataset.reference || "");
        box.dispatchEvent(new Event("input"));
        box.focus();
      });
    });
  }

  function flash(text) {
    var box = document.getElementById("flash");
    if (!box) { return; }
    box.textContent = text;
    box.hidden = false;
  }

  function clearFlash() {
    var box = document.getElementById("flash");
    if (box) { box.hidden = true; box.textContent = ""; }
  }

  /* The error page's own sentence (already in the reader's language). */
  function errorText(xhr) {
    var fallback = document.body.dataset.errorGeneric || "Error";
    try {
      var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
      var p = doc.querySelector("main p");
      return (p && p.textContent.trim()) || fallback;
    } catch (e) { return fallback; }
  }

  /* A form was accepted (200, no redirect to the login page): its drafts are done. Done
     before the swap, while the form is still in the page (afterwards htmx reports on body). */
  function clearDrafts(form, xhr) {
    if (xhr.status !== 200 || xhr.getResponseHeader("HX-Redirect")) { return; }
    form.querySelectorAll("textarea[data-draft]").forEach(function (area) {
      try { sessionStorage.removeItem(draftKey(area)); } catch (e) { /* ignore */ }
    });
  }

  /* The element that made the request (events are dispatched on the swap target). */
  function requester(event) {
    var config = event.detail.requestConfig;
    return (config && config.elt) || event.detail.elt || event.target;
  }

  function fromForm(event) {
    var elt = requester(event);
    return elt && elt.tagName === "FORM" ? elt : null;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr, form = fromForm(event);
    if (form) { clearDrafts(form, xhr); }
    if (xhr.status === 422 || xhr.status === 409) {
      /* The page says what is wrong, in place: swap it like a success. */
      event.detail.shouldSwap = true;
      event.detail.isError = false;
      if (form) { clearFlash(); }
    } else if (xhr.status >= 400) {
      event.detail.shouldSwap = false;
      flash(errorText(xhr));
    } else if (form) {
      clearFlash();  /* a background poll's success says nothing about the last failure */
    }
  });
  document.addEventListener("htmx:sendError", function () {
    flash(document.body.dataset.errorNetwork || "Network error");
  });
  document.addEventListener("htmx:timeout", function () {
    flash(document.body.dataset.errorNetwork || "Network error");
  });

  function draftKey(area) { return "deme-draft:" + location.pathname + "#" + area.id; }

  function bindDraft(area) {
    if (!area.id || area.dataset.draftBound) { return; }
    area.dataset.draftBound = "1";
    var saved = null;
    try { saved = sessionStorage.getItem(draftKey(area)); } catch (e) { saved = null; }
    if (saved && !area.value) {
      area.value = saved;
      area.dispatchEvent(new Event("input"));
      var note = document.body.dataset.draftRestored;
      if (note) { flash(note); }
    }
    area.addEventListener("input", function () {
      try {
        if (area.value) { sessionStorage.setItem(draftKey(area), area.value); }
        else { sessionStorage.removeItem(draftKey(area)); }
      } catch (e) { /* storage full or disabled: nothing to keep */ }
    });
  }

  document.addEventListener("DOMContentLoaded", function () { bind(document); });
  document.addEventListener("htmx:afterSettle", function (event) { bind(event.target); });
})();
