/* Deme console: the only hand-written script. No framework, no network calls of its own.
 * - live GSM-7 / UCS-2 segment counter for SMS text areas (same rules as gateway/gsm7.py)
 * - canned replies: fill the reply box ({reference} replaced)
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

  document.addEventListener("DOMContentLoaded", function () { bind(document); });
  document.addEventListener("htmx:afterSettle", function (event) { bind(event.target); });
})();
