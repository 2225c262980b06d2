(function () {
  var t0 = performance.now();
  document.querySelectorAll(".views button").forEach(function (b) {
    b.addEventListener("click", function () {
      document.body.className = "view-" + b.dataset.view;
    });
  });
  // How long the page took to build (from navigation to here, the end of the body), and
  // to paint once a frame is drawn: for whoever measures it.
  document.body.dataset.scriptMs = (performance.now() - t0).toFixed(1);
  document.body.dataset.renderMs = performance.now().toFixed(1);
  requestAnimationFrame(function () {
    document.body.dataset.paintMs = performance.now().toFixed(1);
  });
})();
