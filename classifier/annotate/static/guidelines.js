// The guidelines page: g (or Escape) goes back to labelling, the same key that opened it.
"use strict";

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "g" || event.key === "Escape") {
    event.preventDefault();
    window.location.assign("/");
  }
});
