// The camera being edited, its undo history and the editor's selection.
//
// A camera arrives as the JSON of the zones file. In the model every zone's polygon is
// {exterior, holes}; the form the file used ([[x, y], ...] or {exterior, holes}) is remembered in
// `_`-prefixed keys so that saving writes the same form back. Coordinates are normalised 0-1.

export const KINDS = ["privacy_mask", "prohibited_view", "watch"];
export const STYLE_DEFAULTS = {
  fill: { mode: "fill", color: [0, 0, 0] },
  pixelate: { mode: "pixelate", block: 16 },
  blur: { mode: "blur", strength: 31 },
};

/** A normalised coordinate clamped to 0-1 and rounded to 5 decimals (0.00001 of the frame). */
export function round5(v) {
  return Math.round(Math.min(1, Math.max(0, v)) * 1e5) / 1e5;
}

const clonePoints = (ring) => (Array.isArray(ring) ? ring.map((p) => (Array.isArray(p) ? [...p] : p)) : []);

export function zoneToModel(zone) {
  const z = structuredClone(zone);
  const p = zone.polygon;
  if (p && !Array.isArray(p) && typeof p === "object") {
    z.polygon = { exterior: clonePoints(p.exterior), holes: (p.holes || []).map(clonePoints) };
    z._form = "map";
    z._holesKey = Object.prototype.hasOwnProperty.call(p, "holes");
  } else {
    z.polygon = { exterior: clonePoints(p), holes: [] };
    z._form = "list";
  }
  return z;
}

function zoneToJson(z) {
  const out = {};
  for (const [key, value] of Object.entries(z)) {
    if (key.startsWith("_")) continue;
    if (key !== "polygon") {
      out[key] = structuredClone(value);
      continue;
    }
    const { exterior, holes } = value;
    if (z._form === "map" || holes.length) {
      out.polygon = { exterior: clonePoints(exterior) };
      if (holes.length || z._holesKey) out.polygon.holes = holes.map(clonePoints);
    } else {
      out.polygon = clonePoints(exterior);
    }
  }
  return out;
}

/** Camera JSON (as in the zones file) -> model. */
export function toModel(camera) {
  const model = structuredClone(camera);
  model._zonesKey = Object.prototype.hasOwnProperty.call(camera, "zones");
  model.zones = (camera.zones || []).map(zoneToModel);
  return model;
}

/** Model -> camera JSON for the API (what PUT, preview and audit take). */
export function toCamera(model) {
  const out = {};
  for (const [key, value] of Object.entries(model)) {
    if (key.startsWith("_")) continue;
    if (key === "zones") {
      if (value.length || model._zonesKey) out.zones = value.map(zoneToJson);
    } else {
      out[key] = structuredClone(value);
    }
  }
  return out;
}

/** An id not used by any zone of `model`: `base`, else `base-2`, `base-3`... */
export function uniqueId(model, base) {
  const used = new Set(model.zones.map((z) => z.id));
  if (!used.has(base)) return base;
  for (let k = 2; ; k += 1) if (!used.has(`${base}-${k}`)) return `${base}-${k}`;
}

/** Ring `r` of zone `z`: 0 the exterior, k the hole k-1. */
export function ring(zone, r) {
  return r === 0 ? zone.polygon.exterior : zone.polygon.holes[r - 1];
}

export class History {
  constructor(limit = 300) {
    this.limit = limit;
    this.states = [];
    this.index = -1;
  }

  reset(state) {
    this.states = [structuredClone(state)];
    this.index = 0;
  }

  push(state) {
    this.states.splice(this.index + 1);
    this.states.push(structuredClone(state));
    if (this.states.length > this.limit) this.states.shift();
    this.index = this.states.length - 1;
  }

  get canUndo() { return this.index > 0; }
  get canRedo() { return this.index < this.states.length - 1; }

  undo() {
    if (!this.canUndo) return null;
    this.index -= 1;
    return structuredClone(this.states[this.index]);
  }

  redo() {
    if (!this.canRedo) return null;
    this.index += 1;
    return structuredClone(this.states[this.index]);
  }
}

/**
 * The editing state shared by the picture editor and the side panel. `edit` changes the camera and
 * records one undo step; `live` changes it without one (a vertex being dragged; `commit` ends it).
 * Listeners get "commit" (the camera changed), "live", "select" or "view".
 */
export class Store {
  constructor() {
    this.cameraId = null;
    this.camera = toModel({ camera_id: "", zones: [] });
    this.history = new History();
    this.saved = "";
    this.sel = { zone: -1, ring: 0, vertex: -1 };
    this.mode = "select";
    this.drawing = [];
    this.errors = [];
    this.audit = null;
    this.proposals = [];
    this.listeners = [];
  }

  subscribe(fn) { this.listeners.push(fn); }
  notify(kind) { for (const fn of this.listeners) fn(kind); }

  load(cameraJson) {
    this.cameraId = cameraJson.camera_id;
    this.camera = toModel(cameraJson);
    this.history.reset(this.camera);
    this.saved = JSON.stringify(toCamera(this.camera));
    this.sel = { zone: -1, ring: 0, vertex: -1 };
    this.mode = "select";
    this.drawing = [];
    this.errors = [];
    this.audit = null;
    this.notify("commit");
  }

  get dirty() { return JSON.stringify(toCamera(this.camera)) !== this.saved; }
  markSaved() { this.saved = JSON.stringify(toCamera(this.camera)); this.notify("view"); }

  edit(fn) {
    fn(this.camera);
    this.commit();
  }

  live(fn) {
    fn(this.camera);
    this.notify("live");
  }

  commit() {
    this.history.push(this.camera);
    this.errors = [];
    this.fixSelection();
    this.notify("commit");
  }

  restore(state) {
    if (!state) return;
    this.camera = state;
    this.errors = [];
    this.fixSelection();
    this.notify("commit");
  }

  undo() { this.restore(this.history.undo()); }
  redo() { this.restore(this.history.redo()); }

  select(sel) {
    this.sel = { zone: -1, ring: 0, vertex: -1, ...sel };
    this.fixSelection();
    this.notify("select");
  }

  fixSelection() {
    const zone = this.camera.zones[this.sel.zone];
    if (!zone) { this.sel = { zone: -1, ring: 0, vertex: -1 }; return; }
    if (this.sel.ring > zone.polygon.holes.length) this.sel = { ...this.sel, ring: 0, vertex: -1 };
    if (this.sel.vertex >= ring(zone, this.sel.ring).length) this.sel = { ...this.sel, vertex: -1 };
  }

  setMode(mode) {
    this.mode = mode;
    this.drawing = [];
    this.notify("view");
  }

  setErrors(errors) {
    this.errors = errors || [];
    this.notify("view");
  }

  setAudit(doc) {
    this.audit = doc;
    this.notify("view");
  }
}
