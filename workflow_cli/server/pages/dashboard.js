// Live updates: the element #live names the URL of its own fresh content (data-refresh)
// and, on an instance's page, the stream of its journal's events (data-events). Each
// event (or, without a stream, every two seconds) the content is fetched again and put
// in place. The content is the server's own escaped HTML.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !live.dataset.refresh) { return; }
  var busy = false, again = false, timer = null;
  function reload() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(live.dataset.refresh, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html !== null && !editing()) { live.innerHTML = html; }
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; reload(); } });
  }
  // Not while someone types in a form here, nor once they have written in one.
  function editing() {
    var typing = document.activeElement;
    if (typing && /^(INPUT|TEXTAREA|SELECT)$/.test(typing.tagName) && live.contains(typing)) {
      return true;
    }
    var fields = live.querySelectorAll("textarea, input[type=text]");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue) { return true; }
    }
    return false;
  }
  function soon() { if (timer === null) { timer = setTimeout(function () { timer = null; reload(); }, 100); } }
  var FINAL = ["completed", "failed", "cancelled"];
  function follow() {
    // The stream ends when no run is going on (the instance waits, or has ended); it is
    // opened again a little later unless the instance has ended for good.
    var stream = new EventSource(live.dataset.events);
    stream.onmessage = soon;
    stream.addEventListener("end", function () {
      stream.close();
      soon();
      var state = document.getElementById("state");
      if (!state || FINAL.indexOf(state.dataset.state) < 0) { setTimeout(follow, 2000); }
    });
  }
  if (live.dataset.events && window.EventSource) {
    follow();
  } else {
    setInterval(reload, 2000);
  }
})();
