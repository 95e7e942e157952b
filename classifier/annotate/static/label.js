// The labelling page: keyboard and buttons post labels through the JSON API and show the next group.
// Document text is only ever set with textContent (never innerHTML), so it cannot run as markup.
// A label that was saved is never reported as unsaved: saving and loading the next group fail apart.
"use strict";

const $ = (id) => document.getElementById(id);
let groupId = $("group").dataset.groupId || null;
let busy = false;
let needsNext = false; // the label was saved but the next group did not load: r (or the button) retries
const prefetched = new Set(); // image URLs already asked for, kept alive in the browser cache

async function api(path, body) {
  const init = { credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    window.location.assign("/login");
    throw new Error("logged out");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(typeof data.detail === "string" ? data.detail : `${response.status} ${response.statusText}`);
  return data;
}

function setText(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

function prefetch(urls) {
  for (const url of urls) {
    if (!url || prefetched.has(url)) continue;
    prefetched.add(url);
    const image = new Image();
    image.decoding = "async";
    image.src = url;
  }
}

// Columns and row height so that all of a group's images fit between the header and the button bar.
function layout() {
  const list = $("images");
  const cards = list.children.length;
  if (!cards || $("current").hidden) return;
  const narrow = window.matchMedia("(max-width: 900px)").matches;
  const gap = 12;
  const width = list.clientWidth;
  // the bar is fixed to the viewport's bottom; the list's top is measured from the document's
  const barTop = window.innerHeight - $("actions").parentElement.offsetHeight;
  const height = barTop - (list.getBoundingClientRect().top + window.scrollY) - 12;
  const caption = 78; // position line + three clamped lines of context
  let best = { side: -1, cols: 1, rowHeight: 0 };
  for (let cols = 1; cols <= cards; cols += 1) {
    const rows = Math.ceil(cards / cols);
    const cellWidth = (width - gap * (cols - 1)) / cols;
    const rowHeight = (height - gap * (rows - 1)) / rows;
    const side = Math.min(cellWidth, rowHeight - caption);
    if (side > best.side) best = { side, cols, rowHeight };
  }
  // too little room (a small window): a readable size, and the page scrolls above the bar
  const rowHeight = narrow ? 0 : Math.max(best.rowHeight, 160);
  list.style.gridTemplateColumns = `repeat(${narrow ? 1 : best.cols}, minmax(0, 1fr))`;
  list.style.gridAutoRows = rowHeight ? `${Math.floor(rowHeight)}px` : "auto";
  list.dataset.cols = String(best.cols);
}

function fillCard(card, image, i) {
  const button = card.querySelector(".zoomable");
  button.dataset.zoom = image.zoom_url;
  button.title = `Zoom and full context (${i + 1})`;
  const img = card.querySelector("img");
  img.src = image.url;
  img.alt = image.alt || "";
  card.querySelector(".pos").textContent = `${i + 1} · position ${image.position}`;
  setText(card.querySelector(".alt"), image.alt);
  setText(card.querySelector(".before"), image.text_before);
  setText(card.querySelector(".after"), image.text_after);
  return card;
}

function renderGroup(group) {
  groupId = group ? group.group_id : null;
  $("group").dataset.groupId = groupId || "";
  $("current").hidden = !group;
  $("empty").hidden = Boolean(group);
  if (!group) return;
  const link = $("source-link");
  link.hidden = !group.source_url;
  link.textContent = group.source;
  link.href = group.source_url || "#";
  setText($("source-text"), group.source_url ? "" : group.source);
  $("group-id").textContent = group.group_id;
  const yours = $("your-label");
  yours.hidden = !group.your_label;
  yours.querySelector("b").textContent = group.your_label || "";
  const cards = group.images.map((image, i) =>
    fillCard($("card-template").content.firstElementChild.cloneNode(true), image, i),
  );
  $("images").dataset.count = String(cards.length);
  $("images").replaceChildren(...cards);
  window.scrollTo(0, 0);
  layout();
}

function renderSide(progress, recent) {
  $("mine").textContent = progress.labelled_by_you;
  $("skipped").textContent = progress.skipped_by_you;
  $("open").textContent = progress.open_groups;
  const items = recent.map((row) => {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/?group=${encodeURIComponent(row.group_id)}`;
    link.title = row.group_id;
    const badge = document.createElement("span");
    badge.className = `badge ${row.label}`;
    badge.textContent = row.label;
    const mini = document.createElement("span");
    mini.className = "mini";
    for (const url of row.image_urls) {
      const img = document.createElement("img");
      img.src = url;
      img.alt = "";
      mini.append(img);
    }
    link.append(badge, mini);
    li.append(link);
    return li;
  });
  $("recent").replaceChildren(...items);
}

function showError(text) {
  setText($("error"), text);
  layout(); // the message makes the bar taller
}

async function loadNext() {
  const data = await api("/api/next");
  renderGroup(data.group);
  renderSide(data.progress, data.recent);
  if (data.upcoming) prefetch(data.upcoming.image_urls);
  if (window.location.search) window.history.replaceState(null, "", "/");
}

async function step(action, failure) {
  if (busy) return;
  busy = true;
  showError("");
  try {
    try {
      if (action) await action();
    } catch (error) {
      showError(`${failure}: ${error.message}`);
      return;
    }
    try {
      await loadNext();
      needsNext = false;
    } catch (error) {
      needsNext = true;
      const done = action ? "Saved, but the next group could not be loaded" : "The next group could not be loaded";
      showError(`${done}: ${error.message}. Press r to try again.`);
    }
    $("retry").hidden = !needsNext;
  } finally {
    busy = false;
  }
}

function label(value) {
  if (!groupId) return;
  const target = groupId;
  step(() => api("/api/labels", { group_id: target, label: value }), "Not saved");
}

function undo() {
  step(() => api("/api/undo", {}), "Cannot undo");
}

function openZoom(card) {
  const button = card.querySelector(".zoomable");
  $("zoom-img").src = button.dataset.zoom;
  $("zoom-img").alt = card.querySelector("img").alt;
  for (const part of ["pos", "alt", "before", "after"]) {
    const source = card.querySelector(`.${part}`);
    setText($(`zoom-${part}`), source.hidden ? "" : source.textContent);
  }
  $("zoom").hidden = false;
  $("zoom-close").focus();
}

function closeZoom() {
  $("zoom").hidden = true;
  $("zoom-img").removeAttribute("src");
}

document.querySelectorAll("button[data-label]").forEach((button) => {
  button.addEventListener("click", () => label(button.dataset.label));
});
$("undo").addEventListener("click", undo);
$("retry").addEventListener("click", () => step(null, ""));
$("images").addEventListener("click", (event) => {
  const card = event.target.closest(".card");
  if (card && event.target.closest(".zoomable")) openZoom(card);
});
$("zoom").addEventListener("click", (event) => {
  if (event.target === $("zoom") || event.target.closest("#zoom-close")) closeZoom();
});

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.target.closest("input, textarea, select")) return;
  if (event.key === "Escape" && !$("zoom").hidden) {
    closeZoom();
    return;
  }
  const keys = {
    a: () => label("good"),
    x: () => label("bad"),
    " ": () => label("skip"),
    u: undo,
    Backspace: undo,
    r: () => needsNext && step(null, ""),
    g: () => window.location.assign("/guidelines"),
  };
  let handler = keys[event.key];
  const digit = Number.parseInt(event.key, 10);
  if (!handler && digit >= 1 && digit <= $("images").children.length) {
    handler = () => openZoom($("images").children[digit - 1]);
  }
  if (handler) {
    event.preventDefault(); // space would scroll, backspace might navigate back
    if (!$("zoom").hidden && handler !== keys.g) closeZoom();
    handler();
  }
});

window.addEventListener("resize", layout);
layout();
prefetch(($("group").dataset.upcoming || "").split(" "));
