// Feature browser (pipeline/browser.py writes data.js beside this file).
// Plain JavaScript, no library: the folder opens from file:// with no internet.
"use strict";

(function () {
  const D = window.BROWSER_DATA;
  const L = D.latent;
  const $ = (id) => document.getElementById(id);
  const TILE_SCALE = 2;            // input tiles: pixels per data pixel
  const DIRECTION_SCALE = 5;       // decoder/encoder rows in the latent view
  const THUMB_SCALE = 1;           // decoder thumbnails in the table
  const CARD_OPEN_ROWS = 20;       // longer sections of the model card start closed
  const slotOf = new Map(D.used_inputs.map((n, slot) => [n, slot]));

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child instanceof Node ? child : String(child));
      }
    }
    return node;
  }

  function fmt(value, digits = 4) {
    if (value === null || value === undefined) return "–";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return String(value);
    return Number(value.toPrecision(digits)).toString();
  }

  // One tile of a sprite sheet, `scale` screen pixels per data pixel.
  function tile(sheet, slot, scale) {
    const [h, w] = sheet.tile;
    const col = slot % sheet.cols, row = Math.floor(slot / sheet.cols);
    const node = el("div", { class: "tile" });
    node.style.width = w * scale + "px";
    node.style.height = h * scale + "px";
    node.style.backgroundImage = `url("${sheet.file}")`;
    node.style.backgroundSize = `${sheet.width * scale}px ${sheet.height * scale}px`;
    node.style.backgroundPosition = `-${col * w * scale}px -${row * h * scale}px`;
    return node;
  }

  // A box on an input tile over the code-map cell where a conv latent peaked.
  function markPosition(node, position, scale) {
    const [ch, cw] = D.code_shape;
    const [h, w] = D.sprites.inputs.tile;
    const r = Math.floor(position / cw), c = position % cw;
    const box = el("div", { class: "where" });
    box.style.top = (r * h / ch) * scale + "px";
    box.style.left = (c * w / cw) * scale + "px";
    box.style.width = (w / cw) * scale + "px";
    box.style.height = (h / ch) * scale + "px";
    node.append(box);
  }

  function positionText(position) {
    const cw = D.code_shape[1];
    return ` @(${Math.floor(position / cw)},${position % cw})`;
  }

  // === Overview ===

  function renderCard() {
    $("title").textContent = `Feature browser: ${D.name}`;
    document.title = `${D.name}: feature browser`;
    for (const [title, entries] of D.card) {
      const rows = Object.entries(entries).map(([key, value]) =>
        el("tr", {}, el("td", { text: key }), el("td", { text: fmt(value, 5) })));
      const section = el("details", { class: "card-section" }, el("summary", {},
        el("h3", { text: title })), el("table", {}, el("tbody", {}, ...rows)));
      section.open = rows.length <= CARD_OPEN_ROWS;  // a long training record starts closed
      $("card").append(section);
    }
    for (const key of ["reconstructions", "feature_density"]) {
      if (D.pictures[key]) {
        $("pictures").append(el("img", { src: D.pictures[key], alt: key.replace("_", " ") }));
      }
    }
  }

  const COLUMNS = [
    { key: "index", title: "latent", value: (j) => j },
    { key: "decoder", title: D.kinds[0], value: null },
    { key: "density", title: "density", value: (j) => L.density[j] },
    { key: "mean", title: "mean act.", value: (j) => L.mean[j] },
    { key: "max", title: "max act.", value: (j) => L.max[j] },
    { key: "top_label", title: "top label", value: (j) => L.top_label[j], labels: true },
    { key: "top_share", title: "its share", value: (j) => L.top_share[j], labels: true },
    { key: "nearest", title: "nearest", value: (j) => (L.nearest[j][0] || [null])[0] },
    { key: "nearest_cos", title: "cos", value: (j) => (L.nearest[j][0] || [null, null])[1] },
    { key: "dead", title: "dead", value: (j) => (L.dead[j] ? 1 : 0) },
  ].filter((c) => (!c.labels || D.labels) && (c.key !== "decoder" || D.image));

  const rows = [];
  let sortKey = "index", sortDescending = false;

  function renderTable() {
    const head = document.querySelector("#latents thead tr");
    for (const column of COLUMNS) {
      const th = el("th", { "data-key": column.key, text: column.title });
      if (column.value) th.addEventListener("click", () => sortBy(column.key));
      head.append(th);
    }
    const body = document.querySelector("#latents tbody");
    for (let j = 0; j < D.latents; j++) {
      const tr = el("tr", { "data-latent": j, class: L.dead[j] ? "dead" : "" });
      for (const column of COLUMNS) {
        if (column.key === "decoder") {
          tr.append(el("td", {}, tile(D.sprites.decoder, j, THUMB_SCALE)));
        } else if (column.key === "dead") {
          tr.append(el("td", {}, L.dead[j] ? el("span", { class: "badge", text: "dead" }) : ""));
        } else {
          tr.append(el("td", { "data-key": column.key, text: fmt(column.value(j)) }));
        }
      }
      tr.addEventListener("click", () => { location.hash = `latent=${j}`; });
      rows.push(tr);
      body.append(tr);
    }
    if (D.labels) {
      for (let c = 0; c < D.num_classes; c++) {
        $("label-filter").append(el("option", { value: c, text: c }));
      }
    } else {
      $("label-filter-box").hidden = true;
    }
    for (const id of ["dead-filter", "label-filter", "min-density"]) {
      $(id).addEventListener("input", applyFilter);
    }
    applyFilter();
  }

  function sortBy(key) {
    sortDescending = key === sortKey ? !sortDescending : key !== "index";
    sortKey = key;
    const column = COLUMNS.find((c) => c.key === key);
    const keyOf = (j) => {
      const v = column.value(j);
      return v === null || v === undefined ? -Infinity : v;
    };
    const order = rows.map((_, j) => j).sort((a, b) => {
      const d = keyOf(a) - keyOf(b);
      return (sortDescending ? -d : d) || a - b;
    });
    const body = document.querySelector("#latents tbody");
    for (const j of order) body.append(rows[j]);
    for (const th of document.querySelectorAll("#latents th")) {
      th.classList.toggle("sorted-asc", th.dataset.key === key && !sortDescending);
      th.classList.toggle("sorted-desc", th.dataset.key === key && sortDescending);
    }
  }

  function applyFilter() {
    const dead = $("dead-filter").value;
    const label = $("label-filter").value;
    const minDensity = parseFloat($("min-density").value);
    let shown = 0;
    rows.forEach((tr, j) => {
      const visible = (dead === "all" || (dead === "dead") === L.dead[j]) &&
        (label === "any" || L.top_label[j] === Number(label)) &&
        (isNaN(minDensity) || L.density[j] >= minDensity);
      tr.hidden = !visible;
      shown += visible ? 1 : 0;
    });
    const deadCount = L.dead.filter(Boolean).length;
    $("row-count").textContent = `${shown} of ${D.latents} latents shown (${deadCount} dead)`;
  }

  // === One latent ===

  function example(entry, scale) {
    const [n, value, position] = entry;
    const label = D.labels ? D.labels[n] : null;
    const picture = tile(D.sprites.inputs, slotOf.get(n), scale);
    if (D.conv) markPosition(picture, position, scale);
    const caption = el("div", {}, el("span", { class: "value", text: fmt(value) }),
      label === null ? "" : ` · ${label}`, D.conv ? positionText(position) : "");
    return el("div", { class: "example", "data-input": n, "data-value": value,
      title: `test input ${n}` }, picture, caption);
  }

  function examples(entries, scale) {
    if (!entries.length) return el("p", { text: "never fires on the test inputs" });
    if (!D.image) {
      const head = el("tr", {}, el("th", { text: "test input" }),
        D.labels ? el("th", { text: "label" }) : null, el("th", { text: "activation" }),
        D.conv ? el("th", { text: "position" }) : null);
      const body = entries.map(([n, value, position]) => el("tr",
        { class: "example", "data-input": n, "data-value": value },
        el("td", { text: n }), D.labels ? el("td", { text: D.labels[n] }) : null,
        el("td", { class: "value", text: fmt(value) }),
        D.conv ? el("td", { text: positionText(position) }) : null));
      return el("table", { class: "vector" }, el("thead", {}, head), el("tbody", {}, ...body));
    }
    return el("div", { class: "examples" }, ...entries.map((e) => example(e, scale)));
  }

  function direction(kind, sheet, scales, weights, j) {
    if (!D.image) {
      const list = weights[j].map(([i, w]) => `${i}: ${fmt(w, 3)}`).join(", ");
      return el("div", { class: "direction" }, el("h3", { text: kind }),
        el("div", { text: `largest weights (input index: weight): ${list}` }));
    }
    return el("div", { class: "direction" }, el("h3", { text: kind }),
      tile(sheet, j, DIRECTION_SCALE),
      el("div", { text: `blue −${fmt(scales[j], 3)} … white 0 … red +${fmt(scales[j], 3)}` }),
    );
  }

  // A bar chart as inline SVG: counts, with labels under the first and last bar.
  // `ends`: the texts under the first and last bar when there are too many bars to label.
  function bars(counts, labels, title, width = 360, ends = null, height = 110) {
    const svgNS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height + 28);
    const top = Math.max(1, ...counts);
    const barWidth = width / counts.length;
    counts.forEach((count, i) => {
      const rect = document.createElementNS(svgNS, "rect");
      const h = (count / top) * height;
      rect.setAttribute("x", i * barWidth + 1);
      rect.setAttribute("y", height - h);
      rect.setAttribute("width", Math.max(1, barWidth - 2));
      rect.setAttribute("height", h);
      rect.setAttribute("fill", "#5c6bc0");
      const tip = document.createElementNS(svgNS, "title");
      tip.textContent = `${labels[i]}: ${count}`;
      rect.append(tip);
      svg.append(rect);
      if (labels.length <= 12 || i === 0 || i === counts.length - 1) {
        const text = document.createElementNS(svgNS, "text");
        const dense = labels.length > 12;  // only the end labels: keep them inside the chart
        const anchor = !dense ? "middle" : i === 0 ? "start" : "end";
        text.setAttribute("x", !dense ? (i + 0.5) * barWidth : i === 0 ? 0 : width);
        text.setAttribute("y", height + 12);
        text.setAttribute("text-anchor", anchor);
        text.textContent = dense && ends ? ends[i === 0 ? 0 : 1] : labels[i];
        svg.append(text);
      }
    });
    const caption = document.createElementNS(svgNS, "text");
    caption.setAttribute("x", 0);
    caption.setAttribute("y", height + 26);
    caption.textContent = `${title} (max ${top})`;
    svg.append(caption);
    return el("div", {}, svg);
  }

  function renderLatent(j) {
    const view = $("latent-view");
    view.replaceChildren();
    const stats = el("div", { class: "stats" },
      el("span", { text: `density ${fmt(L.density[j])}` }),
      el("span", { text: `mean ${fmt(L.mean[j])}` }),
      el("span", { text: `max ${fmt(L.max[j])}` }),
      D.labels && L.top_label[j] !== null
        ? el("span", { text: `top label ${L.top_label[j]} ` +
          `(${fmt(100 * L.top_share[j], 3)}% of its top ${L.top[j].length})` })
        : null,
      L.dead[j] ? el("span", { class: "badge", text: "dead" }) : null);
    const link = (i, text) => el("a", { href: `#latent=${i}`, class: "nav-latent", text });
    const previous = j > 0 ? link(j - 1, "← previous") : null;
    const next = j + 1 < D.latents ? link(j + 1, "next →") : null;
    view.append(el("h2", { id: "latent-title" }, `Latent ${j}`, previous, next), stats);
    const [low, high, counts] = L.histogram[j];
    const edge = (i) => fmt(low + i * (high - low) / counts.length, 3);
    const ranges = counts.map((_, i) => `${edge(i)}–${edge(i + 1)}`);
    const charts = [bars(counts, ranges, `activations where it fires (> ${D.threshold})`, 360,
      [fmt(low, 3), fmt(high, 3)])];
    if (D.labels) {
      charts.push(bars(L.label_counts[j], L.label_counts[j].map((_, c) => c),
        `labels of its top ${L.top[j].length} activations`, 240));
    }
    view.append(el("div", { class: "directions" },
      direction(D.kinds[0], D.sprites && D.sprites.decoder, D.decoder_scale, D.decoder_weights, j),
      direction(D.kinds[1], D.sprites && D.sprites.encoder, D.encoder_scale, D.encoder_weights, j),
      el("div", {}, el("h3", { text: "Activation histogram and labels" }),
        el("div", { class: "bars" }, ...charts))));
    view.append(el("h3", { text: `Top ${L.top[j].length} activations` +
      (D.conv ? " (max over code positions; the box marks where)" : "") +
      (D.labels ? " (activation · label)" : "") }));
    const top = examples(L.top[j], TILE_SCALE);
    top.id = "top-examples";
    view.append(top);
    view.append(el("h3", { text: `Nearest latents by ${D.kinds[0]} cosine` }),
      el("div", { class: "nearest" }, ...L.nearest[j].map(([i, cos]) =>
        el("a", { href: `#latent=${i}`, text: `${i} (${fmt(cos, 3)})` }))));
    view.append(el("h3", { text: "Samples from activation quantiles (inputs it fires on)" }));
    if (!L.quantiles[j].length) view.append(el("p", { text: "never fires on the test inputs" }));
    for (const [low, high, entries] of L.quantiles[j].slice().reverse()) {
      view.append(el("div", { class: "quantile" },
        el("div", { class: "range", text: `${fmt(low)} – ${fmt(high)}` }),
        examples(entries, 2)));
    }
  }

  function route() {
    const match = /^#latent=(\d+)$/.exec(location.hash);
    const j = match ? Number(match[1]) : null;
    const valid = j !== null && j < D.latents;
    $("overview").hidden = valid;
    $("latent-view").hidden = !valid;
    if (valid) {
      renderLatent(j);
      $("goto").value = j;
      window.scrollTo(0, 0);
    }
  }

  $("goto-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const j = Number($("goto").value);
    if (Number.isInteger(j) && j >= 0 && j < D.latents) location.hash = `latent=${j}`;
    else $("goto").setCustomValidity(`a latent index from 0 to ${D.latents - 1}`);
    $("goto").reportValidity();
  });
  $("goto").addEventListener("input", () => $("goto").setCustomValidity(""));
  $("goto").max = D.latents - 1;
  renderCard();
  renderTable();
  window.addEventListener("hashchange", route);
  route();
})();
