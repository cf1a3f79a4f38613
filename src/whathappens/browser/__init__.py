"""The page in real Chromium: the browser phase of a journey."""
