// The zones console: wires the picture editor, the side table, the audit panel and the API.
// Everything is computed by the server (validation, masked preview, audit): no second masker here.

import { api } from "./api.js";
import { AuditView, VERDICTS, label } from "./audit.js";
import { Editor } from "./editor.js";
import { t } from "./i18n.js";
import { Store, toCamera, toModel, uniqueId } from "./model.js";
import { Panel } from "./panel.js";

const $ = (sel) => document.querySelector(sel);
const store = new Store();
const editor = new Editor($("#canvas"), store);
const panel = new Panel($("#zones"), store, editor);
const auditView = new AuditView($("#audit-panel"), $("#audit-result"), acceptProposal);
let cameras = [];
let pictureUrl = null;
let maskedUrl = null;
let previewTimer = null;
let previewSeq = 0;
let pending = 0;

// ------------------------------------------------------------------ status and busy
function status(message, kind = "") {
  const node = $("#status");
  node.textContent = message;
  node.className = kind;
}

/** Counts the page's work in flight (body[data-pending]); every user action runs through it whole. */
async function busy(promise) {
  pending += 1;
  document.body.dataset.pending = String(pending);
  try {
    return await promise;
  } finally {
    pending -= 1;
    document.body.dataset.pending = String(pending);
  }
}

function currentInfo() {
  return cameras.find((c) => c.camera_id === store.cameraId) || null;
}

// ------------------------------------------------------------------ rendering
function renderChrome() {
  $("#dirty").hidden = !store.dirty;
  $("#undo").disabled = !store.history.canUndo;
  $("#redo").disabled = !store.history.canRedo;
  for (const [id, mode] of [["#tool-select", "select"], ["#tool-draw", "draw"], ["#tool-hole", "hole"]]) {
    $(id).setAttribute("aria-pressed", String(store.mode === mode));
  }
  const canvas = $("#canvas");
  canvas.classList.toggle("mode-draw", store.mode === "draw");
  canvas.classList.toggle("mode-hole", store.mode === "hole");
  canvas.classList.toggle("masked", $("#masked-view").checked);
  const cameraErrors = store.errors.filter((err) => err.zone === null || !store.camera.zones.some((z, i) => z.id === err.zone || `#${i + 1}` === err.zone));
  $("#camera-errors").replaceChildren(...cameraErrors.map((err) => {
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = err.field ? `${err.field}: ${err.message}` : err.message;
    return p;
  }));
  $("#hint").textContent = editor.hint();
  const has = Boolean(currentInfo() && currentInfo().has_snapshot);
  for (const id of ["#masked-view", "#run-audit", "#fresh"]) $(id).disabled = !has;
}

store.subscribe((kind) => {
  if (kind === "live") {
    editor.render();
    return;
  }
  if (kind === "too-few") {
    status(t("A polygon needs at least 3 points."), "error");
    return;
  }
  editor.render();
  panel.render();
  renderChrome();
  if (kind === "commit") schedulePreview();
});

// ------------------------------------------------------------------ pictures
function setPicture(url) {
  editor.setPicture(url);
}

async function loadPicture(fresh = false) {
  const info = currentInfo();
  if (!info || !info.has_snapshot) {
    setPicture(null);
    editor.setSize(1280, 720);
    return;
  }
  const blob = await api.snapshot(info.camera_id, fresh);
  const bitmap = await createImageBitmap(blob);
  if (pictureUrl) URL.revokeObjectURL(pictureUrl);
  pictureUrl = URL.createObjectURL(blob);
  editor.setSize(bitmap.width, bitmap.height);
  bitmap.close();
  if (!$("#masked-view").checked) setPicture(pictureUrl);
  else schedulePreview(0);
}

function schedulePreview(delay = 250) {
  if (!$("#masked-view").checked) return;
  clearTimeout(previewTimer);
  previewTimer = setTimeout(() => busy(refreshPreview()), delay);
}

async function refreshPreview() {
  const seq = ++previewSeq;
  const id = store.cameraId;
  try {
    const blob = await api.preview(id, toCamera(store.camera));
    if (seq !== previewSeq || id !== store.cameraId || !$("#masked-view").checked) return;
    if (maskedUrl) URL.revokeObjectURL(maskedUrl);
    maskedUrl = URL.createObjectURL(blob);
    setPicture(maskedUrl);
    if (store.errors.length) store.setErrors([]);
  } catch (err) {
    if (seq !== previewSeq) return;
    showFailure(err, t("The masked view could not be made"));
  }
}

function showFailure(err, what) {
  if (err.errors) {
    store.setErrors(err.errors);
    status(`${what}: ${t("fix the errors shown next to the zones")}`, "error");
  } else {
    status(`${what}: ${err.message}`, "error");
  }
}

// ------------------------------------------------------------------ cameras
function fillCameraLists() {
  const label = (c) => `${c.camera_id}${c.site ? ` — ${c.site}` : ""} (${t("{n} zone(s)", { n: c.zones })})`;
  const select = $("#camera-select");
  select.replaceChildren(...cameras.map((c) => new Option(label(c), c.camera_id, false, c.camera_id === store.cameraId)));
  const others = cameras.filter((c) => c.camera_id !== store.cameraId);
  $("#copy-from").replaceChildren(...others.map((c) => new Option(c.camera_id, c.camera_id)));
  $("#copy").disabled = !others.length;
  $("#copy-from").disabled = !others.length;
}

async function loadCamera(id) {
  document.body.dataset.ready = "0";
  const camera = await api.camera(id);
  store.proposals = [];
  store.load(camera);
  fillCameraLists();
  const info = currentInfo();
  $("#site").textContent = (info && info.site) || "";
  history.replaceState(null, "", `#camera=${encodeURIComponent(id)}`);
  let pictureError = null;
  try {
    await loadPicture();
  } catch (err) {
    pictureError = err;
    setPicture(null);
    editor.setSize(1280, 720);
  }
  auditView.render(null, []);
  renderChrome();
  if (pictureError) status(`${t("No picture")}: ${pictureError.message}`, "error");
  else status(t("Camera {id} loaded", { id }));
  document.body.dataset.ready = "1";
}

async function refreshCameraList() {
  cameras = await api.cameras();
  fillCameraLists();
}

// ------------------------------------------------------------------ actions
async function save() {
  const id = store.cameraId;
  try {
    await api.save(id, toCamera(store.camera));
    store.markSaved();
    store.setErrors([]);
    await refreshCameraList();
    status(t("Saved"), "ok");
  } catch (err) {
    showFailure(err, t("Not saved"));
  }
}

async function runAudit() {
  status(t("Auditing…"));
  try {
    const doc = await api.audit(store.cameraId, toCamera(store.camera));
    store.proposals = doc.results[0].proposed_masks.map((m) => ({ ...m }));
    store.setAudit(doc);
    auditView.render(doc, store.proposals);
    status(`${t("Audit")}: ${label(VERDICTS, doc.results[0].verdict)}`, doc.results[0].verdict === "compliant" ? "ok" : "error");
  } catch (err) {
    showFailure(err, t("Audit failed"));
  }
}

function acceptProposal(k) {
  const proposal = store.proposals[k];
  if (!proposal) return;
  const zone = toModel({ camera_id: "", zones: [{ id: uniqueId(store.camera, proposal.id), kind: "privacy_mask", polygon: proposal.polygon }] }).zones[0];
  store.proposals.splice(k, 1);
  store.sel = { zone: store.camera.zones.length, ring: 0, vertex: -1 };
  store.edit((cam) => cam.zones.push(zone));
  auditView.render(store.audit, store.proposals);
  status(t("Proposed mask {id} added as a zone", { id: zone.id }), "ok");
}

async function copyZones() {
  const from = $("#copy-from").value;
  if (!from) return;
  const other = await api.camera(from);
  const zones = toModel(other).zones;
  if (!zones.length) {
    status(t("Camera {id} has no zones", { id: from }));
    return;
  }
  store.edit((cam) => {
    for (const zone of zones) {
      zone.id = uniqueId(cam, zone.id);
      cam.zones.push(zone);
    }
  });
  status(t("{n} zone(s) copied from {id}", { n: zones.length, id: from }), "ok");
}

function setTool(mode) {
  if (mode === "hole" && store.sel.zone < 0) {
    status(t("Select a zone first, then cut a hole in it."), "error");
    return;
  }
  store.setMode(mode);
}

// ------------------------------------------------------------------ wiring
$("#save").addEventListener("click", () => busy(save()));
$("#undo").addEventListener("click", () => store.undo());
$("#redo").addEventListener("click", () => store.redo());
$("#tool-select").addEventListener("click", () => setTool("select"));
$("#tool-draw").addEventListener("click", () => setTool("draw"));
$("#tool-hole").addEventListener("click", () => setTool("hole"));
$("#zoom-in").addEventListener("click", () => editor.zoomCentre(1 / 1.4));
$("#zoom-out").addEventListener("click", () => editor.zoomCentre(1.4));
$("#zoom-fit").addEventListener("click", () => editor.fit());
$("#run-audit").addEventListener("click", () => busy(runAudit()));
$("#copy").addEventListener("click", () => busy(copyZones().catch((err) => status(err.message, "error"))));
$("#fresh").addEventListener("click", () => busy(loadPicture(true).catch((err) => status(err.message, "error"))));
$("#masked-view").addEventListener("change", () => {
  renderChrome();
  if ($("#masked-view").checked) schedulePreview(0);
  else setPicture(pictureUrl);
});
$("#camera-select").addEventListener("change", async (e) => {
  const id = e.target.value;
  if (store.dirty && !window.confirm(t("Discard the unsaved changes of camera {id}?", { id: store.cameraId }))) {
    e.target.value = store.cameraId;
    return;
  }
  await busy(loadCamera(id).catch((err) => status(err.message, "error")));
});

document.addEventListener("keydown", (e) => {
  const typing = e.target.closest && e.target.closest("input, select, textarea");
  const mod = e.ctrlKey || e.metaKey;
  if (mod && e.key.toLowerCase() === "z" && !typing) {
    e.preventDefault();
    if (e.shiftKey) store.redo(); else store.undo();
  } else if (mod && e.key.toLowerCase() === "y" && !typing) {
    e.preventDefault();
    store.redo();
  } else if (mod && e.key.toLowerCase() === "s") {
    e.preventDefault();
    busy(save());
  } else if (typing) {
    return;
  } else if (e.key === " ") {
    editor.spaceDown = true;
  } else if (e.key === "Escape") {
    store.setMode("select");
  } else if (e.key === "Enter" && store.mode !== "select") {
    editor.finishDrawing();
  } else if ((e.key === "Delete" || e.key === "Backspace") && store.mode === "select") {
    const { zone, ring: r, vertex } = store.sel;
    if (zone >= 0 && vertex >= 0) editor.deleteVertex(zone, r, vertex);
    else if (zone >= 0) store.edit((cam) => cam.zones.splice(zone, 1));
  } else if (e.key === "v" || e.key === "V") setTool("select");
  else if (e.key === "n" || e.key === "N") setTool("draw");
  else if (e.key === "h" || e.key === "H") setTool("hole");
});
document.addEventListener("keyup", (e) => { if (e.key === " ") editor.spaceDown = false; });

window.addEventListener("beforeunload", (e) => {
  if (!store.dirty) return;
  e.preventDefault();
  e.returnValue = "";
});

async function start() {
  try {
    cameras = await api.cameras();
    const wanted = decodeURIComponent((location.hash.match(/camera=([^&]+)/) || [])[1] || "");
    const first = cameras.find((c) => c.camera_id === wanted) || cameras[0];
    if (!first) {
      status(t("The zones file holds no cameras."), "error");
      return;
    }
    await loadCamera(first.camera_id);
  } catch (err) {
    status(err.message, "error");
  }
}

busy(start());
