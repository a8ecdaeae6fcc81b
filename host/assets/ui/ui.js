// The dashboard's script, on every page. It shows why an htmx request failed (htmx leaves
// the page as it was on an error answer). On the campaign page it draws the charts: it
// reads /ui/campaigns/{id}/series (the scheduler's progress samples and this moment) and
// hands it to uPlot, once on load and every 15 s after. Elements with `data-series` name the
// URL; `data-kind` says which chart: "jobs" (jobs by state) or "failure" (failure share in
// percent against the guard's threshold).
(function () {
  "use strict";
  var style = getComputedStyle(document.documentElement);
  function color(state) {
    return style.getPropertyValue("--" + state).trim() || "#555";
  }
  var plots = {};

  function options(el, kind, d) {
    var series = [{}];
    if (kind === "jobs") {
      d.states.forEach(function (s) {
        series.push({ label: s.name, stroke: color(s.name), width: 2 });
      });
    } else {
      series.push({ label: "failure share %", stroke: color("failed"), width: 2 });
      if (d.threshold !== null) {
        series.push({ label: "guard %", stroke: "#8a5a00", width: 1, dash: [6, 4] });
      }
    }
    return {
      width: Math.max(el.clientWidth - 16, 300),
      height: 240,
      series: series,
      axes: [{}, { label: kind === "jobs" ? "jobs" : "%" }],
      scales: kind === "jobs" ? {} : { y: { range: [0, 100] } },
    };
  }

  function data(kind, d) {
    if (kind === "jobs") {
      return [d.t].concat(d.states.map(function (s) { return s.values; }));
    }
    var out = [d.t, d.failure.map(function (f) { return f * 100; })];
    if (d.threshold !== null) {
      out.push(d.t.map(function () { return d.threshold * 100; }));
    }
    return out;
  }

  function draw(el, d) {
    var kind = el.dataset.kind;
    if (plots[el.id]) {
      plots[el.id].destroy();
    }
    el.replaceChildren();
    plots[el.id] = new uPlot(options(el, kind, d), data(kind, d), el);
    // How many points are drawn, for the browser test and the curious.
    el.dataset.points = String(d.t.length);
  }

  function load() {
    var charts = document.querySelectorAll("[data-series]");
    if (charts.length === 0) {
      return;
    }
    fetch(charts[0].dataset.series, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (d) { charts.forEach(function (el) { draw(el, d); }); })
      .catch(function (e) { console.warn("chart data unavailable", e); });
  }

  // The error page's own message when there is one, else the status.
  function failed(status, html) {
    var message = "The server answered " + status + ".";
    if (html) {
      var shown = new DOMParser().parseFromString(html, "text/html").querySelector(".flash.bad");
      if (shown) {
        message = shown.textContent;
      }
    }
    var flash = document.getElementById("request-error");
    if (!flash) {
      flash = document.createElement("p");
      flash.id = "request-error";
      flash.className = "flash bad";
      flash.setAttribute("role", "alert");
      document.querySelector("main").prepend(flash);
    }
    flash.textContent = message;
  }

  document.addEventListener("htmx:responseError", function (e) {
    failed(e.detail.xhr.status, e.detail.xhr.responseText);
  });
  document.addEventListener("htmx:sendError", function () {
    failed("nothing (the server could not be reached)", null);
  });

  document.addEventListener("DOMContentLoaded", function () {
    if (window.uPlot) {
      load();
      setInterval(load, 15000);
    }
  });
})();
