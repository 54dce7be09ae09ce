// The slice viewer (templates/_slice_viewer.html), progressive enhancement only: without this
// script the form reloads the dataset page at the chosen file, axis and plane. With it, moving
// the slider swaps the image in place (debounced, so a fast drag asks for the planes it settles
// on, not every one it passes), changing the axis (XY, XZ, YZ) starts at its middle plane,
// changing the file fetches its geometry (?info=1), neighbours of the shown plane are
// prefetched once it has loaded, and the address bar keeps the state
// (?slice_file=&axis=&index=) so the view can be shared. Images are immutable: the browser
// caches them. XY images keep their ?z= address (the server's ETag for it predates axes).
(() => {
  "use strict";
  const form = document.getElementById("slice-form");
  const select = document.getElementById("slice-file");
  if (!form || !select) return;
  const range = document.getElementById("slice-z");
  const img = document.getElementById("slice-image");
  if (!range || !img) {
    // The file shown is not stored here: choosing another one reloads the page with it.
    select.addEventListener("change", () => form.submit());
    return;
  }
  const output = document.getElementById("slice-z-value");
  const total = document.getElementById("slice-nz");
  const caption = document.getElementById("slice-caption");
  const download = document.getElementById("slice-download");
  const fileLink = document.getElementById("slice-file-download");
  const axisSelect = document.getElementById("slice-axis");
  const axisName = document.getElementById("slice-axis-name");
  const PLANES = { z: "XY", y: "XZ", x: "YZ" };
  const DEBOUNCE_MS = 40;
  const DOWNLOAD_SIZE = 2048;
  const NEIGHBOURS = [1, -1, 2, -2];
  const prefetched = new Set();
  let timer = 0;
  let state = fromOption(select.selectedOptions[0], Number(range.value));
  state.axis = axisSelect ? axisSelect.value : "z";
  state.nz = Number(range.max) + 1;

  form.classList.add("js"); // hides the Show button, which only the no-script form needs

  function fromOption(option, z) {
    return {
      base: option.dataset.base,
      planeBase: option.dataset.planeBase || option.dataset.base,
      axis: "z",
      dims: { z: Number(option.dataset.nz), y: Number(option.dataset.ny), x: Number(option.dataset.nx) },
      file: option.value,
      label: option.textContent.trim(),
      nz: Number(option.dataset.nz) || Number(range.max) + 1,
      z: z,
      angles: null,
    };
  }

  function url(z, size) {
    const query = state.axis === "z" ? "?z=" + z : "?axis=" + state.axis + "&index=" + z;
    const base = state.axis === "z" ? state.base : state.planeBase;
    return base + query + (size ? "&size=" + size : "");
  }

  function planeName() {
    return state.axis === "z" ? "section" : PLANES[state.axis] + " plane";
  }

  function describe(z) {
    if (state.axis !== "z") {
      return state.label + ": " + planeName() + " " + z + " of " + state.nz + " (z runs up; voxel proportions kept)";
    }
    const angle = state.angles ? ", tilt " + state.angles[z] + "°" : "";
    return state.label + ": section " + z + " of " + state.nz + angle;
  }

  function show(z) {
    state.z = z;
    output.textContent = String(z);
    caption.textContent = describe(z);
    img.alt = (state.axis === "z" ? "slice " : PLANES[state.axis] + " plane ") + z + " of " + state.nz + " of " + state.label;
    download.href = url(z, DOWNLOAD_SIZE);
    const next = url(z);
    if (img.getAttribute("src") !== next) {
      img.classList.add("loading");
      img.src = next;
    }
    const params = new URLSearchParams(window.location.search);
    params.set("slice_file", state.file);
    params.delete("z");
    params.set("axis", state.axis);
    params.set("shown_axis", state.axis);
    params.set("index", String(z));
    window.history.replaceState(null, "", "?" + params.toString() + "#slice-viewer");
  }

  function prefetch() {
    for (const step of NEIGHBOURS) {
      const z = state.z + step;
      const next = url(z);
      if (z < 0 || z >= state.nz || prefetched.has(next)) continue;
      prefetched.add(next);
      new Image().src = next;
    }
  }

  function loadInfo(option, reset) {
    return fetch(option.dataset.base + "?info=1", { headers: { Accept: "application/json" } })
      .then((response) =>
        response.json().then((body) => {
          if (!response.ok) throw new Error((body.error && body.error.message) || response.statusText);
          return body;
        }),
      )
      .then((info) => {
        if (reset) {
          state = fromOption(option, info.default_z);
          state.dims = { z: info.nz, y: info.ny, x: info.nx };
          state.nz = info.nz;
          range.max = String(info.nz - 1);
          range.value = String(info.default_z);
          total.textContent = String(info.nz);
          fileLink.href = option.dataset.download;
          setAxes(option);
        }
        state.angles = info.tilt_angles || null;
        show(reset ? info.default_z : state.z);
      })
      .catch((error) => {
        caption.textContent = option.textContent.trim() + " cannot be shown: " + error.message;
      });
  }

  function setAxes(option) {
    if (!axisSelect) return;
    const allowed = (option.dataset.axes || "z").split(" ");
    for (const choice of axisSelect.options) choice.disabled = !allowed.includes(choice.value);
    axisSelect.value = "z";
    axisName.textContent = "Section";
  }

  function changeAxis() {
    state.axis = axisSelect.value;
    state.nz = state.dims[state.axis] || state.nz;
    const middle = state.axis === "z" ? Number(select.selectedOptions[0].dataset.defaultZ) || 0 : Math.floor(state.nz / 2);
    range.max = String(state.nz - 1);
    range.value = String(middle);
    total.textContent = String(state.nz);
    axisName.textContent = state.axis === "z" ? "Section" : PLANES[state.axis] + " plane at " + state.axis + " =";
    show(middle);
  }

  if (axisSelect) axisSelect.addEventListener("change", changeAxis);
  range.addEventListener("input", () => {
    output.textContent = range.value; // the number follows the thumb at once
    window.clearTimeout(timer);
    timer = window.setTimeout(() => show(Number(range.value)), DEBOUNCE_MS);
  });
  select.addEventListener("change", () => loadInfo(select.selectedOptions[0], true));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    show(Number(range.value));
  });
  img.addEventListener("load", () => {
    img.classList.remove("loading");
    prefetch();
  });
  img.addEventListener("error", () => {
    img.classList.remove("loading");
    caption.textContent = describe(state.z) + " (could not be rendered)";
  });
  loadInfo(select.selectedOptions[0], false); // tilt angles for the caption
})();
