// Progressive enhancement only: every page works without this file.
(function () {
  "use strict";
  function lineHint() {
    var select = document.querySelector("[data-line-select]");
    if (!select) return;
    var hint = document.getElementById("line-hint");
    var perUnit = document.querySelector("[data-per-unit]");
    var amount = document.querySelector("[data-amount]");
    var lang = document.documentElement.lang;
    function update() {
      var o = select.options[select.selectedIndex];
      var kind = o && o.dataset.kind;
      if (!kind) { hint.textContent = ""; }
      else {
        var period = { per_time: lang === "en" ? "per time" : "mỗi lần", per_year: lang === "en" ? "per year" : "mỗi năm",
          per_unit: "/ " + o.dataset.unit, per_years: (lang === "en" ? "per " : "mỗi ") + o.dataset.years + (lang === "en" ? " years" : " năm") }[kind];
        hint.textContent = (lang === "en" ? "Norm " : "Định mức ") + o.dataset.norm + " " + period + " · " +
          (lang === "en" ? "left " : "còn ") + o.dataset.left + (lang === "en" ? " of " : " trên ") + o.dataset.allocation;
      }
      if (perUnit && amount) {
        perUnit.hidden = kind !== "per_unit";
        amount.closest(".field").hidden = kind === "per_unit";
      }
    }
    select.addEventListener("change", update);
    update();
  }
  function fileList() {
    var inputs = document.querySelectorAll("input[type=file][name=attachments]");
    var out = document.querySelector("[data-file-list]");
    if (!out) return;
    inputs.forEach(function (input) {
      input.addEventListener("change", function () {
        var names = [];
        inputs.forEach(function (i) { for (var k = 0; k < i.files.length; k++) names.push(i.files[k].name); });
        out.textContent = names.length ? "✓ " + names.join(", ") : out.textContent;
      });
    });
  }
  // A closed select shows one line: when the chosen option is longer than the box, say it whole
  // right below (phones cut it without an ellipsis).
  function fullChoices() {
    var canvas = document.createElement("canvas").getContext("2d");
    document.querySelectorAll("select").forEach(function (select) {
      var out = document.createElement("small");
      out.className = "hint choice-full";
      out.setAttribute("aria-hidden", "true"); // the select itself already tells readers
      select.insertAdjacentElement("afterend", out);
      function update() {
        var style = getComputedStyle(select);
        canvas.font = style.fontWeight + " " + style.fontSize + " " + style.fontFamily;
        var room = select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - 20;
        var o = select.options[select.selectedIndex];
        out.textContent = o && canvas.measureText(o.text).width > room ? o.text : "";
        out.hidden = !out.textContent;
      }
      select.addEventListener("change", update);
      window.addEventListener("resize", update);
      update();
    });
  }
  document.addEventListener("DOMContentLoaded", function () { lineHint(); fileList(); fullChoices(); });
})();
