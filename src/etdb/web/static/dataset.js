// The dataset page: "Copy link" copies the permalink instead of following it (the link still
// works without JavaScript or clipboard access); the 3-D viewer link (server-rendered hidden)
// is shown only when this browser can give Neuroglancer a WebGL2 context, so a browser without
// WebGL keeps the slice viewer as its only view. No data from the record is read as code.
"use strict";
(function () {
  var viewer3d = document.getElementById("viewer-3d");
  if (viewer3d && hasWebGL2()) viewer3d.hidden = false;

  function hasWebGL2() {
    try {
      var gl = document.createElement("canvas").getContext("webgl2");
      if (!gl) return false;
      var lose = gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext(); // give the context back: browsers cap how many live
      return true;
    } catch (e) {
      return false;
    }
  }

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
