// Loaded before the page paints (a classic script, not a module): the chosen colour
// theme, so a dark page never flashes light. "auto" follows prefers-color-scheme.
(function () {
  var theme = null;
  try {
    theme = localStorage.getItem('atomic.theme');
  } catch (e) {
    theme = null;
  }
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
})();
