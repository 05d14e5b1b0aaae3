// keygate console: the copy button of a secret shown once. Everything else works without it.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button) return;
  var field = document.getElementById(button.getAttribute("data-copy"));
  var box = button.closest(".once");
  var status = box && box.querySelector(".copied");
  var done = function () { if (status) status.textContent = "Copied to the clipboard."; };
  var fallback = function () {
    field.select();
    if (status) status.textContent = "Selected: press Ctrl+C (or Cmd+C) to copy.";
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(done, fallback);
  } else {
    fallback();
  }
});
