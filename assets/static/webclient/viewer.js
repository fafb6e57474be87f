// The plane viewer: rebuilds the render_image URL from the Z/T sliders and the channel
// checkboxes. Everything it needs is in data- attributes of #viewer.
(function () {
  "use strict";
  var viewer = document.getElementById("viewer");
  if (!viewer) { return; }
  var base = viewer.dataset.renderBase;
  var img = document.getElementById("plane");
  var z = document.getElementById("z");
  var t = document.getElementById("t");
  var boxes = Array.prototype.slice.call(document.querySelectorAll("input.channel"));

  function update() {
    var c = boxes.map(function (box) {
      var spec = (box.checked ? "" : "-") + box.dataset.index + "|" + box.dataset.start + ":" + box.dataset.end + "$" + box.dataset.color;
      return spec;
    }).join(",");
    img.src = base + z.value + "/" + t.value + "/?c=" + encodeURIComponent(c) + "&m=c";
    document.getElementById("z-value").textContent = z.value;
    document.getElementById("t-value").textContent = t.value;
  }

  [z, t].forEach(function (input) { input.addEventListener("input", update); });
  boxes.forEach(function (box) { box.addEventListener("change", update); });
})();
