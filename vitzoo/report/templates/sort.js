// Sortable tables: click a header to sort by that column (numbers numerically, then text); click again to reverse.
(function () {
  function key(td) {
    var v = td.getAttribute("data-sort");
    if (v === null) { v = td.textContent.trim(); }
    var n = Number(v);
    return v !== "" && isFinite(n) ? n : v.toLowerCase();
  }
  function compare(x, y) {
    if (typeof x === typeof y) { return x < y ? -1 : x > y ? 1 : 0; }
    return typeof x === "number" ? -1 : 1;
  }
  document.querySelectorAll("table.sortable thead th").forEach(function (th) {
    th.addEventListener("click", function () {
      var table = th.closest("table"), body = table.tBodies[0];
      var index = Array.prototype.indexOf.call(th.parentNode.children, th);
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var c = compare(key(a.cells[index]), key(b.cells[index]));
        return ascending ? c : -c;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
})();
