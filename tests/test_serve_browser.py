"""The web event browser driven by a real headless Chromium (Debian's chromium and
chromium-driver, installed by scripts/provision.sh) through Selenium: log in with a token,
find a stream, open an event and see what changed highlighted, watch a live event arrive,
look at projections and schemas. Screenshots are saved under .kes/artifacts/serve-ui/."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from kes import ANY, NO_STREAM, KafkaConfig, KafkaEventStore, NewEvent
from kes.schemas import SchemaRegistry
from kes.serve import ServeSettings, create_app, parse_tokens
from tests.serve_support import READ, ROOT, TOKENS, serving

pytestmark = pytest.mark.kafka

ARTIFACTS = ROOT / ".kes" / "artifacts" / "serve-ui"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "chromium and chromium-driver are needed (scripts/provision.sh)"
    options = Options()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="kes-chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        web = webdriver.Chrome(service=Service(executable_path=driver), options=options)
        try:
            yield web
        finally:
            web.quit()


def shot(browser: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


def test_find_a_stream_see_what_changed_and_watch_a_live_event_arrive(
    browser: WebDriver, kafka_store: KafkaEventStore, kafka_config: KafkaConfig, unique: str
) -> None:
    store = kafka_store
    store.append(
        "Account",
        "acc-42",
        [
            NewEvent(
                event_type="Opened", payload={"owner": "Ann Lee", "balance": 10, "currency": "EUR"}
            ),
            NewEvent(event_type="Deposited", payload={"balance": 35, "lastDeposit": 25}),
            NewEvent(event_type="Renamed", payload={"owner": "Ann Smith"}),
        ],
        NO_STREAM,
    )
    for i in range(3):
        store.append(
            "Order", f"o-{i}", [NewEvent(event_type="Placed", payload={"total": i})], NO_STREAM
        )
    settings = ServeSettings(tokens=tuple(parse_tokens(TOKENS, "test")))
    with (
        SchemaRegistry(kafka_config, topic=f"{unique}._schemas") as registry,
        serving(create_app(store, settings, registry)) as url,
    ):
        registry.register(
            "Account-Opened",
            json.dumps(
                {
                    "type": "object",
                    "properties": {"owner": {"type": "string"}, "balance": {"type": "integer"}},
                }
            ),
            "JSON",
        )
        wait = WebDriverWait(browser, 30)
        browser.get(f"{url}/ui/")
        # no token yet: the page asks for one, and keeps it in a SameSite cookie
        wait.until(ec.visibility_of_element_located((By.ID, "login")))
        browser.find_element(By.ID, "token").send_keys(READ)
        browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
        row = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#types tr[data-type=Account]"))
        )
        assert int(row.find_element(By.CSS_SELECTOR, ".count").text) >= 3
        shot(browser, "1-aggregate-types")

        # find a stream
        wait.until(
            lambda b: (
                "Account" in [o.text for o in Select(b.find_element(By.ID, "find-type")).options]
            )
        )
        Select(browser.find_element(By.ID, "find-type")).select_by_visible_text("Account")
        browser.find_element(By.ID, "find-id").send_keys("acc-42")
        browser.find_element(By.ID, "find-go").click()
        items = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#timeline li") or None)
        assert items is not None
        assert [i.get_attribute("data-version") for i in items] == ["1", "2", "3"]

        # open an event: what changed from the previous version is highlighted
        browser.find_element(By.CSS_SELECTOR, "#timeline li[data-version='2']").click()
        changed = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#changes tr[data-field=balance]"))
        )
        assert changed.get_attribute("class") == "changed"
        assert [td.text for td in changed.find_elements(By.TAG_NAME, "td")] == [
            "balance",
            "10",
            "35",
        ]
        added = browser.find_element(By.CSS_SELECTOR, "#changes tr[data-field=lastDeposit]")
        assert added.get_attribute("class") == "added"
        same = browser.find_element(By.CSS_SELECTOR, "#changes tr[data-field=owner]")
        assert same.get_attribute("class") == "same"
        highlight = changed.find_element(By.TAG_NAME, "td").value_of_css_property(
            "background-color"
        )
        plain = same.find_element(By.TAG_NAME, "td").value_of_css_property("background-color")
        assert highlight != plain, "the changed field is not highlighted"
        assert '"lastDeposit": 25' in browser.find_element(By.ID, "payload").text
        shot(browser, "2-stream-timeline-and-changes")

        # live tail: an event appended now shows up without a reload
        browser.get(f"{url}/ui/#/tail/Account")
        wait.until(ec.text_to_be_present_in_element((By.ID, "tail-state"), "live"))
        result = store.append(
            "Account", "acc-42", [NewEvent(event_type="Withdrawn", payload={"balance": 5})], 3
        )
        assert result.version == 4
        live = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#tail li")))
        assert "Withdrawn" in live.text and "acc-42" in live.text and "v4" in live.text
        store.append(
            "Account", "acc-7", [NewEvent(event_type="Opened", payload={"owner": "Bo"})], ANY
        )
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#tail li")) == 2)
        shot(browser, "3-live-tail")

        # schemas with their versions and compatibility
        browser.get(f"{url}/ui/#/schemas/Account-Opened")
        row = wait.until(
            ec.presence_of_element_located(
                (By.CSS_SELECTOR, "#schemas tr[data-subject='Account-Opened']")
            )
        )
        assert "BACKWARD" in row.text
        wait.until(ec.text_to_be_present_in_element((By.ID, "schema-detail"), '"owner"'))
        shot(browser, "4-schemas")

        # a projection with a committed position and a dead letter: lag per partition
        park_one(kafka_config, "balances")
        browser.get(f"{url}/ui/#/projections")
        wait.until(ec.presence_of_element_located((By.LINK_TEXT, "balances"))).click()
        try:
            wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#lag tr td")))
        finally:
            shot(browser, "5-projection-lag-and-dead-letters")
        lag = int(browser.find_element(By.ID, "total-lag").text)
        assert lag >= 3
        assert "KeyError" in browser.find_element(By.ID, "dead-letters").text
        shot(browser, "5-projection-lag-and-dead-letters")


def park_one(config: KafkaConfig, name: str) -> None:
    """A projection's footprint: a committed position on Account[0] and one parked record."""
    from confluent_kafka import TopicPartition

    from kes.kafka.clients import plain_consumer
    from kes.projections.dlq import DeadLetters

    topic = config.topic("Account")
    consumer = plain_consumer(config, config.group_id(name))
    consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    consumer.close()

    class Record:  # what DeadLetters reads of a confluent Message
        def key(self) -> bytes:
            return b"acc-9"

        def value(self) -> bytes:
            return b'{"eventType": "Deposited", "payload": {}}'

        def headers(self) -> list[tuple[str, bytes]]:
            return []

        def topic(self) -> str:
            return topic

        def partition(self) -> int:
            return 0

        def offset(self) -> int:
            return 2

    dlq = DeadLetters(config, name)
    dlq.park(Record(), KeyError("balance"), 3)
    dlq.close()
