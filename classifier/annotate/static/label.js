// The labelling page: keyboard and buttons post labels through the JSON API and show the next group.
// Document text is only ever set with textContent (never innerHTML), so it cannot run as markup.
// A label that was saved is never reported as unsaved: saving and loading the next group fail apart.
// Speed: the server sends, with each group, the one that will probably follow ("upcoming"); its images
// are loaded at once, and on a label key it is shown before the server answers. The queue's actual
// choice follows with /api/next and replaces it in the rare case that it differs. Actions run one
// after another in the order of the keys, so a quick annotator never loses a key press.
"use strict";

const $ = (id) => document.getElementById(id);
const initial = JSON.parse($("page-data").textContent);
let current = initial.group; // the group on screen (its view, as the API sends it)
let groupId = current ? current.group_id : null;
let upcoming = initial.upcoming;
let needsNext = false; // the label was saved but the next group did not load: r (or the button) retries
let queue = Promise.resolve();
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
  current = group;
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
  // the current model's score, folded away unless the annotator opens it (it could bias the label)
  const score = $("model-score");
  score.hidden = group.model_score === null || group.model_score === undefined;
  score.querySelector("b").textContent = score.hidden ? "" : group.model_score.toFixed(2);
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

function enqueue(task) {
  queue = queue.then(task).catch((error) => showError(error.message));
}

async function loadNext() {
  const data = await api("/api/next");
  if (!data.group || !current || data.group.group_id !== current.group_id) renderGroup(data.group);
  else current = data.group;
  renderSide(data.progress, data.recent);
  upcoming = data.upcoming;
  if (upcoming) prefetch(upcoming.images.map((image) => image.url));
  if (window.location.search) window.history.replaceState(null, "", "/");
}

// After a saved label or an undo: the next group; on failure the previous one stays on screen.
async function advance(previous, saved) {
  try {
    await loadNext();
    needsNext = false;
  } catch (error) {
    needsNext = true;
    if (previous !== undefined) renderGroup(previous);
    const what = saved ? "Saved, but the next group could not be loaded" : "The next group could not be loaded";
    showError(`${what}: ${error.message}. Press r to try again.`);
  }
  $("retry").hidden = !needsNext;
}

function label(value) {
  if (!groupId) return;
  const target = groupId;
  const previous = current;
  enqueue(async () => {
    showError("");
    // shown at once, unless the annotator has meanwhile moved on (then it is already on screen)
    if (upcoming && upcoming.group_id !== target && groupId === target) renderGroup(upcoming);
    try {
      await api("/api/labels", { group_id: target, label: value });
    } catch (error) {
      renderGroup(previous);
      showError(`Not saved: ${error.message}`);
      return;
    }
    await advance(previous, true);
  });
}

function undo() {
  enqueue(async () => {
    showError("");
    try {
      await api("/api/undo", {});
    } catch (error) {
      showError(`Cannot undo: ${error.message}`);
      return;
    }
    await advance(current, false);
  });
}

function retry() {
  if (!needsNext) return;
  enqueue(() => {
    showError("");
    return advance(current, false);
  });
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
$("retry").addEventListener("click", retry);
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
    r: retry,
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
if (upcoming) prefetch(upcoming.images.map((image) => image.url));
