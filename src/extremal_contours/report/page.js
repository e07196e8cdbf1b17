"use strict";
// The report's page: the gallery, the table and the large view, built from the one embedded JSON
// object (so that a thousand pictures cost one parse, not a thousand parsed elements).
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const columns = data.columns;
  const rows = data.rows; // each: [picture index, cell, cell, ...] in the columns' order
  const pictures = data.pictures;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value !== null && value !== undefined) node.setAttribute(key, String(value));
    }
    for (const child of children) node.append(child);
    return node;
  }

  function fmt(value) {
    if (value === null || value === undefined) return "\u2013";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return String(value);
    if (value !== 0 && Math.abs(value) < 0.01) return value.toPrecision(2);
    return value.toFixed(3);
  }

  function escapeAttr(text) {
    return String(text).replace(/[&<>"']/g, (c) => "&#" + c.charCodeAt(0) + ";");
  }

  // -- pictures: a picture, or a grey box saying there is none; outlines drawn over it as SVG.
  function picture(src, alt, width, height, outlines) {
    const box = el("div", { class: "pic" });
    if (src) {
      box.append(el("img", { loading: "lazy", src: src, alt: alt }));
    } else {
      const missing = el("div", { class: "missing" }, "no picture");
      if (width && height) missing.style.aspectRatio = width + " / " + height;
      box.append(missing);
    }
    if (outlines && outlines.length) {
      const paths = outlines.map((o) => '<path class="' + escapeAttr(o.kind) + '" d="' + escapeAttr(o.d) + '"></path>').join("");
      const holder = document.createElement("div");
      holder.innerHTML = '<svg viewBox="0 0 ' + width + " " + height + '" preserveAspectRatio="none">' + paths + "</svg>";
      box.append(holder.firstChild);
    }
    return box;
  }

  // -- the gallery: a card per picture.
  const gallery = document.getElementById("gallery");
  const cards = pictures.map((p, i) => {
    const thumbs = el("div", { class: "thumbs" });
    for (const t of p.thumbs) {
      const item = el("figure", { class: "thumb" });
      item.append(t.src ? el("img", { loading: "lazy", src: t.src, alt: p.name + (t.label ? " (" + t.label + ")" : "") }) : el("div", { class: "missing" }, "no picture"));
      if (t.label) item.append(el("figcaption", {}, t.label));
      thumbs.append(item);
    }
    const lines = el("ul", {}, ...p.lines.map((line) => el("li", {}, line)));
    const flags = p.flags.map((f) => el("span", { class: "flag" }, f));
    const caption = el("figcaption", {}, el("strong", {}, p.name), el("br"), p.caption, lines, ...flags);
    const card = el("figure", { class: "card", "data-picture": i, tabindex: 0 }, thumbs, caption);
    card.addEventListener("click", () => openView(i));
    card.addEventListener("keydown", (event) => {
      if (event.key === "Enter") openView(i);
    });
    return card;
  });
  const cardFragment = document.createDocumentFragment();
  cards.forEach((card) => cardFragment.append(card));
  gallery.append(cardFragment);

  // -- the table: built once; sorting re-orders its rows, filtering hides them.
  const table = document.getElementById("table");
  const tbody = table.tBodies[0];
  const headRow = el("tr");
  const heads = columns.map((c, k) => {
    const th = el("th", { "data-key": c.key, scope: "col", title: "sort by " + c.label }, c.label);
    th.addEventListener("click", () => sortBy(k));
    headRow.append(th);
    return th;
  });
  table.tHead.append(headRow);
  const trs = rows.map((r) => {
    const tr = el("tr", { "data-picture": r[0] });
    for (let k = 0; k < columns.length; k++) {
      tr.append(el("td", { class: columns[k].num ? "num" : null }, fmt(r[k + 1])));
    }
    tr.addEventListener("click", () => openView(r[0]));
    return tr;
  });
  const texts = rows.map((r) => r.slice(1).map(fmt).join(" ").toLowerCase() + " " + pictures[r[0]].caption.toLowerCase());
  const rowFragment = document.createDocumentFragment();
  trs.forEach((tr) => rowFragment.append(tr));
  tbody.append(rowFragment);

  let sortColumn = -1;
  let ascending = true;
  function compare(a, b, numeric) {
    const missingA = a === null || a === undefined;
    const missingB = b === null || b === undefined;
    if (missingA || missingB) return missingA === missingB ? 0 : missingA ? 1 : -1; // missing last, either way
    if (numeric) return a - b;
    return String(a).localeCompare(String(b), undefined, { numeric: true });
  }
  function sortBy(k) {
    ascending = sortColumn === k ? !ascending : true;
    sortColumn = k;
    const numeric = columns[k].num;
    const order = rows.map((_, n) => n);
    order.sort((m, n) => {
      const a = rows[m][k + 1];
      const b = rows[n][k + 1];
      const missing = a === null || a === undefined || b === null || b === undefined;
      const c = missing ? compare(a, b, numeric) : (ascending ? 1 : -1) * compare(a, b, numeric);
      return c || m - n;
    });
    const fragment = document.createDocumentFragment();
    order.forEach((n) => fragment.append(trs[n]));
    tbody.append(fragment);
    heads.forEach((th, j) => (j === k ? th.setAttribute("aria-sort", ascending ? "ascending" : "descending") : th.removeAttribute("aria-sort")));
  }

  const filter = document.getElementById("filter");
  const count = document.getElementById("count");
  function applyFilter() {
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = new Set();
    let visible = 0;
    trs.forEach((tr, n) => {
      const keep = words.every((w) => texts[n].includes(w));
      tr.hidden = !keep;
      if (keep) {
        visible++;
        shown.add(rows[n][0]);
      }
    });
    cards.forEach((card, i) => (card.hidden = words.length > 0 && !shown.has(i)));
    count.textContent = visible + " of " + rows.length + " rows";
  }
  filter.addEventListener("input", applyFilter);
  applyFilter();

  // -- the large view of one picture.
  const view = document.getElementById("view");
  const figures = document.getElementById("view-figures");
  let current = -1;
  function openView(i) {
    const p = pictures[i];
    current = i;
    document.getElementById("view-title").textContent = p.name;
    document.getElementById("view-caption").textContent = p.caption;
    figures.replaceChildren();
    let group = "";
    for (const f of p.figures) {
      if (f.group && f.group !== group) figures.append(el("h3", { class: "group" }, f.group));
      group = f.group || "";
      const lines = el("div", { class: "lines" }, ...f.lines.map((line) => el("div", {}, line)));
      const caption = el("figcaption", {}, el("strong", {}, f.title), lines);
      figures.append(el("figure", { class: "fig" }, picture(f.src, p.name + ": " + f.title, f.w, f.h, f.outlines), caption));
    }
    view.hidden = false;
    document.getElementById("view-close").focus();
  }
  function closeView() {
    view.hidden = true;
    figures.replaceChildren();
    if (current >= 0 && !cards[current].hidden) cards[current].focus();
  }
  document.getElementById("view-close").addEventListener("click", closeView);
  view.addEventListener("click", (event) => {
    if (event.target === view) closeView();
  });
  document.addEventListener("keydown", (event) => {
    if (view.hidden) return;
    if (event.key === "Escape") closeView();
    else if (event.key === "ArrowRight" && current + 1 < pictures.length) openView(current + 1);
    else if (event.key === "ArrowLeft" && current > 0) openView(current - 1);
  });
})();
