// schooldns console: the few behaviours pages need, loaded as a file (the CSP forbids inline
// scripts). Every page works without it.
document.addEventListener("submit", function (event) {
  var form = event.target;
  var question = form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});
document.addEventListener("click", function (event) {
  var target = event.target;
  if (target.matches("[data-print]")) { event.preventDefault(); window.print(); }
  if (target.matches("[data-copy]")) {
    event.preventDefault();
    var text = target.getAttribute("data-copy");
    if (navigator.clipboard) navigator.clipboard.writeText(text);
  }
});
