// The labelling page: keyboard and buttons post labels through the JSON API and show the next group.
// Document text is only ever set with textContent (never innerHTML), so it cannot run as markup.
"use strict";

const $ = (id) => document.getElementById(id);
let groupId = $("group").dataset.groupId || null;
let busy = false;

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
  if (!response.ok) throw new Error(data.detail || `${response.status} ${response.statusText}`);
  return data;
}

function setText(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
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
  // the current model's score, folded away unless the annotator opens it (it could bias the label)
  const score = $("model-score");
  score.hidden = group.model_score === null || group.model_score === undefined;
  score.querySelector("b").textContent = score.hidden ? "" : group.model_score.toFixed(2);
  const yours = $("your-label");
  yours.hidden = !group.your_label;
  yours.querySelector("b").textContent = group.your_label || "";
  const cards = group.images.map((image, i) => {
    const card = $("card-template").content.firstElementChild.cloneNode(true);
    const img = card.querySelector("img");
    img.src = image.url;
    img.alt = image.alt || "";
    card.querySelector(".pos").textContent = `${i + 1} · position ${image.position}`;
    setText(card.querySelector(".alt"), image.alt);
    setText(card.querySelector(".before"), image.text_before);
    setText(card.querySelector(".after"), image.text_after);
    return card;
  });
  $("images").replaceChildren(...cards);
  window.scrollTo(0, 0);
}

function renderSide(progress, recent) {
  $("mine").textContent = progress.labelled_by_you;
  $("open").textContent = progress.open_groups;
  const items = recent.map((row) => {
    const li = document.createElement("li");
    const badge = document.createElement("span");
    badge.className = `badge ${row.label}`;
    badge.textContent = row.label;
    const link = document.createElement("a");
    link.href = `/?group=${encodeURIComponent(row.group_id)}`;
    link.textContent = row.group_id;
    li.append(badge, " ", link);
    return li;
  });
  $("recent").replaceChildren(...items);
}

async function step(action, failure) {
  if (busy) return;
  busy = true;
  $("error").hidden = true;
  try {
    await action();
    const data = await api("/api/next");
    renderGroup(data.group);
    renderSide(data.progress, data.recent);
    if (window.location.search) window.history.replaceState(null, "", "/");
  } catch (error) {
    setText($("error"), `${failure}: ${error.message}`);
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

document.querySelectorAll("button[data-label]").forEach((button) => {
  button.addEventListener("click", () => label(button.dataset.label));
});
$("undo").addEventListener("click", undo);

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.target.closest("input, textarea, select")) return;
  const keys = { a: () => label("good"), x: () => label("bad"), " ": () => label("skip"), u: undo, Backspace: undo };
  const handler = keys[event.key];
  if (handler) {
    event.preventDefault();  // space would scroll, backspace might navigate back
    handler();
  }
});
