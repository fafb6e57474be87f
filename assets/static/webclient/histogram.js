// Channel histograms for the viewer: fetched from OMERO's histogram_json (256 bins
// over the channel's pixel range, one plane), drawn under the window sliders with the
// window as a band, on a linear or a log scale (a 16-bit channel's few bright pixels
// are invisible on a linear one), and the "auto" window from them. viewer.js owns the
// state; these are its pure helpers.
(function () {
  "use strict";

  var BINS = 256;
  // Fetched histograms by URL: Z/T moves back and forth, "auto" and the drawing share.
  var cache = {};

  function url(prefix, imageId, channel, z, t) {
    return prefix + "/webgateway/histogram_json/" + imageId + "/channel/" + channel +
      "/?theZ=" + z + "&theT=" + t + "&bins=" + BINS;
  }

  // The counts of one plane's channel (0-based), or null when it cannot be had.
  function load(prefix, imageId, channel, z, t) {
    var key = url(prefix, imageId, channel, z, t);
    if (!cache[key]) {
      cache[key] = fetch(key, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (histogram) {
          var counts = histogram && histogram.data;
          return counts && counts.length ? counts : null;
        })
        .catch(function () { return null; })
        .then(function (counts) {
          if (counts === null) { delete cache[key]; }
          return counts;
        });
    }
    return cache[key];
  }

  // The 0.1 %–99.9 % window of a histogram whose bins split [min, max] evenly: the
  // low bin's start and the high bin's end, as whole grey levels.
  function percentileWindow(counts, min, max) {
    var total = counts.reduce(function (a, b) { return a + b; }, 0);
    var width = (max - min) / counts.length;
    var lowBin = 0;
    var highBin = counts.length - 1;
    var seen = 0;
    for (var i = 0; i < counts.length; i++) {
      seen += counts[i];
      if (seen > total * 0.001) { lowBin = i; break; }
    }
    seen = 0;
    for (var j = counts.length - 1; j >= 0; j--) {
      seen += counts[j];
      if (seen > total * 0.001) { highBin = j; break; }
    }
    return [Math.floor(min + lowBin * width), Math.ceil(min + (highBin + 1) * width)];
  }

  // Draws `counts` (bins over [min, max]) into `canvas`: the window [start, end] as a
  // light band behind opaque bars of `color`; bar heights by count, or by log(1 + count)
  // when `log`.
  function draw(canvas, counts, opts) {
    var ratio = window.devicePixelRatio || 1;
    var w = Math.max(1, Math.round(canvas.clientWidth * ratio));
    var h = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w) { canvas.width = w; }
    if (canvas.height !== h) { canvas.height = h; }
    var g = canvas.getContext("2d");
    g.clearRect(0, 0, w, h);
    var span = Math.max(opts.max - opts.min, 1);
    var x0 = Math.round((opts.start - opts.min) / span * w);
    var x1 = Math.round((opts.end - opts.min) / span * w);
    g.fillStyle = "rgba(0, 0, 0, 0.08)";
    g.fillRect(Math.max(0, x0), 0, Math.max(1, Math.min(w, x1) - Math.max(0, x0)), h);
    var scale = opts.log ? function (c) { return Math.log(1 + c); } : function (c) { return c; };
    var peak = counts.reduce(function (a, c) { return Math.max(a, scale(c)); }, 0);
    canvas.dataset.scale = opts.log ? "log" : "linear";
    if (peak <= 0) { return; }
    g.fillStyle = opts.color;
    for (var i = 0; i < counts.length; i++) {
      if (counts[i] <= 0) { continue; }
      var left = Math.floor(i * w / counts.length);
      var right = Math.max(left + 1, Math.floor((i + 1) * w / counts.length));
      var bar = Math.round(scale(counts[i]) / peak * h);
      if (bar > 0) { g.fillRect(left, h - bar, right - left, bar); }
    }
  }

  window.webctlHistogram = { load: load, percentileWindow: percentileWindow, draw: draw };
})();
