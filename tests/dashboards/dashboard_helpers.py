"""Helpers of the review app's tests: accounts, a live server, form parsing."""

from __future__ import annotations

import re
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from argon2 import PasswordHasher

from dashboards.sample import SampleState
from dashboards.store import AppStore
from ews.settings import Settings

PASSWORD = "korrekt-hest-batteri-42"
#: Argon2id with small costs: the tests check behaviour, not the production parameters.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass
class AppEnv:
    """A state folder with sample data and accounts, and the app built on it."""

    sample: SampleState
    settings: Settings
    store: AppStore

    @property
    def state_dir(self) -> Path:
        return self.sample.state_dir


def make_env(sample: SampleState, target: Path) -> AppEnv:
    """Copy the sample state folder and add one account per role."""
    shutil.copytree(sample.state_dir, target)
    state = SampleState(target, target / "municipality.yaml", sample.terms, sample.run_ids, sample.networks,
                        sample.schools, sample.school_network, sample.pupils, sample.as_of_dates)
    store = AppStore(target / "app.sqlite", hasher=FAST_HASHER)
    store.add_user("vera", "Vera Vejleder", "consultant", PASSWORD)
    store.assign("vera", "school", "S0001")
    store.assign("vera", "school", "S0002")
    store.add_user("nina", "Nina Netværk", "network_member", PASSWORD)
    store.assign("nina", "network", "N001")
    store.add_user("otto", "Otto Andetnet", "network_member", PASSWORD)
    store.assign("otto", "network", "N002")
    store.add_user("stig", "Stig Steward", "steward", PASSWORD)
    store.add_user("anne", "Anne Admin", "admin", PASSWORD)
    settings = Settings(state_dir=target, config_path=target / "municipality.yaml")
    return AppEnv(state, settings, store)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """The app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: object) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the app did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def login(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    """Log in through the form (with its CSRF token); returns the login POST's response."""
    form = client.get("/login")
    token = re.search(r'name="login_csrf" value="([^"]+)"', form.text).group(1)
    return client.post("/login", data={"username": username, "password": password, "login_csrf": token,
                                       "next": "/"})


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def pupil_links(html: str) -> list[str]:
    return re.findall(r'href="/elev/([0-9a-f]{16})', html)
