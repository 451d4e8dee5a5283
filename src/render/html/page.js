
(function () {
  var table = document.getElementById('verdicts');
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener('click', function () {
      var numeric = th.dataset.num === '1';
      var dir = th.dataset.dir === 'asc' ? -1 : 1;
      Array.prototype.forEach.call(heads, function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir === 1 ? 'asc' : 'desc';
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        if (numeric) {
          var p = x.dataset.v, q = y.dataset.v;
          if (p === '' || q === '') { return (p === '') - (q === ''); }
          return dir * (parseFloat(p) - parseFloat(q));
        }
        return dir * x.textContent.localeCompare(y.textContent);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  var filter = document.getElementById('filter');
  var shown = document.getElementById('shown');
  function apply() {
    var n = 0;
    Array.prototype.forEach.call(body.rows, function (r) {
      // "!identical": every status but that one.
      var v = filter.value;
      var on = v === '' || r.dataset.status === v || (v.charAt(0) === '!' && r.dataset.status !== v.slice(1));
      r.style.display = on ? '' : 'none';
      n += on ? 1 : 0;
    });
    var total = body.rows.length;
    shown.textContent = n + ' of ' + total + ' ' + (table.dataset.unit || 'row') + (total === 1 ? '' : 's');
  }
  filter.addEventListener('change', apply);
  apply();
  var drawn = 0;
  document.querySelectorAll('svg.plot').forEach(function (s) { if (s.childElementCount > 0) { drawn++; } });
  document.body.dataset.rendered = String(drawn);
})();
