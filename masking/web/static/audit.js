// The audit panel: the verdict of `masking audit` on the picture with the draft zones, its evidence
// and the proposed masks, each with an "Accept" button that adds it as a zone.

import { h } from "./dom.js";
import { t } from "./i18n.js";

const CATEGORIES = () => ({
  guest_room: t("Guest room"),
  dormitory: t("Dormitory"),
  bathroom: t("Bathroom"),
  toilet: t("Toilet"),
  shower: t("Bath or shower room"),
  changing_room: t("Changing room"),
});
const RECOMMENDATIONS = () => ({
  none: t("Nothing to do"),
  "add-masks": t("Add the proposed masks"),
  "re-aim": t("Re-aim or move the camera (the masks would hide too much)"),
  inspect: t("Inspect the view on site"),
});
const VERDICTS = () => ({ violation: t("violation"), review: t("review"), compliant: t("compliant") });
const label = (table, key) => (key ? table()[key] || key : "–");

export { VERDICTS, label };

export class AuditView {
  constructor(section, body, onAccept) {
    this.section = section;
    this.body = body;
    this.onAccept = onAccept;
    body.addEventListener("click", (e) => {
      const button = e.target.closest("button[data-proposal]");
      if (button) this.onAccept(+button.dataset.proposal);
    });
  }

  render(doc, proposals) {
    if (!doc) {
      this.section.hidden = true;
      this.body.replaceChildren();
      return;
    }
    const r = doc.results[0];
    this.section.hidden = false;
    const pct = (v) => `${Math.round(v * 100)}%`;
    const items = [
      h("div", { class: `verdict ${r.verdict}`, id: "verdict", dataset: { verdict: r.verdict }, text: label(VERDICTS, r.verdict) }),
      h("p", {}, `${t("Category")}: ${label(CATEGORIES, r.category)} · ${t("Confidence")}: ${r.confidence.toFixed(2)}`),
      h("p", {}, `${t("Recommendation")}: ${label(RECOMMENDATIONS, r.recommendation)}`),
      h("p", { class: "audit-reason", text: r.reason }),
    ];
    const unmasked = r.evidence.filter((e) => !e.masked);
    const masked = r.evidence.filter((e) => e.masked);
    items.push(h("h3", { text: t("Evidence: {unmasked} unmasked, {masked} masked", { unmasked: unmasked.length, masked: masked.length }) }));
    const list = h("ul", { class: "audit-list" });
    for (const ev of r.evidence) {
      list.append(h("li", { text: `${ev.class_name} (${ev.model}) ${ev.score.toFixed(2)} → ${label(CATEGORIES, ev.category)}${ev.masked ? ` · ${t("masked")}` : ""}` }));
    }
    items.push(list);
    items.push(h("h3", { text: t("Proposed masks") }));
    if (!proposals.length) items.push(h("p", { class: "empty", text: t("None") }));
    const plist = h("ul", { class: "audit-list", id: "proposals" });
    proposals.forEach((m, k) => {
      plist.append(h("li", {}, `${m.id}: ${t("hides {share} of the view", { share: pct(m.area_share) })} `,
        h("button", { type: "button", class: "small primary", dataset: { proposal: k }, text: t("Accept") })));
    });
    items.push(plist);
    this.body.replaceChildren(...items);
  }
}
