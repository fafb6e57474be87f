// The image viewer. The page carries the image's facts in data- attributes of #viewer;
// the view state lives in the page URL under OMERO's names, so a URL reproduces a view:
//   c=1|10:900$FF0000,-2|0:255$00FF00   channels: index, window start:end, colour
//                                        ("-" before the index = off)
//   m=g | m=c                            greyscale or colour model
//   z=3 & t=1                            the plane, 1-based as OMERO's viewers count
//   zm=150 & x=1024 & y=768              zoom in percent and the image pixel at the
//                                        centre (only once the view left "fit")
// Small images are shown from one render_image of the plane. A big one (longest side
// above data-overview-max) never is: it shows a render_thumbnail scaled to the window
// and, once zoomed past that thumbnail's resolution,
// render_image_region tiles of the part in view, of the resolution level the view
// needs (the gateway computes levels below full resolution for big images), so that no
// zoom between fit and 100 % shows a magnified lower resolution.
(function () {
  "use strict";
  var viewer = document.getElementById("viewer");
  if (!viewer) { return; }
  var data = viewer.dataset;
  var imageId = data.id;
  var prefix = data.prefix;
  var width = Number(data.width);
  var height = Number(data.height);
  var sizeZ = Number(data.sizeZ);
  var sizeT = Number(data.sizeT);
  var overviewMax = Number(data.overviewMax);
  var tileSize = Number(data.tileSize);
  // Versions the overview's URL (it changes with the file and its saved settings), so
  // the browser may keep it without asking again.
  var thumbnailVersion = data.thumbnailVersion || "";
  var pixelSize = data.pixelSize ? Number(data.pixelSize) : NaN;
  var big = Math.max(width, height) > overviewMax;
  var MAX_SCALE = 16;
  // Resolution levels the gateway's tiles have: level L is 1/2^L of full resolution.
  var levels = Math.max(1, Number(data.levels) || 1);

  function byId(id) { return document.getElementById(id); }
  var histogram = window.webctlHistogram;
  var viewport = byId("viewport");
  var stage = byId("stage");
  var overview = byId("overview");
  var zInput = byId("z");
  var tInput = byId("t");
  var zoomValue = byId("zoom-value");
  var shareLink = byId("share-link");
  var scalebar = byId("scalebar");
  var channelItems = Array.prototype.slice.call(document.querySelectorAll("li.channel"));
  var modelInputs = Array.prototype.slice.call(document.querySelectorAll("input[name=model]"));

  // ---- state ------------------------------------------------------------------------

  var state = {
    z: Number(data.defaultZ),
    t: Number(data.defaultT),
    model: data.model,
    channels: channelItems.map(function (item) {
      return {
        index: Number(item.dataset.index),
        active: item.querySelector(".channel-active").checked,
        start: Number(item.dataset.start),
        end: Number(item.dataset.end),
        color: item.dataset.color.toUpperCase(),
        // The file's own table (an ImageJ LUT) draws it while this colour is unchanged.
        fileLutColor: item.dataset.fileLut ? item.dataset.color.toUpperCase() : null,
        // The channel's pixel range, which histogram_json's bins split.
        rangeMin: Number(item.querySelector(".window-start").min),
        rangeMax: Number(item.querySelector(".window-start").max)
      };
    }),
    // null = fit the image to the viewport; otherwise screen pixels per image pixel.
    scale: null,
    cx: width / 2,
    cy: height / 2
  };

  function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, v)); }

  function readUrlState() {
    var params = new URLSearchParams(window.location.search);
    var c = params.get("c");
    if (c) {
      // As OMERO: channels the parameter does not mention are off.
      state.channels.forEach(function (ch) { ch.active = false; });
      c.split(",").forEach(function (spec) {
        // index[|start:end][$colour]; a colour this viewer cannot show (a lookup table,
        // an 8-digit colour) keeps the channel's own.
        var match = /^(-?)(\d+)(?:\|(-?[\d.]+):(-?[\d.]+))?(?:\$(.*))?$/.exec(spec.trim());
        if (!match) { return; }
        var ch = state.channels[Number(match[2]) - 1];
        if (!ch) { return; }
        ch.active = match[1] !== "-";
        if (match[3] !== undefined) {
          ch.start = Number(match[3]);
          ch.end = Number(match[4]);
        }
        if (match[5] && /^[0-9A-Fa-f]{6}$/.test(match[5])) { ch.color = match[5].toUpperCase(); }
      });
    }
    var m = params.get("m");
    if (m === "g" || m === "c") { state.model = m; }
    if (state.model === "g") { keepOneActive(); }
    var z = parseInt(params.get("z"), 10);
    if (z >= 1) { state.z = clamp(z - 1, 0, sizeZ - 1); }
    var t = parseInt(params.get("t"), 10);
    if (t >= 1) { state.t = clamp(t - 1, 0, sizeT - 1); }
    var zm = Number(params.get("zm"));
    if (zm > 0) { state.scale = clamp(zm / 100, 0.01, MAX_SCALE); }
    var x = Number(params.get("x"));
    var y = Number(params.get("y"));
    if (params.has("x") && x >= 0 && x <= width) { state.cx = x; }
    if (params.has("y") && y >= 0 && y <= height) { state.cy = y; }
  }

  // Greyscale shows one channel, as in OMERO.iviewer: the first active one stays on
  // (or `keep`, the one just ticked), the others go off, so what is ticked is what is
  // drawn.
  function keepOneActive(keep) {
    var first = keep !== undefined ? keep : state.channels.findIndex(function (ch) { return ch.active; });
    state.channels.forEach(function (ch, i) { ch.active = i === first; });
  }


  // ---- URLs -------------------------------------------------------------------------

  function channelParam() {
    return state.channels.map(function (ch) {
      var color = ch.color === ch.fileLutColor ? "" : "$" + ch.color;
      return (ch.active ? "" : "-") + ch.index + "|" + ch.start + ":" + ch.end + color;
    }).join(",");
  }

  // The rendering part of a query: what changes the pixels.
  function renderQuery() {
    return "c=" + encodeURIComponent(channelParam()) + "&m=" + state.model;
  }

  function viewQuery() {
    var query = "c=" + channelParam() + "&m=" + state.model +
      "&z=" + (state.z + 1) + "&t=" + (state.t + 1);
    if (state.scale !== null) {
      query += "&zm=" + Math.round(state.scale * 100) +
        "&x=" + Math.round(state.cx) + "&y=" + Math.round(state.cy);
    }
    return query;
  }

  function planePath(view) {
    return prefix + "/webgateway/" + view + "/" + imageId + "/" + state.z + "/" + state.t + "/";
  }

  // ---- loading images ---------------------------------------------------------------

  var pending = 0;
  function setPending(delta) {
    pending += delta;
    viewer.dataset.pending = String(pending);
  }

  // Loads url into img, at most one request per image at a time: while one is in
  // flight, only the latest URL wanted is remembered and loaded when it ends. Dragging
  // the Z slider over 50 planes costs a few renders, not 50.
  function load(img, url) {
    img.dataset.wanted = url;
    if (img.dataset.loading === "1" || img.getAttribute("src") === url) { return; }
    start(img, url);
  }

  function start(img, url) {
    img.dataset.loading = "1";
    setPending(1);
    var done = function () {
      img.removeEventListener("load", done);
      img.removeEventListener("error", done);
      img.dataset.loading = "";
      // The next load counts before this one stops counting: the view never looks
      // settled in between.
      if (img.dataset.wanted !== img.getAttribute("src")) { start(img, img.dataset.wanted); }
      setPending(-1);
    };
    img.addEventListener("load", done);
    img.addEventListener("error", done);
    img.src = url;
  }

  var overviewSide = 0;
  function loadOverview(fitScale) {
    if (!big) {
      overviewSide = Math.max(width, height);
      load(overview, planePath("render_image") + "?" + renderQuery());
      return;
    }
    // A thumbnail as large as the fitted view needs on this screen, in steps of 256
    // so that small resizes reuse it.
    var needed = Math.max(width, height) * fitScale * (window.devicePixelRatio || 1);
    var side = clamp(Math.ceil(needed / 256) * 256, 256, overviewMax);
    if (side < overviewSide && overview.dataset.key === renderKey()) { return; }
    overviewSide = side;
    overview.dataset.key = renderKey();
    load(overview, prefix + "/webgateway/render_thumbnail/" + imageId + "/" + side + "/?" +
      renderQuery() + "&z=" + state.z + "&t=" + state.t +
      (thumbnailVersion ? "&v=" + encodeURIComponent(thumbnailVersion) : ""));
  }

  function renderKey() {
    return state.z + "/" + state.t + "/" + renderQuery();
  }

  var tiles = {};
  var tilesKey = "";
  function clearTiles() {
    Object.keys(tiles).forEach(function (key) { tiles[key].remove(); });
    tiles = {};
  }

  function loadTiles(scale, vw, vh) {
    // Tiles once the overview would be magnified on screen, of the coarsest level that
    // is still at least as fine as the screen (2^-level ≥ device pixels per image
    // pixel): never a magnified lower level, and about the screen's pixels per view.
    var overviewScale = overviewSide / Math.max(width, height);
    var deviceScale = scale * (window.devicePixelRatio || 1);
    if (!big || deviceScale <= overviewScale) { return; }
    var level = clamp(Math.floor(-Math.log2(deviceScale)), 0, levels - 1);
    if (tilesKey !== level + "/" + renderKey()) {
      clearTiles();
      tilesKey = level + "/" + renderKey();
    }
    // Full-resolution pixels one tile of this level covers.
    var span = tileSize * Math.pow(2, level);
    var x0 = clamp(state.cx - vw / 2 / scale, 0, width);
    var x1 = clamp(state.cx + vw / 2 / scale, 0, width);
    var y0 = clamp(state.cy - vh / 2 / scale, 0, height);
    var y1 = clamp(state.cy + vh / 2 / scale, 0, height);
    var wanted = {};
    for (var ty = Math.floor(y0 / span); ty * span < y1; ty++) {
      for (var tx = Math.floor(x0 / span); tx * span < x1; tx++) {
        var key = tx + "," + ty;
        wanted[key] = true;
        if (tiles[key]) { continue; }
        var img = document.createElement("img");
        img.className = "tile";
        img.alt = "";
        img.draggable = false;
        img.dataset.level = String(level);
        img.style.left = tx * span + "px";
        img.style.top = ty * span + "px";
        img.style.width = Math.min(span, width - tx * span) + "px";
        img.style.height = Math.min(span, height - ty * span) + "px";
        stage.appendChild(img);
        tiles[key] = img;
        load(img, planePath("render_image_region") + "?tile=" + level + "," + tx + "," + ty +
          "," + tileSize + "," + tileSize + "&" + renderQuery());
      }
    }
    // Keep memory bounded: drop tiles out of view once there are many.
    var keys = Object.keys(tiles);
    if (keys.length > 48) {
      keys.forEach(function (key) {
        if (!wanted[key]) { tiles[key].remove(); delete tiles[key]; }
      });
    }
  }

  // ---- drawing ----------------------------------------------------------------------

  function fitScale() {
    return Math.min(viewport.clientWidth / width, viewport.clientHeight / height);
  }

  function currentScale() {
    return state.scale === null ? fitScale() : state.scale;
  }

  function niceLength(micrometres) {
    var power = Math.pow(10, Math.floor(Math.log10(micrometres)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * power >= micrometres) { return steps[i] * power; }
    }
    return 10 * power;
  }

  function formatLength(micrometres) {
    if (micrometres >= 1000) { return Number((micrometres / 1000).toPrecision(3)) + " mm"; }
    if (micrometres < 1) { return Number((micrometres * 1000).toPrecision(3)) + " nm"; }
    return Number(micrometres.toPrecision(3)) + " µm";
  }

  function drawScalebar(scale) {
    if (!(pixelSize > 0)) { return; }
    var micrometresPerScreenPixel = pixelSize / scale;
    var length = niceLength(micrometresPerScreenPixel * 80);
    scalebar.hidden = false;
    scalebar.querySelector(".bar").style.width = (length / micrometresPerScreenPixel) + "px";
    scalebar.querySelector(".scalebar-label").textContent = formatLength(length);
  }

  function drawControls() {
    if (zInput) {
      zInput.value = state.z;
      byId("z-value").textContent = (state.z + 1) + " / " + sizeZ;
    }
    if (tInput) {
      tInput.value = state.t;
      byId("t-value").textContent = (state.t + 1) + " / " + sizeT;
    }
    modelInputs.forEach(function (input) { input.checked = input.value === state.model; });
    viewer.classList.toggle("greyscale", state.model === "g");
    channelItems.forEach(function (item, i) {
      var ch = state.channels[i];
      item.querySelector(".channel-active").checked = ch.active;
      item.querySelector(".channel-color").value = "#" + ch.color.toLowerCase();
      var start = item.querySelector(".window-start");
      var end = item.querySelector(".window-end");
      // A window from the URL may lie outside the channel's range: widen the sliders.
      [start, end].forEach(function (slider) {
        slider.min = Math.min(Number(slider.min), ch.start);
        slider.max = Math.max(Number(slider.max), ch.end);
      });
      start.value = ch.start;
      end.value = ch.end;
      // The typed values follow the sliders, except in the field being typed in.
      [[".window-start-number", ch.start], [".window-end-number", ch.end]].forEach(function (pair) {
        var field = item.querySelector(pair[0]);
        if (field && document.activeElement !== field) { field.value = pair[1]; }
      });
      item.querySelector(".window-value").textContent = ch.start + "–" + ch.end;
      // In greyscale the channel is drawn in grey, whatever its colour.
      item.querySelector(".swatch").style.background = state.model === "g"
        ? "linear-gradient(90deg, #000, #fff)"
        : "#" + ch.color;
      item.classList.toggle("off", !ch.active);
    });
    drawHistograms();
  }

  // Histograms under the window sliders, when asked for (as iviewer's "show
  // histogram"): of the plane in view, fetched once per plane and channel.
  var histogramShow = byId("histogram-show");
  var histogramLog = byId("histogram-log");
  function drawHistograms() {
    var shown = histogramShow && histogramShow.checked;
    channelItems.forEach(function (item, i) {
      var canvas = item.querySelector("canvas.histogram");
      canvas.hidden = !shown;
      if (!shown) { return; }
      var ch = state.channels[i];
      var z = state.z;
      var t = state.t;
      var key = z + "/" + t;
      if (canvas.dataset.plane !== key) {
        canvas.dataset.plane = key;
        canvas.dataset.drawn = "";
        setPending(1);
        histogram.load(prefix, imageId, ch.index - 1, z, t).then(function (counts) {
          canvas.counts = canvas.dataset.plane === key ? counts : canvas.counts;
          if (canvas.dataset.plane === key) { paint(canvas, ch); }
          setPending(-1);
        });
        return;
      }
      paint(canvas, ch);
    });
  }

  function paint(canvas, ch) {
    if (!canvas.counts) { return; }
    histogram.draw(canvas, canvas.counts, {
      min: ch.rangeMin,
      max: ch.rangeMax,
      start: ch.start,
      end: ch.end,
      log: histogramLog.checked,
      color: state.model === "g" ? "#555555" : "#" + ch.color
    });
    canvas.dataset.drawn = "1";
  }

  [histogramShow, histogramLog].forEach(function (input) {
    if (input) { input.addEventListener("change", drawControls); }
  });

  function draw() {
    var vw = viewport.clientWidth;
    var vh = viewport.clientHeight;
    if (vw === 0 || vh === 0) { return; }
    var fit = fitScale();
    var scale = currentScale();
    if (state.scale === null) {
      state.cx = width / 2;
      state.cy = height / 2;
    }
    stage.style.width = width + "px";
    stage.style.height = height + "px";
    // Above 100 % (device pixels per image pixel) each pixel shows as a square, as
    // iviewer's nearest-pixel view does, not smoothed into a blur.
    stage.classList.toggle("pixelated", scale * (window.devicePixelRatio || 1) > 1);
    stage.style.transform = "translate(" + (vw / 2 - state.cx * scale) + "px," +
      (vh / 2 - state.cy * scale) + "px) scale(" + scale + ")";
    loadOverview(fit);
    loadTiles(scale, vw, vh);
    zoomValue.textContent = Math.round(scale * 100) + " %";
    drawScalebar(scale);
    drawControls();
    var url = window.location.pathname + "?" + viewQuery();
    shareLink.href = url;
    scheduleUrlUpdate(url);
  }

  // The address bar follows the view, but not on every pointer move: browsers throttle
  // (and warn about) frequent history updates.
  var urlTimer = null;
  var nextUrl = null;
  function scheduleUrlUpdate(url) {
    nextUrl = url;
    if (urlTimer !== null) { return; }
    urlTimer = window.setTimeout(function () {
      urlTimer = null;
      window.history.replaceState(null, "", nextUrl);
    }, 150);
  }

  // ---- interaction ------------------------------------------------------------------

  function zoomAt(factor, screenX, screenY) {
    var scale = currentScale();
    var next = clamp(scale * factor, Math.min(fitScale(), 1) / 2, MAX_SCALE);
    var vw = viewport.clientWidth;
    var vh = viewport.clientHeight;
    if (screenX === undefined) { screenX = vw / 2; screenY = vh / 2; }
    // The image point under (screenX, screenY) stays there.
    var px = state.cx + (screenX - vw / 2) / scale;
    var py = state.cy + (screenY - vh / 2) / scale;
    state.scale = next;
    state.cx = clamp(px - (screenX - vw / 2) / next, 0, width);
    state.cy = clamp(py - (screenY - vh / 2) / next, 0, height);
    draw();
  }

  function step(axis, delta) {
    var size = axis === "z" ? sizeZ : sizeT;
    var next = clamp(state[axis] + delta, 0, size - 1);
    if (next !== state[axis]) {
      state[axis] = next;
      draw();
    }
  }

  if (zInput) { zInput.addEventListener("input", function () { state.z = Number(zInput.value); draw(); }); }
  if (tInput) { tInput.addEventListener("input", function () { state.t = Number(tInput.value); draw(); }); }
  modelInputs.forEach(function (input) {
    input.addEventListener("change", function () {
      state.model = input.value;
      if (state.model === "g") { keepOneActive(); }
      draw();
    });
  });
  channelItems.forEach(function (item, i) {
    var ch = state.channels[i];
    item.querySelector(".channel-active").addEventListener("change", function (e) {
      ch.active = e.target.checked;
      if (ch.active && state.model === "g") { keepOneActive(i); }
      draw();
    });
    item.querySelector(".channel-color").addEventListener("input", function (e) {
      ch.color = e.target.value.slice(1).toUpperCase();
      draw();
    });
    var start = item.querySelector(".window-start");
    var end = item.querySelector(".window-end");
    start.addEventListener("input", function () {
      ch.start = Math.min(Number(start.value), ch.end);
      draw();
    });
    end.addEventListener("input", function () {
      ch.end = Math.max(Number(end.value), ch.start);
      draw();
    });
    // "auto": the window from this plane's histogram (histogram_json, 256 bins over the
    // channel's pixel range), from the 0.1th to the 99.9th percentile of its pixels: a
    // few hot pixels no longer hide a dim channel.
    item.querySelector(".window-auto").addEventListener("click", function () {
      setPending(1);
      histogram.load(prefix, imageId, ch.index - 1, state.z, state.t)
        .then(function (counts) {
          if (!counts) { return; }  // the window stays
          var window_ = histogram.percentileWindow(counts, ch.rangeMin, ch.rangeMax);
          ch.start = window_[0];
          ch.end = window_[1];
          draw();
        })
        .then(function () { setPending(-1); });
    });
    // Exact values, typed: a 16-bit window a slider moves hundreds of levels per pixel.
    // Applied on change (Enter or leaving the field); start stays at or below end.
    var startNumber = item.querySelector(".window-start-number");
    var endNumber = item.querySelector(".window-end-number");
    startNumber.addEventListener("change", function () {
      var v = Number(startNumber.value);
      if (startNumber.value === "" || !isFinite(v)) { startNumber.value = ch.start; return; }
      ch.start = Math.min(v, ch.end);
      startNumber.value = ch.start;
      draw();
    });
    endNumber.addEventListener("change", function () {
      var v = Number(endNumber.value);
      if (endNumber.value === "" || !isFinite(v)) { endNumber.value = ch.end; return; }
      ch.end = Math.max(v, ch.start);
      endNumber.value = ch.end;
      draw();
    });
  });

  byId("zoom-in").addEventListener("click", function () { zoomAt(1.5); });
  byId("zoom-out").addEventListener("click", function () { zoomAt(1 / 1.5); });
  byId("zoom-fit").addEventListener("click", function () { state.scale = null; draw(); });

  viewport.addEventListener("wheel", function (e) {
    e.preventDefault();
    var rect = viewport.getBoundingClientRect();
    zoomAt(e.deltaY < 0 ? 1.25 : 0.8, e.clientX - rect.left, e.clientY - rect.top);
  }, { passive: false });

  // Drag to pan with one pointer; pinch to zoom with two.
  var pointers = {};
  function pointerCount() { return Object.keys(pointers).length; }
  function pinchDistance() {
    var p = Object.keys(pointers).map(function (k) { return pointers[k]; });
    return Math.hypot(p[0].x - p[1].x, p[0].y - p[1].y);
  }
  var lastPinch = 0;
  viewport.addEventListener("pointerdown", function (e) {
    viewport.setPointerCapture(e.pointerId);
    pointers[e.pointerId] = { x: e.clientX, y: e.clientY };
    if (pointerCount() === 2) { lastPinch = pinchDistance(); }
    viewport.classList.add("dragging");
  });
  viewport.addEventListener("pointermove", function (e) {
    var previous = pointers[e.pointerId];
    if (!previous) { return; }
    pointers[e.pointerId] = { x: e.clientX, y: e.clientY };
    if (pointerCount() === 2) {
      var distance = pinchDistance();
      if (lastPinch > 0) { zoomAt(distance / lastPinch); }
      lastPinch = distance;
      return;
    }
    var scale = currentScale();
    if (state.scale === null) { state.scale = scale; }
    state.cx = clamp(state.cx - (e.clientX - previous.x) / scale, 0, width);
    state.cy = clamp(state.cy - (e.clientY - previous.y) / scale, 0, height);
    draw();
  });
  function release(e) {
    delete pointers[e.pointerId];
    lastPinch = 0;
    if (pointerCount() === 0) { viewport.classList.remove("dragging"); }
  }
  viewport.addEventListener("pointerup", release);
  viewport.addEventListener("pointercancel", release);

  // Fields where keys type text: everywhere else (a slider, a checkbox, a button just
  // used) the viewer's keys work, and a focused slider does not also move.
  function typesText(target) {
    var tag = target.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable) { return true; }
    return tag === "INPUT" && ["range", "checkbox", "radio", "color", "button", "submit", "reset"]
      .indexOf(target.type) === -1;
  }

  document.addEventListener("keydown", function (e) {
    if (typesText(e.target) || e.ctrlKey || e.metaKey || e.altKey) {
      return;
    }
    var handled = true;
    switch (e.key) {
      case "ArrowUp": step("z", 1); break;
      case "ArrowDown": step("z", -1); break;
      case "ArrowRight": step("t", 1); break;
      case "ArrowLeft": step("t", -1); break;
      case "+": case "=": zoomAt(1.5); break;
      case "-": zoomAt(1 / 1.5); break;
      case "0": state.scale = null; draw(); break;
      default: handled = false;
    }
    if (handled) { e.preventDefault(); }
  });

  window.addEventListener("resize", draw);

  // "save settings": the channels, model and plane become the image's saved rendering
  // settings (OMERO's saveImgRDef), which thumbnails and a fresh viewer then show.
  // "reset to imported": OMERO's resetRDef, then the viewer without view state.
  function postForm(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body
    }).then(function (response) {
      if (!response.ok) { throw new Error(response.status + " " + response.statusText); }
      return response.json();
    });
  }
  function rdefStatus(text) { byId("rdef-status").textContent = text; }
  var saveButton = byId("save-rdef");
  if (saveButton) {
    saveButton.addEventListener("click", function () {
      rdefStatus("saving…");
      postForm(prefix + "/webgateway/saveImgRDef/" + imageId + "/",
        "c=" + encodeURIComponent(channelParam()) + "&m=" + state.model +
        "&z=" + (state.z + 1) + "&t=" + (state.t + 1))
        .then(function (ok) { rdefStatus(ok === true ? "saved" : "not saved"); })
        .catch(function (e) { rdefStatus("not saved: " + e.message); });
    });
  }
  var resetButton = byId("reset-rdef");
  if (resetButton) {
    resetButton.addEventListener("click", function () {
      rdefStatus("resetting…");
      postForm(prefix + "/webgateway/resetRDef/", "to_type=image&toids=" + imageId)
        .then(function () { window.location.href = byId("reset-view").href; })
        .catch(function (e) { rdefStatus("not reset: " + e.message); });
    });
  }

  // Back to the gallery as it was left (its filter and page), not to the unfiltered
  // list: gallery.js remembers it for this tab.
  try {
    var galleryUrl = window.sessionStorage.getItem("omero-webctl-gallery");
    var toGallery = byId("to-gallery");
    if (galleryUrl && toGallery && galleryUrl.indexOf(prefix + "/webclient/") === 0) {
      toGallery.href = galleryUrl;
    }
  } catch (e) { /* storage off: the plain gallery link stays */ }

  readUrlState();
  viewer.dataset.pending = "0";
  draw();
})();
