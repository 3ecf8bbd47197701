"""The API as a browser uses it, in headless Chromium.

    python3 browser_check.py BASE_URL SCREENSHOT_DIR ALLOWED_ORIGIN OTHER_ORIGIN

Signs up a reader through the API, opens BASE_URL/docs, waits for Swagger UI to render the
operations, authorizes with the reader's token, runs "Try it out" on GET /books and expects
200. Every request the page made must have gone to BASE_URL (the contract: no CDN, no
validator badge). Screenshots of the page (as it opens, and after the call) are saved in SCREENSHOT_DIR.

Then CORS: from a page on ALLOWED_ORIGIN (the API runs with it in ALLOWED_ORIGINS) a
`fetch` of GET /books with the token (so with a preflight) succeeds and its body can be
read; from a page on OTHER_ORIGIN the same fetch fails.
"""

import json
import sys
import tempfile
import time
import urllib.request
import uuid

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

base, shots, allowed_origin, other_origin = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3], sys.argv[4]

FETCH = """
const [api, token, done] = arguments;
fetch(api + "/books?limit=1", {headers: {Authorization: "Bearer " + token}})
  .then(r => r.json().then(page => done("status " + r.status + ", " + page.items.length + " book(s)")))
  .catch(e => done("failed: " + e));
"""


def fetch_from(driver, origin, token):
    driver.get(origin + "/")
    return driver.execute_async_script(FETCH, base, token)


def register():
    body = json.dumps({"email": f"docs-{uuid.uuid4().hex[:12]}@example.org", "password": "password123"})
    req = urllib.request.Request(f"{base}/auth/register", body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)["accessToken"]


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    # Headless as root, and nothing of Chromium's own traffic to a network that is closed.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,900",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='bookshelf-chromium-')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def requested_urls(driver):
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def main():
    token = register()
    driver = browser()
    wait = WebDriverWait(driver, 60)
    try:
        driver.get(f"{base}/docs")
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, ".opblock")))
        operations = len(driver.find_elements(By.CSS_SELECTOR, ".opblock"))
        driver.save_screenshot(f"{shots}/docs-overview.png")

        driver.find_element(By.CSS_SELECTOR, "button.authorize").click()
        field = wait.until(ready.visibility_of_element_located((By.CSS_SELECTOR, ".auth-container input")))
        field.send_keys(token)
        driver.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
        driver.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.btn-done").click()

        books = driver.find_element(
            By.XPATH, "//div[contains(@class, 'opblock-get')][.//*[@data-path='/books']]")
        books.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
        wait.until(lambda d: books.find_elements(By.CSS_SELECTOR, "button.try-out__btn"))
        books.find_element(By.CSS_SELECTOR, "button.try-out__btn").click()
        wait.until(lambda d: books.find_elements(By.CSS_SELECTOR, "button.execute"))
        books.find_element(By.CSS_SELECTOR, "button.execute").click()
        status = wait.until(lambda d: books.find_elements(
            By.CSS_SELECTOR, ".live-responses-table .response .response-col_status"))[0].text.strip()
        time.sleep(0.5)  # let the response body render for the screenshot
        shot = f"{shots}/docs-try-it-out.png"
        driver.save_screenshot(shot)

        # The browser's own pages (chrome://, its start page) are not the page's requests.
        urls = [u for u in requested_urls(driver) if u.split(":", 1)[0] in ("http", "https", "ws", "wss")]
        foreign = [u for u in urls if not u.startswith(base + "/")]
        print(f"docs: {operations} operations rendered; Try it out on GET /books answered {status}; "
              f"{len(urls)} requests, all to {base}; screenshots in {shots}")
        if not status.startswith("200"):
            sys.exit(f"Try it out on GET /books answered {status!r}, not 200")
        if foreign:
            sys.exit(f"the page requested other hosts: {foreign}")
        if operations < 20:
            sys.exit(f"only {operations} operations rendered")

        driver.set_script_timeout(30)
        allowed = fetch_from(driver, allowed_origin, token)
        other = fetch_from(driver, other_origin, token)
        print(f"cors: from {allowed_origin}: {allowed}; from {other_origin}: {other}")
        if not allowed.startswith("status 200,"):
            sys.exit(f"a cross-origin call from the allowed origin {allowed_origin} did not succeed: {allowed}")
        if not other.startswith("failed"):
            sys.exit(f"a cross-origin call from {other_origin} was let through: {other}")
    finally:
        driver.quit()


main()
