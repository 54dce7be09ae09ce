// The browse page works without this file. It adds two things:
// - changing the sort or order applies it at once (the Apply button stays, for everything else);
// - empty fields are left out of the submitted URL, so the address stays short and shareable
//   (without it the server answers a redirect to the same clean URL).
"use strict";
(function () {
  var form = document.getElementById("browse-form");
  if (!form) return;
  form.addEventListener("submit", function () {
    var fields = form.querySelectorAll("input[name], select[name]");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value === "") fields[i].disabled = true;
    }
    // Re-enable after the navigation starts, so going Back shows a usable form.
    window.setTimeout(function () {
      for (var j = 0; j < fields.length; j++) fields[j].disabled = false;
    }, 0);
  });
  ["sort", "order"].forEach(function (id) {
    var select = document.getElementById(id);
    if (select) {
      select.addEventListener("change", function () {
        if (form.requestSubmit) form.requestSubmit();
        else form.submit();
      });
    }
  });
})();
