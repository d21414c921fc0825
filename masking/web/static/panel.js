// The side table: one card per zone with its id, kind, style and exact coordinates, and the errors
// the server found next to the zone and field they name.

import { h } from "./dom.js";
import { t } from "./i18n.js";
import { KINDS, STYLE_DEFAULTS, ring } from "./model.js";

const KIND_LABELS = () => ({
  privacy_mask: t("Privacy mask"),
  prohibited_view: t("Prohibited view"),
  watch: t("Watch (not masked)"),
});

const hex = (rgb) => `#${rgb.map((c) => Number(c).toString(16).padStart(2, "0")).join("")}`;
const rgb = (value) => [1, 3, 5].map((i) => parseInt(value.slice(i, i + 2), 16));

/** The slot an error's field belongs to: id, kind, style or polygon (else the zone as a whole). */
function slotOf(field) {
  if (!field) return "zone";
  const top = field.split(".")[0];
  return ["id", "kind", "style", "polygon"].includes(top) ? top : "zone";
}

export class Panel {
  constructor(root, store, editor) {
    this.root = root;
    this.store = store;
    this.editor = editor;
    root.addEventListener("change", (e) => this.onChange(e));
    root.addEventListener("click", (e) => this.onClick(e));
  }

  render() {
    const { camera, sel, errors } = this.store;
    const cards = camera.zones.map((zone, i) => this.card(zone, i, i === sel.zone, errors));
    this.root.replaceChildren(...(cards.length ? cards : [h("p", { class: "empty", text: t("No zones yet: press “New zone” and click on the picture.") })]));
    const selected = this.root.querySelector(".zone-card.selected");
    if (selected && selected.scrollIntoView) selected.scrollIntoView({ block: "nearest" });
  }

  card(zone, i, selected, errors) {
    const mine = errors.filter((err) => err.zone !== null && (err.zone === zone.id || err.zone === `#${i + 1}`));
    const slots = {};
    for (const name of ["zone", "id", "kind", "style", "polygon"]) slots[name] = h("div", { class: "errors", dataset: { errorSlot: name } });
    for (const err of mine) {
      slots[slotOf(err.field)].append(h("p", { class: "field-error", dataset: { field: err.field || "" }, text: err.message }));
    }
    const style = zone.style || null;
    const mode = style ? style.mode : "";
    const styleRow = h("div", { class: "row" },
      h("label", {}, `${t("Style")} `, this.select("style.mode", [["", t("Default (black fill)")], ["fill", t("Fill")],
        ["pixelate", t("Pixelate")], ["blur", t("Blur")]], mode)));
    if (mode === "fill") {
      styleRow.append(h("label", {}, `${t("Colour")} `, h("input", { type: "color", value: hex(style.color || [0, 0, 0]), dataset: { field: "style.color" } })));
    } else if (mode === "pixelate") {
      styleRow.append(h("label", {}, `${t("Block (px)")} `, h("input", { type: "number", min: 4, max: 256, step: 1, value: style.block ?? 16, dataset: { field: "style.block" } })));
    } else if (mode === "blur") {
      styleRow.append(h("label", {}, `${t("Strength (px)")} `, h("input", { type: "number", min: 9, max: 255, step: 2, value: style.strength ?? 31, dataset: { field: "style.strength" } })));
    }
    const card = h("section", { class: `zone-card${selected ? " selected" : ""}${mine.length ? " has-error" : ""}`,
      dataset: { index: i, zoneId: zone.id } },
      h("header", {},
        h("span", { class: `swatch kind-${zone.kind}` }),
        h("input", { type: "text", value: zone.id, "aria-label": t("Zone id"), dataset: { field: "id" }, spellcheck: "false" }),
        h("button", { type: "button", class: "small", dataset: { action: "select" }, text: t("Select") }),
        h("button", { type: "button", class: "small danger", dataset: { action: "delete-zone" }, title: t("Delete zone"), text: "✕" })),
      slots.id, slots.zone,
      h("div", { class: "row" }, h("label", {}, `${t("Kind")} `, this.select("kind", KINDS.map((k) => [k, KIND_LABELS()[k]]), zone.kind))),
      slots.kind, styleRow, slots.style);
    const rings = [zone.polygon.exterior, ...zone.polygon.holes];
    rings.forEach((pts, r) => card.append(this.table(pts, r, i)));
    card.append(slots.polygon);
    card.append(h("div", { class: "row" }, h("button", { type: "button", class: "small", dataset: { action: "add-hole" }, text: t("Cut hole") })));
    return card;
  }

  select(field, options, value) {
    const node = h("select", { dataset: { field } });
    for (const [v, label] of options) node.append(h("option", { value: v, selected: v === value, text: label }));
    return node;
  }

  table(pts, r, zoneIndex) {
    const caption = h("caption", {}, r === 0 ? t("Outline (x, y: 0-1 of width, height)") : t("Hole {n}", { n: r }));
    if (r > 0) caption.append(" ", h("button", { type: "button", class: "small danger", dataset: { action: "delete-hole", ring: r }, text: t("Delete hole") }));
    const table = h("table", { class: "coords", dataset: { ring: r } }, caption);
    const sel = this.store.sel;
    pts.forEach(([x, y], v) => {
      const selected = sel.zone === zoneIndex && sel.ring === r && sel.vertex === v;
      table.append(h("tr", { class: selected ? "selected" : null },
        h("td", { class: "idx", text: String(v + 1) }),
        h("td", {}, h("input", { type: "number", min: 0, max: 1, step: 0.0001, value: x, "aria-label": "x", class: "coord", dataset: { ring: r, vertex: v, axis: 0 } })),
        h("td", {}, h("input", { type: "number", min: 0, max: 1, step: 0.0001, value: y, "aria-label": "y", class: "coord", dataset: { ring: r, vertex: v, axis: 1 } })),
        h("td", {}, h("button", { type: "button", class: "small", title: t("Delete vertex"), dataset: { action: "delete-vertex", ring: r, vertex: v }, text: "−" }))));
    });
    return table;
  }

  onChange(e) {
    const card = e.target.closest(".zone-card");
    if (!card) return;
    const i = +card.dataset.index;
    const target = e.target;
    const store = this.store;
    if (target.classList.contains("coord")) {
      const value = parseFloat(target.value);
      if (!Number.isFinite(value)) { this.render(); return; }
      const { ring: r, vertex, axis } = target.dataset;
      store.sel = { zone: i, ring: +r, vertex: +vertex };
      store.edit((cam) => { ring(cam.zones[i], +r)[+vertex][+axis] = value; });
      return;
    }
    const field = target.dataset.field;
    const value = target.value;
    store.sel = { ...store.sel, zone: i };
    store.edit((cam) => {
      const zone = cam.zones[i];
      if (field === "id") zone.id = value.trim();
      else if (field === "kind") zone.kind = value;
      else if (field === "style.mode") {
        if (!value) delete zone.style;
        else if (!zone.style || zone.style.mode !== value) zone.style = structuredClone(STYLE_DEFAULTS[value]);
      } else if (field === "style.color") zone.style.color = rgb(value);
      else if (field === "style.block" || field === "style.strength") zone.style[field.slice(6)] = parseInt(value, 10);
    });
  }

  onClick(e) {
    const button = e.target.closest("button[data-action]");
    const card = e.target.closest(".zone-card");
    if (!card) return;
    const i = +card.dataset.index;
    const store = this.store;
    if (!button) {
      if (store.sel.zone !== i && !e.target.closest("input, select")) store.select({ zone: i });
      return;
    }
    const { action } = button.dataset;
    if (action === "select") store.select({ zone: i });
    else if (action === "delete-zone") store.edit((cam) => cam.zones.splice(i, 1));
    else if (action === "add-hole") {
      store.select({ zone: i });
      store.setMode("hole");
    } else if (action === "delete-hole") {
      const r = +button.dataset.ring;
      store.sel = { zone: i, ring: 0, vertex: -1 };
      store.edit((cam) => cam.zones[i].polygon.holes.splice(r - 1, 1));
    } else if (action === "delete-vertex") {
      this.editor.deleteVertex(i, +button.dataset.ring, +button.dataset.vertex);
    }
  }
}
