// The console works without this file; with it, a confirmation is a modal dialog: focus stays inside it,
// Escape cancels, and the page under it cannot be clicked by mistake.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const dialog = document.getElementById("confirm");
  if (!dialog || typeof dialog.showModal !== "function") return;
  dialog.close(); // rendered open for browsers without JavaScript; reopened as a modal
  dialog.showModal();
  const cancel = document.getElementById("cancel");
  dialog.addEventListener("cancel", () => { window.location.assign(cancel.href); });
});
