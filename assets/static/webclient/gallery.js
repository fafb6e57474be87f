// The gallery: fills each card's dimensions line ("2048 × 1536 · 3 ch · 5 Z") from
// imgData's size, for the cards that come into view, a few requests at a time.
(function () {
  "use strict";
  // The viewer's "gallery" link comes back here, filter and page kept.
  try {
    window.sessionStorage.setItem("omero-webctl-gallery", window.location.pathname + window.location.search);
  } catch (e) { /* storage off: the viewer links the plain gallery */ }
  var lines = Array.prototype.slice.call(document.querySelectorAll(".gallery .dims[data-img-data]"));
  if (lines.length === 0) { return; }
  var queue = [];
  var running = 0;
  var MAX_RUNNING = 4;

  function describe(size) {
    var parts = [size.width + " × " + size.height, size.c + " ch"];
    if (size.z > 1) { parts.push(size.z + " Z"); }
    if (size.t > 1) { parts.push(size.t + " T"); }
    return parts.join(" · ");
  }

  function fill(line) {
    return fetch(line.dataset.imgData, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (size) {
        if (size && size.width) { line.textContent = describe(size); }
      })
      .catch(function () { /* the card keeps an empty line */ });
  }

  function next() {
    while (running < MAX_RUNNING && queue.length > 0) {
      running++;
      fill(queue.shift()).then(function () { running--; next(); });
    }
  }

  function enqueue(line) {
    queue.push(line);
    next();
  }

  if ("IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting) {
          observer.unobserve(entry.target);
          enqueue(entry.target);
        }
      });
    }, { rootMargin: "200px" });
    lines.forEach(function (line) { observer.observe(line); });
  } else {
    lines.forEach(enqueue);
  }
})();
