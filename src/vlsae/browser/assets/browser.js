// The latent browser's two pages, drawn from window.BROWSER (data.js): the index and one latent.
"use strict";
(function () {
  const B = window.BROWSER;
  const byId = new Map(B.latents.map((l) => [l.id, l]));
  const fmt = (v, digits = 3) => (v === null || v === undefined ? "-" : Number(v).toPrecision(digits));
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  };
  const svg = (tag, attrs) => {
    const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  };
  // sort keys of a latent (null sorts last)
  const key = {
    id: (l) => l.id, mu: (l) => l.mu, energy: (l) => l.energy,
    energy_image: (l) => l.image.energy, energy_text: (l) => l.text.energy,
    frequency: (l) => (l.image.frequency + l.text.frequency) / 2,
    ms: (l) => (l.image.ms === null ? l.text.ms : l.text.ms === null ? l.image.ms : (l.image.ms + l.text.ms) / 2),
  };

  function bars(target, counts, { lo = 0, hi = 1, band = null, colour = "#7a5fb5" } = {}) {
    const w = +target.getAttribute("width"), h = +target.getAttribute("height"), pad = 18;
    const top = Math.max(1, ...counts), bw = (w - 2 * pad) / counts.length;
    if (band) {
      const x = (v) => pad + ((v - lo) / (hi - lo)) * (w - 2 * pad);
      target.append(svg("rect", { x: x(band[0]), y: 0, width: x(band[1]) - x(band[0]), height: h - pad, fill: "#f1ecfa" }));
    }
    counts.forEach((c, i) => {
      const bh = (c / top) * (h - 2 * pad);
      const r = svg("rect", { x: pad + i * bw + 1, y: h - pad - bh, width: Math.max(bw - 2, 1), height: bh, fill: colour });
      r.append(svg("title", {})); r.lastChild.textContent = `${c}`;
      target.append(r);
    });
    for (const [v, anchor] of [[lo, "start"], [hi, "end"]]) {
      const t = svg("text", { x: v === lo ? pad : w - pad, y: h - 4, "font-size": 10, "text-anchor": anchor });
      t.textContent = fmt(v, 2);
      target.append(t);
    }
  }

  function sample(row) {
    return B.samples[row] || { caption: "", thumb: null };
  }

  function renderIndex() {
    const live = B.latents.filter((l) => l.class !== "dead");
    const counts = {};
    for (const l of B.latents) counts[l.class] = (counts[l.class] || 0) + 1;
    const box = document.getElementById("counts");
    for (const c of ["bimodal", "image-only", "text-only", "dead"]) {
      box.append(el("span", { class: c, text: `${c}: ${counts[c] || 0}` }));
    }
    const hist = new Array(20).fill(0);
    for (const l of live) hist[Math.min(19, Math.floor(l.mu * 20))] += 1;
    bars(document.getElementById("mu-histogram"), hist, { band: [B.title.tau, 1 - B.title.tau] });
    const pair = live.length > 0 && live[0].partner !== undefined;
    document.querySelectorAll(".pair-only").forEach((e) => { e.hidden = !pair; });
    const tbody = document.querySelector("#latents tbody");
    const rows = new Map();
    for (const l of live) {
      const images = el("td");
      for (const [r] of l.image.top.slice(0, 3)) {
        const s = sample(r);
        if (s.thumb) images.append(el("img", { src: s.thumb, loading: "lazy", alt: s.caption, title: s.caption }));
      }
      const captions = l.text.top.slice(0, 2).map(([r]) => sample(r).caption).join(" | ");
      const tr = el("tr", { "data-id": l.id },
        el("td", {}, el("a", { href: `latent.html#${l.id}`, text: `#${l.id}` })),
        el("td", {}, el("span", { class: l.class, text: l.class })),
        el("td", { class: "num", text: fmt(l.mu) }), el("td", { class: "num", text: fmt(l.energy) }),
        el("td", { class: "num", text: fmt(l.image.energy) }), el("td", { class: "num", text: fmt(l.text.energy) }),
        el("td", { class: "num", text: fmt(key.frequency(l)) }), el("td", { class: "num", text: fmt(key.ms(l)) }),
        el("td", { class: "num pair-only", text: pair ? `#${l.partner.id} (${fmt(l.partner.corr, 2)}, ${fmt(l.partner.cosine, 2)})` : "" }),
        images, el("td", { class: "captions", text: captions }));
      if (!pair) tr.children[8].hidden = true;
      rows.set(l.id, { tr, text: `#${l.id} ${captions} ${l.text.top.map(([r]) => sample(r).caption).join(" ")}`.toLowerCase() });
      tbody.append(tr);
    }
    let order = { key: "energy", dir: -1 };
    const search = document.getElementById("search"), filter = document.getElementById("class-filter");
    function update() {
      const q = search.value.trim().toLowerCase(), c = filter.value;
      const sorted = [...live].sort((a, b) => {
        const x = key[order.key](a), y = key[order.key](b);
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return order.dir * (x - y) || a.id - b.id;
      });
      let shown = 0;
      for (const l of sorted) {
        const r = rows.get(l.id);
        const visible = (!c || l.class === c) && (!q || (/^#?\d+$/.test(q) ? `${l.id}` === q.replace("#", "") : r.text.includes(q)));
        r.tr.hidden = !visible;
        shown += visible;
        tbody.append(r.tr);
      }
      document.getElementById("shown").textContent = `${shown} of ${live.length} live latents`;
      document.querySelectorAll("th.sortable").forEach((th) => {
        th.classList.toggle("asc", th.dataset.key === order.key && order.dir > 0);
        th.classList.toggle("desc", th.dataset.key === order.key && order.dir < 0);
      });
    }
    document.querySelectorAll("th.sortable").forEach((th) => th.addEventListener("click", () => {
      order = { key: th.dataset.key, dir: order.key === th.dataset.key ? -order.dir : -1 };
      update();
    }));
    search.addEventListener("input", update);
    filter.addEventListener("change", update);
    update();
  }

  function renderLatent() {
    const id = parseInt(location.hash.slice(1) || "0", 10);
    const l = byId.get(id);
    if (!l) { document.getElementById("latent-title").textContent = `no latent #${id}`; return; }
    document.title = `#${id} - ${B.title.sae}`;
    const title = document.getElementById("latent-title");
    title.append(`Latent #${id} `, el("span", { class: l.class, text: l.class }));
    const parts = [`\u03bc ${fmt(l.mu)}`, `energy image ${fmt(l.image.energy)}, text ${fmt(l.text.energy)}`,
      `frequency image ${fmt(l.image.frequency)}, text ${fmt(l.text.frequency)}`,
      `MS image ${fmt(l.image.ms)}, text ${fmt(l.text.ms)}`];
    if (l.partner) parts.push(`text partner #${l.partner.id}: coactivation c = ${fmt(l.partner.corr)}, decoder cosine ${fmt(l.partner.cosine)}`);
    if (l.match) parts.push(`Hungarian match #${l.match.id}, c = ${fmt(l.match.corr)}${l.match.collapsed ? " (collapsed)" : ""}`);
    document.getElementById("latent-stats").textContent = parts.join(" \u00b7 ");
    const nav = document.getElementById("latent-nav");
    const ids = B.latents.map((x) => x.id), at = ids.indexOf(id);
    if (at > 0) nav.append(el("a", { href: `#${ids[at - 1]}`, text: "\u2190 previous" }));
    if (at < ids.length - 1) nav.append(el("a", { href: `#${ids[at + 1]}`, text: "next \u2192" }));
    const grid = document.getElementById("top-images");
    for (const [r, v] of l.image.top) {
      const s = sample(r);
      const fig = el("figure", { class: "sample" });
      if (s.thumb) fig.append(el("img", { src: s.thumb, alt: s.caption }));
      fig.append(el("figcaption", { text: `${fmt(v)} \u00b7 ${s.caption}` }));
      grid.append(fig);
    }
    const list = document.getElementById("top-captions");
    for (const [r, v] of l.text.top) list.append(el("li", { class: "caption", text: `${fmt(v)} \u00b7 ${sample(r).caption}` }));
    for (const side of ["image", "text"]) {
      const h = l[side].hist;
      bars(document.getElementById(`hist-${side}`), h.counts, { lo: h.lo, hi: h.hi, colour: side === "image" ? "#3b7fc4" : "#d9773a" });
    }
    const near = document.getElementById("near");
    for (const [n, c] of l.near) {
      const other = byId.get(n);
      near.append(el("li", {}, el("a", { href: `#${n}`, text: `#${n}` }), ` cos ${fmt(c)} \u00b7 ${other ? other.class : ""}`));
    }
  }

  if (document.body.dataset.page === "index") renderIndex();
  else {
    renderLatent();
    window.addEventListener("hashchange", () => location.reload());
  }
})();
