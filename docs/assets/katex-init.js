// Typeset the \( \) and \[ \] math that pymdownx.arithmatex leaves in the page, with the KaTeX shipped here
// (no CDN: the site works offline). Material swaps pages without reloading, so typeset on each one.
function typeset() {
  renderMathInElement(document.body, {
    delimiters: [{left: "\\[", right: "\\]", display: true}, {left: "\\(", right: "\\)", display: false}],
  });
}
if (typeof document$ !== "undefined") { document$.subscribe(typeset); } else { window.addEventListener("load", typeset); }
