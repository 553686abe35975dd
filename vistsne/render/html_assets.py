"""The stylesheet and scripts of the interactive page (see :mod:`html`).

Plain strings: ``PAGE_CSS`` (the layout: a bar of controls, the map filling
the rest of the first screen, a panel beside it), ``VIEWER_JS`` (the 3-D
canvas viewer) and ``PAGE_JS`` (the page: stage switch, colour switch,
search, pin, selection export, class list; ``window.vistsnePage``).
"""

PAGE_CSS = """
<style>
  html, body.vt { margin: 0; padding: 0; }
  body.vt { font: 13px/1.4 sans-serif; color: #222; height: auto; display: block; }
  .vt-bar { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 16px;
            padding: 6px 12px; border-bottom: 1px solid #ddd; background: #fafafa; }
  .vt-title { font-weight: bold; font-size: 14px; max-width: 40vw; white-space: nowrap;
              overflow: hidden; text-overflow: ellipsis; }
  .vt-controls { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 14px; }
  .vt-label { color: #666; margin-right: 4px; font-size: 12px; }
  .vt-stages button.vt-stage { font: inherit; font-size: 12px; padding: 2px 8px; margin: 0 2px 0 0;
            border: 1px solid #bbb; background: #fff; border-radius: 3px; cursor: pointer; }
  .vt-stages button.vt-stage.on { background: #2b5ca8; border-color: #2b5ca8; color: #fff; }
  .vt-search { width: 15em; }
  .vt-variant { max-width: 18em; }
  .vt-search-count { color: #444; font-size: 12px; min-width: 8em; }
  .vt-main { display: flex; align-items: flex-start; }
  .vt-maps { flex: 1 1 auto; min-width: 0; padding: 4px 8px; }
  .vt-map-head { display: flex; align-items: baseline; gap: 4px 14px; margin: 0 0 2px; }
  .vt-map-title { font-size: 12px; font-weight: normal; color: #444; margin: 0; flex: 1 1 auto;
                  min-width: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .vt-thumb-note { flex: 0 0 auto; font-size: 12px; color: #666; white-space: nowrap; }
  .vt-about { margin: 8px 0 16px; font-size: 12px; }
  .vt-about summary { cursor: pointer; color: #555; }
  .vt .vt-name { color: #777; font-size: 12px; margin-bottom: 6px; }
  .vt table.vt-info { border-collapse: collapse; font-size: 12px; margin: 4px 0 10px; }
  .vt table.vt-info th { text-align: left; font-weight: normal; color: #666;
                         padding: 1px 12px 1px 0; vertical-align: top; }
  .vt table.vt-info td { padding: 1px 0; word-break: break-all; }
  .vt-side { flex: 0 0 300px; width: 300px; box-sizing: border-box; padding: 6px 10px;
             border-left: 1px solid #e3e3e3; position: sticky; top: 0; max-height: 100vh;
             overflow-y: auto; font-size: 12px; }
  .vt-side > * { margin-bottom: 10px; }
  .vt-key .vt-key-title { font-weight: bold; margin-bottom: 3px; }
  .vt-key .vt-grad { height: 12px; border: 1px solid #999; }
  .vt-key .vt-grad-ticks { display: flex; justify-content: space-between; color: #555; }
  .vt-key .item { white-space: nowrap; }
  .vt-key .note { color: #a33; }
  span.sw { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
            margin-right: 5px; vertical-align: -1px; flex: 0 0 auto; }
  .vt-pin { border: 1px solid #ccc; border-radius: 4px; padding: 6px; background: #fcfcfc; }
  .vt-pin-head { display: flex; justify-content: space-between; align-items: center; }
  .vt-unpin { border: none; background: none; font-size: 16px; cursor: pointer; line-height: 1; }
  .vt-pin-main { display: flex; gap: 8px; margin: 4px 0; }
  .vt-pin-img { width: 96px; height: 96px; object-fit: contain; border: 1px solid #ddd;
                flex: 0 0 96px; background: #fff; }
  .vt-pin-info { margin: 0; display: grid; grid-template-columns: auto 1fr; gap: 0 6px;
                 align-content: start; min-width: 0; }
  .vt-pin-info dt { color: #666; }
  .vt-pin-info dd { margin: 0; overflow-wrap: anywhere; }
  .vt-nb-title { color: #555; margin: 4px 0 2px; }
  .vt-nbs { display: flex; flex-wrap: wrap; gap: 4px; }
  .vt-nb { margin: 0; width: 50px; cursor: pointer; text-align: center; }
  .vt-nb img { width: 46px; height: 46px; object-fit: contain; border: 2px solid #ccc;
               display: block; background: #fff; }
  .vt-nb figcaption { font-size: 9px; overflow: hidden; text-overflow: ellipsis;
                      white-space: nowrap; }
  .vt-nb.other figcaption { color: #b00; font-weight: bold; }
  .vt-pixelated img, img.vt-pixelated { image-rendering: pixelated; }
  .vt-pin-help, .vt-hint { color: #777; }
  .vt-sel button { margin-left: 6px; }
  .vt-classes summary { cursor: pointer; font-weight: bold; }
  .vt-class-tools { display: flex; gap: 4px; margin: 4px 0; }
  .vt-class-filter { flex: 1 1 auto; min-width: 0; }
  .vt-class-list { max-height: 45vh; overflow-y: auto; border: 1px solid #eee; }
  .vt-class-list .item { display: flex; align-items: center; cursor: pointer; padding: 0 3px;
                         user-select: none; white-space: nowrap; }
  .vt-class-list .item:hover { background: #f0f4fa; }
  .vt-class-list .item.off { opacity: 0.35; }
  .vt-class-list .item .nm { flex: 1 1 auto; overflow: hidden; text-overflow: ellipsis; }
  .vt-class-list .item .ct { color: #888; margin-left: 6px; }
  .vt3d { position: relative; display: inline-block; }
  .vt3d-main { display: flex; align-items: flex-start; }
  .vt3d canvas { border: 1px solid #ddd; cursor: grab; touch-action: none; }
  .vt3d-legend { font-size: 11px; margin-left: 10px; max-height: 700px; overflow-y: auto;
                 columns: auto 160px; }
  .vt3d-legend-title { font-weight: bold; margin-bottom: 2px; }
  .vt3d-legend div.item { cursor: pointer; white-space: nowrap; user-select: none; }
  .vt3d-legend div.item.off { opacity: 0.35; }
  .vt3d-legend span.sw { display: inline-block; width: 10px; height: 10px;
                         border-radius: 50%; margin-right: 4px; vertical-align: -1px; }
  .vt3d-help { font-size: 11px; color: #777; }
  .vt3d-tip { position: absolute; pointer-events: none; background: #fff; border: 1px solid #aaa;
              border-radius: 3px; padding: 4px; font-size: 12px; box-shadow: 0 1px 4px #0003;
              z-index: 10; }
  .vt3d-tip img { display: block; width: 64px; height: 64px; object-fit: contain; }
  .vt3d-tip .cls { font-weight: bold; }
</style>
"""

# The 3-D viewer: plain canvas 2-D drawing, orthographic projection, points
# painted back to front. Colours, transparency, hidden classes and the pin
# come from the page (``hooks``); without the page it draws class colours.
VIEWER_JS = r"""
(function () {
  "use strict";
  function readJSON(id) { return JSON.parse(document.getElementById(id).textContent); }
  function Viewer(root, hooks) {
    var d = readJSON(root.dataset.src), pool = readJSON(root.dataset.pool);
    hooks = hooks || {};
    var n = d.x.length, radius = d.r;
    var canvas = root.querySelector("canvas"), ctx = canvas.getContext("2d");
    var tip = root.querySelector(".vt3d-tip"), legendEl = root.querySelector(".vt3d-legend");
    var k = pool.names.length, hidden = hooks.hidden || new Uint8Array(k);
    var grey = pool.colors.map(function (c) { return c === null; });
    var fill = pool.colors.map(function (c) { return c === null ? pool.other_color : c; });
    var sx = new Float32Array(n), sy = new Float32Array(n), sz = new Float32Array(n);
    var order = new Uint32Array(n);
    for (var i = 0; i < n; i++) order[i] = i;
    var home = {yaw: -0.7, pitch: 0.45, zoom: 1.0};
    var view = {yaw: home.yaw, pitch: home.pitch, zoom: home.zoom};
    var W = canvas.clientWidth || canvas.width, H = canvas.clientHeight || canvas.height;
    var dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    var pending = false, drag = null;

    function rotate(x, y, z) {
      var cy = Math.cos(view.yaw), sy_ = Math.sin(view.yaw);
      var cp = Math.cos(view.pitch), sp = Math.sin(view.pitch);
      var x1 = cy * x + sy_ * z, z1 = -sy_ * x + cy * z;
      return [x1, cp * y - sp * z1, sp * y + cp * z1];
    }
    function project() {
      var s = Math.min(W, H) * 0.58 * view.zoom, cx = W / 2, cy = H / 2;
      for (var i = 0; i < n; i++) {
        var p = rotate(d.x[i], d.y[i], d.z[i]);
        sx[i] = cx + s * p[0]; sy[i] = cy - s * p[1]; sz[i] = p[2];
      }
      order.sort(function (a, b) { return sz[a] - sz[b]; });
    }
    function drawCube() {
      var s = Math.min(W, H) * 0.58 * view.zoom, cx = W / 2, cy = H / 2, h = 0.5;
      var c = [], e = [[0,1],[2,3],[4,5],[6,7],[0,2],[1,3],[4,6],[5,7],[0,4],[1,5],[2,6],[3,7]];
      for (var a = 0; a < 8; a++) {
        var p = rotate(a & 1 ? h : -h, a & 2 ? h : -h, a & 4 ? h : -h);
        c.push([cx + s * p[0], cy - s * p[1]]);
      }
      ctx.strokeStyle = "#dddddd"; ctx.lineWidth = 1; ctx.beginPath();
      e.forEach(function (q) { ctx.moveTo(c[q[0]][0], c[q[0]][1]); ctx.lineTo(c[q[1]][0], c[q[1]][1]); });
      ctx.stroke();
    }
    function draw() {
      pending = false;
      project();
      var st = hooks.style ? hooks.style() : null;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, W, H);
      drawCube();
      for (var j = 0; j < n; j++) {
        var i = order[j], l = pool.lab[i];
        if (hidden[l]) continue;
        if (st) {
          ctx.globalAlpha = Math.min(st.alpha[i], 0.85); ctx.fillStyle = st.color[i];
        } else {
          ctx.globalAlpha = grey[l] ? 0.5 : 0.85; ctx.fillStyle = fill[l];
        }
        ctx.beginPath(); ctx.arc(sx[i], sy[i], radius, 0, 6.2832); ctx.fill();
        if (st && st.lw[i] > 0) {
          ctx.globalAlpha = 1; ctx.lineWidth = st.lw[i]; ctx.strokeStyle = "#000000"; ctx.stroke();
        }
      }
      ctx.globalAlpha = 1;
    }
    function redraw() { if (!pending) { pending = true; requestAnimationFrame(draw); } }
    function nearest(x, y) {
      var best = -1, bestD = (radius + 4) * (radius + 4);
      for (var i = 0; i < n; i++) {
        if (hidden[pool.lab[i]]) continue;
        var dx = sx[i] - x, dy = sy[i] - y, dd = dx * dx + dy * dy;
        if (dd < bestD || (dd === bestD && best >= 0 && sz[i] > sz[best])) { best = i; bestD = dd; }
      }
      return best;
    }
    function showTip(i, x, y) {
      if (i < 0) { tip.hidden = true; return; }
      tip.replaceChildren();
      var src = hooks.img ? hooks.img(i) : (pool.img ? pool.img[i] : null);
      if (src) {
        var im = document.createElement("img"); im.src = src; im.alt = "thumbnail";
        tip.appendChild(im);
      }
      var c = document.createElement("div"); c.className = "cls";
      c.textContent = pool.names[pool.lab[i]]; tip.appendChild(c);
      var t = document.createElement("div"); t.textContent = "dataset index " + pool.idx[i];
      tip.appendChild(t);
      tip.style.left = (canvas.offsetLeft + x + 14) + "px";
      tip.style.top = (canvas.offsetTop + y + 14) + "px";
      tip.hidden = false;
    }
    function local(ev) {
      var r = canvas.getBoundingClientRect();
      return [ev.clientX - r.left, ev.clientY - r.top];
    }
    canvas.addEventListener("mousedown", function (ev) {
      drag = {x: ev.clientX, y: ev.clientY, yaw: view.yaw, pitch: view.pitch, moved: 0};
      tip.hidden = true; canvas.style.cursor = "grabbing"; ev.preventDefault();
    });
    window.addEventListener("mouseup", function (ev) {
      if (drag && drag.moved < 4 && ev.target === canvas && hooks.pin) {
        var p = local(ev), i = nearest(p[0], p[1]);
        if (i >= 0) hooks.pin(i);
      }
      drag = null; canvas.style.cursor = "grab";
    });
    window.addEventListener("mousemove", function (ev) {
      if (!drag) return;
      drag.moved = Math.max(drag.moved, Math.abs(ev.clientX - drag.x) + Math.abs(ev.clientY - drag.y));
      view.yaw = drag.yaw + (ev.clientX - drag.x) * 0.01;
      view.pitch = Math.max(-1.55, Math.min(1.55, drag.pitch + (ev.clientY - drag.y) * 0.01));
      redraw();
    });
    canvas.addEventListener("mousemove", function (ev) {
      if (drag) return;
      var p = local(ev); showTip(nearest(p[0], p[1]), p[0], p[1]);
    });
    canvas.addEventListener("mouseleave", function () { tip.hidden = true; });
    canvas.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      view.zoom = Math.max(0.2, Math.min(20, view.zoom * Math.exp(-ev.deltaY * 0.0015)));
      tip.hidden = true; redraw();
    }, {passive: false});
    canvas.addEventListener("dblclick", function () {
      view.yaw = home.yaw; view.pitch = home.pitch; view.zoom = home.zoom; redraw();
    });

    var present = new Uint8Array(k);
    for (var q = 0; q < n; q++) present[pool.lab[q]] = 1;
    var items = [];
    function legendItem(label, color, classes) {
      var it = document.createElement("div"); it.className = "item";
      var sw = document.createElement("span"); sw.className = "sw"; sw.style.background = color;
      it.appendChild(sw); it.appendChild(document.createTextNode(label));
      it.addEventListener("click", function () {
        var off = !it.classList.contains("off");
        it.classList.toggle("off", off);
        classes.forEach(function (c) { hidden[c] = off ? 1 : 0; });
        tip.hidden = true;
        if (hooks.hiddenChanged) hooks.hiddenChanged(); else redraw();
      });
      legendEl.appendChild(it);
      items.push({el: it, classes: classes});
    }
    var others = [];
    for (var c = 0; c < k; c++) {
      if (!present[c]) continue;
      if (grey[c]) others.push(c); else legendItem(pool.names[c], fill[c], [c]);
    }
    if (others.length) legendItem(pool.other_label, pool.other_color, others);

    function resize(side) {
      W = H = side;
      canvas.style.width = side + "px"; canvas.style.height = side + "px";
      canvas.width = Math.round(side * dpr); canvas.height = Math.round(side * dpr);
      legendEl.style.maxHeight = side + "px";
      draw();
    }
    draw();
    return {
      root: root, n: n,
      screenPos: function (i) {
        var r = canvas.getBoundingClientRect();
        return {x: r.left + sx[i], y: r.top + sy[i]};
      },
      redraw: draw,
      resize: resize,
      legendWidth: function () { return legendEl.getBoundingClientRect().width; },
      setLegendVisible: function (on) { legendEl.hidden = !on; },
      syncLegend: function () {
        items.forEach(function (it) {
          it.el.classList.toggle("off", it.classes.every(function (c) { return hidden[c]; }));
        });
      }
    };
  }
  window.VistsneViewer = Viewer;
})();
"""

# Only on pages with bokeh maps (a 3-D-only page ships no bokeh): how the
# page finds bokeh's document and views once bokeh has embedded them.
BOKEH_BIND_JS = r"""
(function () {
  "use strict";
  // Where WebGL is software (no GPU: headless browsers, virtual machines,
  // remote desktops), bokeh's WebGL scatter shades every point on the CPU,
  // several times slower than its 2-D canvas (measured: about 2.5 s against
  // 0.5 s a paint at 100,000 points, headless Chromium on SwiftShader); the
  // maps are then drawn on the canvas. This runs before bokeh reads its
  // document (it embeds once the page is parsed).
  var backend = "webgl", renderer = "";
  try {
    var gl = document.createElement("canvas").getContext("webgl");
    if (!gl) backend = "canvas";
    else {
      var info = gl.getExtension("WEBGL_debug_renderer_info");
      renderer = String(gl.getParameter(info ? info.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
      if (/swiftshader|llvmpipe|softpipe|software|basic render/i.test(renderer)) backend = "canvas";
      var lose = gl.getExtension("WEBGL_lose_context");
      if (lose) lose.loseContext();
    }
  } catch (e) { backend = "canvas"; }
  // The first frame size: as large as the first screen allows (what the
  // page's fit() would pick after bokeh's first layout; each resize after it
  // lays the map out and paints it three times more: 0.9 s a paint at
  // 100,000 points on the canvas). The legend's width is estimated from its
  // labels (bokeh draws them at 8pt helvetica), the toolbar's height fixed.
  var side = null;
  try {
    var page = JSON.parse(document.getElementById("vt-page").textContent);
    var plot = document.querySelector("section.vt-map:not([hidden]) .vt-plot");
    var ctx = document.createElement("canvas").getContext("2d");
    ctx.font = "8pt helvetica";
    var legend = 0;
    page.maps.forEach(function (m) {
      if (m.dim !== 2 || !m.legend_labels) return;
      var widest = ctx.measureText("click to hide").width, label = 0;
      m.legend_labels.forEach(function (t) { label = Math.max(label, ctx.measureText(t).width); });
      legend = Math.max(legend, Math.max(widest, m.legend_cols * (12 + 5 + label)) + 8);
    });
    if (plot && legend) {
      var avH = window.innerHeight - (plot.getBoundingClientRect().top + window.scrollY) - 8;
      var avW = plot.closest(".vt-maps").clientWidth - 16;
      side = Math.floor(Math.min(avW - legend - 26, avH - 35)) - 6;  // short rather than over
      side = side >= 260 && side <= 1600 ? side : null;
    }
  } catch (e) { side = null; }
  Array.prototype.forEach.call(document.querySelectorAll('script[type="application/json"]'), function (s) {
    if (s.id.indexOf("vt") === 0) return;  // the page's own data, not a bokeh document
    var text = s.textContent, was = text;
    if (backend === "canvas")
      text = text.split('"output_backend":"webgl"').join('"output_backend":"canvas"');
    if (side !== null)  // the 2-D maps' frames (1-D maps are half as high: fit() sizes them)
      text = text.split('"frame_width":700,"frame_height":700').join(
        '"frame_width":' + side + ',"frame_height":' + side);
    if (text !== was) s.textContent = text;
  });
  function views() { return window.Bokeh && Bokeh.index ? Array.from(Bokeh.index) : []; }
  window.vistsneBk = {
    backend: backend, renderer: renderer, first_side: side,
    doc: function () { return window.Bokeh && Bokeh.documents ? Bokeh.documents[0] : null; },
    ready: function (n) { return !!this.doc() && views().length >= n; },
    view: function (k) {
      var name = "map" + k;
      return views().find(function (v) { return v.model && v.model.name === name; }) || null;
    }
  };
})();
"""

PAGE_JS = r"""
(function () {
  "use strict";
  function readJSON(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }
  var P = readJSON("vt-page");
  if (!P) return;
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  var sections = $$("section.vt-map");
  var groups = {};
  var S = {k: 0, field: P.color_by, query: "", pin: null};

  function makeGroup(gid) {
    var pool = readJSON("vt-pool-" + gid), K = pool.names.length, n = pool.n;
    var g = {gid: gid, n: n, K: K, pool: pool, lab: pool.lab, idx: pool.idx, names: pool.names,
             paths: pool.paths, fields: pool.fields, tables: pool.tables,
             grey: pool.colors.map(function (c) { return c === null; }),
             hidden: new Uint8Array(K), match: null, color: new Array(n),
             alpha: new Float32Array(n), lw: new Float32Array(n), source: null, filter: null,
             marks: null, shown: P.color_by + "||",  // what the bokeh source holds now
             viewers: [], counts: new Int32Array(K),
             lower: pool.names.map(function (s) { return String(s).toLowerCase(); }),
             lowerPaths: pool.paths ? pool.paths.map(function (s) { return s.toLowerCase(); }) : null};
    for (var i = 0; i < n; i++) g.counts[g.lab[i]]++;
    return g;
  }
  P.maps.forEach(function (m) {
    if (!groups[m.gid]) groups[m.gid] = makeGroup(m.gid);
    m.section = sections[m.k];
    m.nb = m.has_nb ? readJSON("vt-nb-" + m.k) : null;
  });
  function cur() { return P.maps[S.k]; }
  function curGroup() { return groups[cur().gid]; }
  function has(g, f) { return f === "label" || Object.prototype.hasOwnProperty.call(g.tables, f); }
  function imgOf(g, i) {
    if (g.pool.img) return g.pool.img[i];
    if (g.source && g.source.data.img) return g.source.data.img[i];
    return null;
  }

  // ------------------------------------------------------------ colours
  function styleGroup(g) {
    var f = has(g, S.field) ? S.field : "label", t = g.tables[f], n = g.n;
    var base = n <= 2000 ? 1 : 0.8, vals = f === "label" ? g.lab : g.fields[f];
    var ci = g.pool.cidx[f];  // a continuous field's table rows, as the static figures pick them
    for (var i = 0; i < n; i++) {
      var c, a = base, v = vals[i];
      if (f === "label" || f === "prediction") { c = t[v]; if (g.grey[v]) a = 0.5; }
      else if (f === "correct") c = t[v ? 0 : 1];
      else c = t[ci[i]];
      if (g.match && !g.match[i]) a = P.dim_alpha;
      g.color[i] = c; g.alpha[i] = a;
    }
    g.lw.fill(0);
    var marked = [], pinned = "";
    if (S.pin && S.pin.gid === g.gid) {
      var m = cur(), nb = (m.gid === g.gid && m.nb) ? m.nb[S.pin.i] : [];
      nb.forEach(function (j) { g.lw[j] = 1.5; });
      g.lw[S.pin.i] = 3;
      marked = nb.filter(function (j) { return j !== S.pin.i; }).concat([S.pin.i]);
      pinned = S.k + ":" + S.pin.i;
    }
    push(g, marked, f + "|" + (g.match ? S.query : "") + "|" + pinned);
  }
  function push(g, marked, key) {
    // the source starts with the page's first colouring: a change of the
    // source repaints every point, so it is sent only when it differs
    if (g.source && key !== g.shown) {
      g.shown = key;
      var d = g.source.data;
      d.color = g.color.slice(); d.alpha = g.alpha.slice(); d.lw = g.lw.slice();
      g.source.change.emit();
      if (g.marks) g.marks.indices = marked.slice().sort(function (a, b) { return a - b; });
    }
    g.viewers.forEach(function (v) { v.redraw(); });
  }
  function restyleAll() { Object.keys(groups).forEach(function (gid) { styleGroup(groups[gid]); }); }

  function renderKey() {
    var box = $(".vt-key"), m = cur(), g = curGroup(), f = S.field;
    box.replaceChildren();
    box.appendChild(el("div", "vt-key-title", "colour: " + P.field_titles[has(g, f) ? f : "label"]));
    if (!has(g, f)) {
      box.appendChild(el("div", "note", "this map has no " + f + " values (" + P.missing[f] +
                         "); it shows the true class"));
      return;
    }
    if (f === "label" || f === "prediction") {
      box.appendChild(el("div", null, f === "label" ? "the class colours of the class list below"
                         : "the predicted class, in the class colours of the class list below"));
    } else if (f === "correct") {
      var wrong = 0;
      for (var i = 0; i < g.n; i++) if (!g.fields.correct[i]) wrong++;
      [["correct (" + (g.n - wrong) + ")", g.tables.correct[0]],
       ["wrong (" + wrong + ")", g.tables.correct[1]]].forEach(function (e) {
        var it = el("div", "item"), sw = el("span", "sw");
        sw.style.background = e[1]; it.appendChild(sw); it.appendChild(document.createTextNode(e[0]));
        box.appendChild(it);
      });
    } else {
      var t = g.tables[f], stops = [];
      for (var s = 0; s <= 10; s++) stops.push(t[Math.round(s / 10 * (t.length - 1))]);
      var grad = el("div", "vt-grad");
      grad.style.background = "linear-gradient(to right," + stops.join(",") + ")";
      box.appendChild(grad);
      var ticks = el("div", "vt-grad-ticks");
      ["0", "0.5", "1"].forEach(function (x) { ticks.appendChild(el("span", null, x)); });
      box.appendChild(ticks);
    }
  }

  // ------------------------------------------------------------ hidden classes
  function anyHidden(g) { for (var c = 0; c < g.K; c++) if (g.hidden[c]) return true; return false; }
  function applyHidden(g) {
    if (g.filter) {
      if (!anyHidden(g)) g.filter.booleans = null;
      else {
        var b = new Array(g.n);
        for (var i = 0; i < g.n; i++) b[i] = !g.hidden[g.lab[i]];
        g.filter.booleans = b;
      }
    }
    syncLegends(g);
    g.viewers.forEach(function (v) { v.syncLegend(); v.redraw(); });
    if (g === curGroup()) { syncClassList(); updateSearchCount(); }
  }
  var syncing = false;
  function syncLegends(g) {
    syncing = true;
    try {
      P.maps.forEach(function (m) {
        if (m.gid !== g.gid || !m.swatches) return;
        m.swatches.forEach(function (e) {
          var on = !e.classes.every(function (c) { return g.hidden[c]; });
          if (e.r.visible !== on) e.r.visible = on;
        });
      });
    } finally { syncing = false; }
  }
  function legendClicked(m, e) {
    if (syncing) return;
    var g = groups[m.gid];
    e.classes.forEach(function (c) { g.hidden[c] = e.r.visible ? 0 : 1; });
    applyHidden(g);
  }
  function renderClassList() {
    var g = curGroup(), list = $(".vt-class-list");
    list.replaceChildren();
    var order = [];
    for (var c = 0; c < g.K; c++) if (g.counts[c]) order.push(c);
    $(".vt-class-count").textContent = "(" + order.length + ")";
    var frag = document.createDocumentFragment();
    order.forEach(function (c) {
      var it = el("div", "item"), sw = el("span", "sw");
      it.dataset.c = c;
      sw.style.background = g.grey[c] ? g.pool.other_color : g.pool.colors[c];
      it.appendChild(sw);
      var nm = el("span", "nm", g.names[c]); nm.title = g.names[c];
      it.appendChild(nm);
      it.appendChild(el("span", "ct", String(g.counts[c])));
      frag.appendChild(it);
    });
    list.appendChild(frag);
    filterClassList();
    syncClassList();
  }
  function syncClassList() {
    var g = curGroup();
    $$(".vt-class-list .item").forEach(function (it) {
      it.classList.toggle("off", !!g.hidden[+it.dataset.c]);
    });
  }
  function filterClassList() {
    var q = $(".vt-class-filter").value.trim().toLowerCase(), g = curGroup();
    $$(".vt-class-list .item").forEach(function (it) {
      it.hidden = q !== "" && g.lower[+it.dataset.c].indexOf(q) < 0;
    });
  }
  function listed() {
    return $$(".vt-class-list .item").filter(function (it) { return !it.hidden; })
      .map(function (it) { return +it.dataset.c; });
  }
  function setHidden(classes, off) {
    var g = curGroup();
    classes.forEach(function (c) { g.hidden[c] = off ? 1 : 0; });
    applyHidden(g);
  }
  $(".vt-class-list").addEventListener("click", function (ev) {
    var it = ev.target.closest(".item");
    if (!it) return;
    var c = +it.dataset.c;
    setHidden([c], !curGroup().hidden[c]);
  });
  $(".vt-class-filter").addEventListener("input", filterClassList);
  $(".vt-class-all").addEventListener("click", function () { setHidden(listed(), false); });
  $(".vt-class-none").addEventListener("click", function () { setHidden(listed(), true); });

  // ------------------------------------------------------------ search
  var searchTimer = null;
  function setSearch(q) {
    S.query = q;
    var needle = q.trim().toLowerCase();
    Object.keys(groups).forEach(function (gid) {
      var g = groups[gid];
      if (!needle) g.match = null;
      else {
        var hit = g.lower.map(function (s) { return s.indexOf(needle) >= 0; });
        var m = new Uint8Array(g.n);
        for (var i = 0; i < g.n; i++) {
          if (hit[g.lab[i]] || (g.lowerPaths && g.lowerPaths[i].indexOf(needle) >= 0)) m[i] = 1;
        }
        g.match = m;
      }
      styleGroup(g);
    });
    updateSearchCount();
  }
  function matchCount(g) {
    if (!g.match) return null;
    var c = 0, shown = 0;
    for (var i = 0; i < g.n; i++) {
      if (g.hidden[g.lab[i]]) continue;
      shown++;
      if (g.match[i]) c++;
    }
    return {matches: c, shown: shown};
  }
  function updateSearchCount() {
    var g = curGroup(), r = matchCount(g), out = $(".vt-search-count");
    out.textContent = r === null ? "" : r.matches + " of " + r.shown + " points match";
  }
  $(".vt-search").addEventListener("input", function (ev) {
    clearTimeout(searchTimer);
    var q = ev.target.value;
    searchTimer = setTimeout(function () { setSearch(q); }, 120);
  });

  // ------------------------------------------------------------ pin
  function fieldText(g, i) {
    var f = g.fields, out = [];
    out.push(["dataset index", String(g.idx[i])]);
    out.push(["path", g.paths ? g.paths[i] : "n/a"]);
    out.push(["label", g.names[g.lab[i]]]);
    if (f.prediction) {
      var p = g.names[f.prediction[i]];
      if (f.confidence) p += " (" + f.confidence[i].toFixed(2) + ")";
      out.push(["prediction", p + (f.correct && !f.correct[i] ? " \u2717" : "")]);
    } else if (f.confidence) out.push(["confidence", f.confidence[i].toFixed(2)]);
    if (f.suspect) out.push(["suspect", f.suspect[i].toFixed(2)]);
    return out;
  }
  function renderPin() {
    var box = $(".vt-pin"), help = $(".vt-pin-help");
    if (!S.pin || S.pin.gid !== cur().gid) { box.hidden = true; help.hidden = false; return; }
    var g = groups[S.pin.gid], i = S.pin.i, m = cur();
    box.hidden = false; help.hidden = true;
    box.dataset.index = i;
    var img = $(".vt-pin-img"), src = imgOf(g, i);
    img.hidden = !src;
    if (src) img.src = src;
    img.classList.toggle("vt-pixelated", !!P.pixelated);
    var dl = $(".vt-pin-info");
    dl.replaceChildren();
    fieldText(g, i).forEach(function (r) {
      dl.appendChild(el("dt", null, r[0])); dl.appendChild(el("dd", null, r[1]));
    });
    var nbs = $(".vt-nbs"), title = $(".vt-nb-title");
    nbs.replaceChildren();
    if (!m.nb) {
      title.textContent = "no nearest neighbours stored for this map";
      return;
    }
    var list = m.nb[i];
    title.textContent = list.length + " nearest neighbours in feature space (" + m.stage + ")";
    list.forEach(function (j) {
      var fig = el("figure", "vt-nb"), im = el("img");
      fig.dataset.i = j;
      if (g.lab[j] !== g.lab[i]) fig.classList.add("other");
      var s = imgOf(g, j);
      if (s) im.src = s;
      im.alt = g.names[g.lab[j]];
      if (P.pixelated) im.classList.add("vt-pixelated");
      im.style.borderColor = g.grey[g.lab[j]] ? g.pool.other_color : g.pool.colors[g.lab[j]];
      fig.title = g.names[g.lab[j]] + " \u00b7 dataset index " + g.idx[j] +
        (g.paths ? " \u00b7 " + g.paths[j] : "");
      fig.appendChild(im);
      fig.appendChild(el("figcaption", null, g.names[g.lab[j]]));
      nbs.appendChild(fig);
    });
  }
  function pin(i) {
    var g = curGroup();
    var old = S.pin;
    S.pin = (i === null || i === undefined) ? null : {gid: g.gid, i: i};
    if (old && groups[old.gid] !== g) styleGroup(groups[old.gid]);
    styleGroup(g);
    renderPin();
  }
  $(".vt-unpin").addEventListener("click", function () { pin(null); });
  $(".vt-nbs").addEventListener("click", function (ev) {
    var f = ev.target.closest(".vt-nb");
    if (f) pin(+f.dataset.i);
  });

  // ------------------------------------------------------------ bokeh maps
  function bokehView(k) { return window.vistsneBk ? window.vistsneBk.view(k) : null; }
  function tap(k, ev) {
    var m = P.maps[k], g = groups[m.gid], v = bokehView(k);
    if (!v || !g.source) return;
    var X = g.source.data["x" + k], Y = g.source.data["y" + k];
    var xs = v.frame.x_scale, ys = v.frame.y_scale;
    var sx = xs.v_compute(X), sy = ys.v_compute(Y);
    var best = -1, bestD = 64;  // within 8 px
    for (var i = 0; i < g.n; i++) {
      if (g.hidden[g.lab[i]]) continue;
      var dx = sx[i] - ev.sx, dy = sy[i] - ev.sy, dd = dx * dx + dy * dy;
      if (dd < bestD) { bestD = dd; best = i; }
    }
    if (best >= 0) pin(best);
  }

  // ------------------------------------------------------------ selection
  function selected(g) {
    return g.source ? Array.from(g.source.selected.indices).sort(function (a, b) { return a - b; }) : [];
  }
  function updateSelection() {
    var g = curGroup(), sel = selected(g), n = sel.length;
    $(".vt-sel-count").textContent = n ? n + " point" + (n === 1 ? "" : "s") + " selected"
                                       : "no points selected";
    $(".vt-export").disabled = n === 0;
  }
  function csvCell(v) {
    var s = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function selectionCSV(g) {
    var f = g.fields, rows = [["dataset_index", "path", "label", "prediction", "confidence"]];
    selected(g).forEach(function (i) {
      rows.push([g.idx[i], g.paths ? g.paths[i] : "", g.names[g.lab[i]],
                 f.prediction ? g.names[f.prediction[i]] : "",
                 f.confidence ? f.confidence[i] : ""]);
    });
    return rows.map(function (r) { return r.map(csvCell).join(","); }).join("\n") + "\n";
  }
  $(".vt-export").addEventListener("click", function () {
    var g = curGroup();
    var blob = new Blob([selectionCSV(g)], {type: "text/csv"});
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = cur().name + "_selection.csv";
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
  });

  // ------------------------------------------------------------ stages, layout
  var FIT_SLACK = 24;
  function fit(tries) {
    // the map as large as the first screen allows, beside the panel; bokeh
    // lays a map out anew when it is shown, so measure again until it settles
    tries = tries || 0;
    var again = function () { if (tries < 40) setTimeout(function () { fit(tries + 1); }, 50); };
    var m = cur(), sec = sections[S.k], plot = sec.querySelector(".vt-plot");
    var top = plot.getBoundingClientRect().top + window.scrollY;
    var avH = window.innerHeight - top - 8, avW = sec.parentElement.clientWidth - 16;
    var side;
    if (m.dim === 3) {
      var vw = m.viewer;
      if (!vw) return;
      var help = sec.querySelector(".vt3d-help");
      side = Math.min(avW - vw.legendWidth() - 14, avH - (help ? help.offsetHeight : 16) - 4);
      side = Math.max(260, Math.min(1600, Math.floor(side)));
      vw.resize(side);
      return;
    }
    var v = bokehView(m.k);
    if (!v || !m.fig) return;
    var r = v.el.getBoundingClientRect(), fw = v.frame.bbox.width, fh = v.frame.bbox.height;
    if (!r.width || Math.abs(fw - m.fig.frame_width) > 1) { again(); return; }  // not laid out yet
    var extraW = r.width - fw, extraH = r.height - fh;
    side = Math.min(avW - extraW, m.dim === 2 ? avH - extraH : 2 * (avH - extraH));
    side = Math.max(260, Math.min(1600, Math.floor(side)));
    // a frame that fits and is at most FIT_SLACK px short of it stays: each
    // resize costs three paints
    var short = side - m.fig.frame_width;
    if (short !== 0 && !(short > 0 && short <= FIT_SLACK)) {
      // both at once: each change of the figure lays it out and paints it anew
      m.fig.setv({frame_width: side, frame_height: m.dim === 2 ? side : Math.round(side / 2)});
      if (tries < 40) tries = Math.max(tries, 36);  // check once more, after the new layout
      again();
    }
  }
  function colourOptions() {
    var m = cur();
    $$(".vt-color option").forEach(function (o) {
      var ok = m.fields.indexOf(o.value) >= 0;
      o.disabled = !ok;
      o.title = ok ? "" : P.missing[o.value] || "";
    });
  }
  function show(k) {
    var prev = cur();
    S.k = k;
    var m = cur();
    sections.forEach(function (s, j) { s.hidden = j !== k; });
    $$(".vt-stage").forEach(function (b) {
      var on = b.dataset.stage === m.stage;
      b.classList.toggle("on", on); b.setAttribute("aria-pressed", on ? "true" : "false");
    });
    var same = P.maps.filter(function (x) { return x.stage === m.stage; });
    var vbox = $(".vt-variant-box"), vsel = $(".vt-variant");
    vbox.hidden = same.length < 2;
    vsel.replaceChildren();
    same.forEach(function (x) {
      var o = el("option", null, x.variant); o.value = x.k; o.selected = x.k === k;
      vsel.appendChild(o);
    });
    if (S.pin && S.pin.gid !== m.gid) S.pin = null;
    colourOptions();
    if (prev.gid !== m.gid || !$(".vt-class-list").children.length) renderClassList();
    styleGroup(groups[m.gid]);
    renderKey(); renderPin(); updateSelection(); updateSearchCount();
    fit(0);
  }
  function showStage(stage) {
    var same = P.maps.filter(function (x) { return x.stage === stage; });
    if (!same.length) return;
    var want = cur().variant;
    var pick = same.find(function (x) { return x.variant === want; }) || same[0];
    show(pick.k);
  }
  $$(".vt-stage").forEach(function (b) {
    b.addEventListener("click", function () { showStage(b.dataset.stage); });
  });
  $(".vt-variant").addEventListener("change", function (ev) { show(+ev.target.value); });
  $(".vt-color").addEventListener("change", function (ev) { setColor(ev.target.value); });
  function setColor(f) {
    S.field = f;
    $(".vt-color").value = f;
    restyleAll();
    // the legends show the class colours: only while the colour is the class
    P.maps.forEach(function (m) {
      if (m.legend && m.legend.visible !== (f === "label")) m.legend.visible = f === "label";
      if (m.viewer) m.viewer.setLegendVisible(f === "label");
    });
    renderKey();
    setTimeout(function () { fit(0); }, 60);  // the legend's room changed
  }
  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer); resizeTimer = setTimeout(function () { fit(0); }, 100);
  });

  // ------------------------------------------------------------ start
  window.vistsne3d = [];
  $$(".vt3d").forEach(function (root) {
    var k = +root.dataset.k, m = P.maps[k], g = groups[m.gid];
    var v = window.VistsneViewer(root, {
      hidden: g.hidden,
      style: function () { return {color: g.color, alpha: g.alpha, lw: g.lw}; },
      img: function (i) { return imgOf(g, i); },
      pin: function (i) { if (cur().k === k) pin(i); },
      hiddenChanged: function () { applyHidden(g); }
    });
    m.viewer = v; g.viewers.push(v);
    window.vistsne3d.push(v);
  });
  var nfig = P.maps.filter(function (m) { return m.dim !== 3; }).length;
  var api = {
    ready: false, show: show, showStage: showStage, setColor: setColor, search: setSearch,
    pin: pin, tap: tap, fit: fit,
    tipPath: function (gid, i) { var g = groups[gid]; return g && g.paths ? g.paths[i] : ""; },
    selectionChanged: function (gid) { if (gid === cur().gid) updateSelection(); },
    selectionCSV: function () { return selectionCSV(curGroup()); },
    state: function () {
      var g = curGroup(), r = matchCount(g);
      return {k: S.k, stage: cur().stage, field: S.field, query: S.query,
              pin: S.pin ? S.pin.i : null, selected: selected(g).length,
              matches: r ? r.matches : null,
              hidden: Array.from(g.hidden).reduce(function (a, h, c) { if (h) a.push(c); return a; }, [])};
    },
    backend: window.vistsneBk ? window.vistsneBk.backend : null,
    colors: function () { return curGroup().color.slice(); },
    alphas: function () { return Array.from(curGroup().alpha); },
    group: function () { return curGroup(); }
  };
  window.vistsnePage = api;
  function start() {
    if (nfig) {
      var bk = window.vistsneBk;
      if (!bk || !bk.ready(nfig)) { setTimeout(start, 30); return; }
      var doc = bk.doc();
      Object.keys(groups).forEach(function (gid) {
        var g = groups[gid];
        g.source = doc.get_model_by_name("vt-src-" + gid);
        g.filter = doc.get_model_by_name("vt-vis-" + gid);
        g.marks = doc.get_model_by_name("vt-marks-" + gid);
      });
      P.maps.forEach(function (m) {
        if (m.dim === 3) return;
        m.fig = doc.get_model_by_name("map" + m.k);
        m.legend = doc.get_model_by_name("vt-legend-" + m.k);
        m.swatches = (m.legend_classes || []).map(function (classes, j) {
          var e = {classes: classes, r: doc.get_model_by_name("vt-leg-" + m.k + "-" + j)};
          e.r.connect(e.r.properties.visible.change, function () { legendClicked(m, e); });
          return e;
        });
      });
    }
    show(0);
    setColor(S.field);
    api.ready = true;
    document.body.classList.add("vt-ready");
  }
  start();
})();
"""
