// The dataset page: "Copy link" copies the permalink instead of following it (the link still
// works without JavaScript or clipboard access). No data from the record is read as code.
"use strict";
(function () {
  var status = document.querySelector(".share-status");
  document.querySelectorAll("a.share-copy[data-copy]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      if (!navigator.clipboard) return;
      event.preventDefault();
      navigator.clipboard.writeText(link.getAttribute("data-copy")).then(
        function () { if (status) status.textContent = "Link copied."; },
        function () { window.location.href = link.href; }
      );
    });
  });
})();
