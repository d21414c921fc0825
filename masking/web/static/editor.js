// The picture editor: the camera's picture with its zones drawn in SVG, in image pixel units.
//
// Select mode: click a zone to select it, drag a vertex to move it, press on an edge to insert a
// vertex there (and drag it), double-click a vertex to delete it, drag the picture to pan.
// Draw mode ("New zone") and hole mode: click points; click the first point (or press Enter) to
// close. Mouse wheel zooms around the pointer; the middle button (or Space + drag) pans anywhere.

import { t } from "./i18n.js";
import { ring, round5, toModel, uniqueId } from "./model.js";

const NS = "http://www.w3.org/2000/svg";
const CLOSE_PX = 10; // a click this close (screen pixels) to the first point closes the polygon
const HANDLE_PX = 6;
const DOUBLE_MS = 450; // two presses on one vertex within this time delete it (a double-click)

function el(name, attrs, parent) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (parent) parent.appendChild(node);
  return node;
}

function ringPath(points, w, h) {
  if (!points.length) return "";
  return `M${points.map(([x, y]) => `${x * w},${y * h}`).join("L")}Z`;
}

export class Editor {
  constructor(svg, store) {
    this.svg = svg;
    this.store = store;
    this.picture = svg.querySelector("#picture");
    this.blank = svg.querySelector("#blank");
    this.layers = {
      zones: svg.querySelector("#layer-zones"),
      audit: svg.querySelector("#layer-audit"),
      draw: svg.querySelector("#layer-draw"),
      handles: svg.querySelector("#layer-handles"),
    };
    this.W = 1280;
    this.H = 720;
    this.vb = { x: 0, y: 0, w: this.W, h: this.H };
    this.drag = null;
    this.lastPress = null;
    this.pan = null;
    this.cursor = null;
    this.spaceDown = false;
    svg.addEventListener("pointerdown", (e) => this.onDown(e));
    svg.addEventListener("pointermove", (e) => this.onMove(e));
    svg.addEventListener("pointerup", (e) => this.onUp(e));
    svg.addEventListener("pointercancel", (e) => this.onUp(e));
    svg.addEventListener("wheel", (e) => this.onWheel(e), { passive: false });
    svg.addEventListener("contextmenu", (e) => e.preventDefault());
    new ResizeObserver(() => this.render()).observe(svg);
    this.applyViewBox();
  }

  // ---------------------------------------------------------------- geometry
  setSize(width, height) {
    this.W = width;
    this.H = height;
    for (const node of [this.picture, this.blank]) {
      node.setAttribute("width", width);
      node.setAttribute("height", height);
    }
    this.fit();
  }

  setPicture(url) {
    if (url) this.picture.setAttribute("href", url);
    else this.picture.removeAttribute("href");
    this.blank.style.display = url ? "none" : "";
  }

  fit() {
    this.vb = { x: 0, y: 0, w: this.W, h: this.H };
    this.applyViewBox();
  }

  applyViewBox() {
    const { x, y, w, h } = this.vb;
    this.svg.setAttribute("viewBox", `${x} ${y} ${w} ${h}`);
    this.render();
  }

  /** Image pixels per screen pixel (the SVG is shown with "meet"). */
  unitsPerPx() {
    const cw = this.svg.clientWidth || 1;
    const ch = this.svg.clientHeight || 1;
    return Math.max(this.vb.w / cw, this.vb.h / ch);
  }

  toImage(clientX, clientY) {
    const m = this.svg.getScreenCTM();
    return new DOMPoint(clientX, clientY).matrixTransform(m.inverse());
  }

  toNorm(e) {
    const q = this.toImage(e.clientX, e.clientY);
    return [round5(q.x / this.W), round5(q.y / this.H)];
  }

  screenDistance(point, e) {
    const m = this.svg.getScreenCTM();
    const s = new DOMPoint(point[0] * this.W, point[1] * this.H).matrixTransform(m);
    return Math.hypot(s.x - e.clientX, s.y - e.clientY);
  }

  zoomAt(factor, clientX, clientY) {
    const q = this.toImage(clientX, clientY);
    const w = Math.min(this.W * 1.5, Math.max(this.W / 50, this.vb.w * factor));
    const k = w / this.vb.w;
    this.vb = { x: q.x - (q.x - this.vb.x) * k, y: q.y - (q.y - this.vb.y) * k, w, h: (w * this.H) / this.W };
    this.applyViewBox();
  }

  zoomCentre(factor) {
    const r = this.svg.getBoundingClientRect();
    this.zoomAt(factor, r.left + r.width / 2, r.top + r.height / 2);
  }

  // ---------------------------------------------------------------- pointer
  onDown(e) {
    if (e.button === 1 || (e.button === 0 && this.spaceDown)) {
      this.startPan(e);
      return;
    }
    if (e.button !== 0) return;
    this.svg.focus({ preventScroll: true });
    const store = this.store;
    if (store.mode === "draw" || store.mode === "hole") {
      e.preventDefault();
      this.addPoint(e);
      return;
    }
    const d = e.target.dataset || {};
    const cls = e.target.classList;
    if (cls.contains("handle")) {
      const sel = { zone: +d.zone, ring: +d.ring, vertex: +d.vertex };
      const key = `${sel.zone}/${sel.ring}/${sel.vertex}`;
      const now = performance.now();
      if (this.lastPress && this.lastPress.key === key && now - this.lastPress.time < DOUBLE_MS) {
        this.lastPress = null; // a double press deletes the vertex
        this.deleteVertex(sel.zone, sel.ring, sel.vertex);
        return;
      }
      this.lastPress = { key, time: now };
      store.select(sel);
      this.drag = { ...sel, moved: false, inserted: false };
      this.svg.setPointerCapture(e.pointerId);
    } else if (cls.contains("edge")) {
      const sel = { zone: +d.zone, ring: +d.ring, vertex: +d.edge + 1 };
      const p = this.toNorm(e);
      store.live((cam) => ring(cam.zones[sel.zone], sel.ring).splice(sel.vertex, 0, p));
      store.select(sel);
      this.drag = { ...sel, moved: false, inserted: true };
      this.svg.setPointerCapture(e.pointerId);
    } else if (cls.contains("zone")) {
      store.select({ zone: +d.zone });
    } else {
      store.select({});
      this.startPan(e);
    }
  }

  startPan(e) {
    e.preventDefault();
    this.pan = { x: e.clientX, y: e.clientY, vb: { ...this.vb }, k: this.unitsPerPx() };
    this.svg.classList.add("panning");
    this.svg.setPointerCapture(e.pointerId);
  }

  onMove(e) {
    if (this.drag) {
      const p = this.toNorm(e);
      const { zone, ring: r, vertex } = this.drag;
      this.drag.moved = true;
      this.store.live((cam) => { ring(cam.zones[zone], r)[vertex] = p; });
    } else if (this.pan) {
      const { x, y, vb, k } = this.pan;
      this.vb = { ...vb, x: vb.x - (e.clientX - x) * k, y: vb.y - (e.clientY - y) * k };
      this.applyViewBox();
    } else if (this.store.drawing.length) {
      this.cursor = this.toNorm(e);
      this.renderDraw();
    }
  }

  onUp(e) {
    if (this.svg.hasPointerCapture(e.pointerId)) this.svg.releasePointerCapture(e.pointerId);
    if (this.drag) {
      const { moved, inserted } = this.drag;
      this.drag = null;
      if (moved || inserted) this.store.commit();
    }
    if (this.pan) {
      this.pan = null;
      this.svg.classList.remove("panning");
    }
  }

  onWheel(e) {
    e.preventDefault();
    this.zoomAt(Math.exp(e.deltaY * 0.0015), e.clientX, e.clientY);
  }

  // ---------------------------------------------------------------- edits
  deleteVertex(zone, r, vertex) {
    const pts = ring(this.store.camera.zones[zone], r);
    if (pts.length <= 3) {
      this.store.notify("too-few");
      return false;
    }
    this.store.sel = { zone, ring: r, vertex: -1 };
    this.store.edit((cam) => ring(cam.zones[zone], r).splice(vertex, 1));
    return true;
  }

  addPoint(e) {
    const pts = this.store.drawing;
    if (pts.length >= 3 && this.screenDistance(pts[0], e) <= CLOSE_PX) {
      this.finishDrawing();
      return;
    }
    pts.push(this.toNorm(e));
    this.cursor = null;
    this.renderDraw();
  }

  finishDrawing() {
    const store = this.store;
    const pts = store.drawing.map((p) => [...p]);
    if (pts.length < 3) return false;
    if (store.mode === "hole") {
      const zone = store.sel.zone;
      store.sel = { zone, ring: store.camera.zones[zone].polygon.holes.length + 1, vertex: -1 };
      store.edit((cam) => cam.zones[zone].polygon.holes.push(pts));
    } else {
      const id = uniqueId(store.camera, `zone-${store.camera.zones.length + 1}`);
      const zone = toModel({ camera_id: "", zones: [{ id, kind: "privacy_mask", polygon: pts }] }).zones[0];
      store.sel = { zone: store.camera.zones.length, ring: 0, vertex: -1 };
      store.edit((cam) => cam.zones.push(zone));
    }
    store.setMode("select");
    return true;
  }

  // ---------------------------------------------------------------- drawing
  render() {
    const { W, H } = this;
    const k = this.unitsPerPx();
    const store = this.store;
    const errorZones = new Set(store.errors.map((err) => err.zone));
    for (const layer of Object.values(this.layers)) layer.replaceChildren();
    store.camera.zones.forEach((zone, i) => {
      const { exterior, holes } = zone.polygon;
      const d = [exterior, ...holes].map((pts) => ringPath(pts, W, H)).join(" ");
      const classes = ["zone", `kind-${zone.kind}`];
      if (i === store.sel.zone) classes.push("selected");
      if (errorZones.has(zone.id) || errorZones.has(`#${i + 1}`)) classes.push("invalid");
      el("path", { d, "fill-rule": "evenodd", class: classes.join(" "), "data-zone": i, "vector-effect": "non-scaling-stroke" },
        this.layers.zones);
      if (exterior.length) {
        const label = el("text", { x: exterior[0][0] * W + 4 * k, y: exterior[0][1] * H - 6 * k, class: "zone-label",
          "font-size": 13 * k, "stroke-width": 3 * k }, this.layers.zones);
        label.textContent = zone.id;
      }
    });
    const zone = store.camera.zones[store.sel.zone];
    if (zone && store.mode === "select") this.renderHandles(zone, store.sel.zone, k);
    this.renderAudit(k);
    this.renderDraw();
  }

  renderHandles(zone, i, k) {
    const rings = [zone.polygon.exterior, ...zone.polygon.holes];
    rings.forEach((pts, r) => {
      pts.forEach((p, v) => {
        const q = pts[(v + 1) % pts.length];
        el("line", { x1: p[0] * this.W, y1: p[1] * this.H, x2: q[0] * this.W, y2: q[1] * this.H, class: "edge",
          "data-zone": i, "data-ring": r, "data-edge": v, "vector-effect": "non-scaling-stroke" }, this.layers.handles);
      });
    });
    rings.forEach((pts, r) => {
      pts.forEach((p, v) => {
        const selected = this.store.sel.ring === r && this.store.sel.vertex === v;
        el("circle", { cx: p[0] * this.W, cy: p[1] * this.H, r: HANDLE_PX * k, class: `handle${selected ? " selected" : ""}`,
          "data-zone": i, "data-ring": r, "data-vertex": v, "vector-effect": "non-scaling-stroke" }, this.layers.handles);
      });
    });
  }

  renderDraw() {
    const layer = this.layers.draw;
    layer.replaceChildren();
    const pts = this.store.drawing;
    if (!pts.length) return;
    const k = this.unitsPerPx();
    const all = this.cursor ? [...pts, this.cursor] : pts;
    el("polyline", { points: all.map(([x, y]) => `${x * this.W},${y * this.H}`).join(" "), class: "draft-line",
      "vector-effect": "non-scaling-stroke" }, layer);
    pts.forEach((p, v) => {
      el("circle", { cx: p[0] * this.W, cy: p[1] * this.H, r: (v === 0 ? HANDLE_PX + 2 : HANDLE_PX - 1) * k,
        class: `handle${v === 0 ? " first" : ""}`, "vector-effect": "non-scaling-stroke" }, layer);
    });
  }

  renderAudit(k) {
    const doc = this.store.audit;
    if (!doc || !doc.results || !doc.results.length) return;
    const result = doc.results[0];
    for (const ev of result.evidence) {
      const [x0, y0, x1, y1] = ev.xyxy_norm;
      el("rect", { x: x0 * this.W, y: y0 * this.H, width: (x1 - x0) * this.W, height: (y1 - y0) * this.H,
        class: `evidence${ev.masked ? " masked" : ""}`, "vector-effect": "non-scaling-stroke" }, this.layers.audit);
      const label = el("text", { x: x0 * this.W + 3 * k, y: y0 * this.H + 14 * k, class: "evidence-label",
        "font-size": 12 * k, "stroke-width": 3 * k }, this.layers.audit);
      label.textContent = `${ev.class_name} ${ev.score.toFixed(2)}`;
    }
    for (const proposal of this.store.proposals || []) {
      el("path", { d: ringPath(proposal.polygon, this.W, this.H), class: "proposal", "vector-effect": "non-scaling-stroke" },
        this.layers.audit);
    }
  }

  hint() {
    const mode = this.store.mode;
    if (mode === "draw") return t("Click the points of the new zone; click the first point or press Enter to close it; Esc cancels.");
    if (mode === "hole") return t("Click the points of the hole; click the first point or press Enter to close it; Esc cancels.");
    return t("Drag a vertex to move it, press on an edge to add one, double-click a vertex to delete it; drag the picture to pan, wheel to zoom.");
  }
}
