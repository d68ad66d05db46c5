// A form whose work takes a while says so while the server does it: the pressed button shows
// Pico's spinner (aria-busy), says what is happening (its data-busy words) and cannot be
// pressed twice. Served from 'self' (the page's CSP allows no inline script).
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
  const button = event.submitter;
  if (!(button instanceof HTMLButtonElement) || !button.dataset.busy) return;
  button.setAttribute("aria-busy", "true");
  button.textContent = button.dataset.busy;
  // disabled after the submission has read the form, so the button's own value still goes
  setTimeout(() => { button.disabled = true; }, 0);
});
// a page restored from the back-forward cache shows its buttons ready again
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  for (const button of document.querySelectorAll("button[aria-busy]")) {
    button.removeAttribute("aria-busy");
    button.disabled = false;
    if (button.dataset.ready) button.textContent = button.dataset.ready;
  }
});
