# Headless Chromium and Debian's version-matched chromedriver for the
# dashboard's browser tests (tests/integration/test_dashboard_browser.py),
# driven through Selenium from the dev extra.
apt_install chromium chromium-driver
