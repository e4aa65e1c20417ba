// podops status page: every <time datetime="...Z"> also in the viewer's local time. No data, no requests:
// the page works (in UTC) without it. Served by the shim itself (the page's CSP allows script-src 'self').
(function () {
  "use strict";
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { zone = ""; }
  var times = document.querySelectorAll("time[datetime]");
  for (var i = 0; i < times.length; i++) {
    var el = times[i];
    var when = new Date(el.getAttribute("datetime"));
    if (isNaN(when.getTime())) { continue; }
    var local = document.createElement("span");
    local.className = "local";
    local.textContent = " · " + when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) + (zone ? " " + zone : " local");
    el.appendChild(local);
    el.title = el.getAttribute("datetime");
  }
})();
