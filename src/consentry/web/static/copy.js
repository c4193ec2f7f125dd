// Copy buttons: <button data-copy="ID" hidden> copies the text of the element #ID.
// Without JavaScript the buttons stay hidden and the values can be selected by hand
// (one click selects a whole value: `user-select: all` in style.css).
(function () {
  "use strict";

  var status = document.querySelector(".copy-status");

  function announce(button, text) {
    var label = button.getAttribute("data-label") || button.textContent;
    button.setAttribute("data-label", label);
    button.textContent = text;
    if (status) {
      status.textContent = text === "Copied" ? "Copied to the clipboard." : "";
    }
    window.setTimeout(function () {
      button.textContent = label;
    }, 2000);
  }

  function selectAndCopy(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try {
      return document.execCommand("copy");
    } catch (e) {
      return false;
    }
  }

  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) {
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      var fallback = function () {
        announce(button, selectAndCopy(source) ? "Copied" : "Press Ctrl+C");
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(source.textContent.trim()).then(function () {
          announce(button, "Copied");
        }, fallback);
      } else {
        fallback();
      }
    });
  });
})();
