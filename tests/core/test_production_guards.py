"""What production refuses: a USSD channel no caller can prove itself to, public metrics and
API documentation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from core.settings import get_settings
from models.channels import Channel
from models.enums import ChannelType
from support.embedded import forget_configuration

PRODUCTION = {
    "DEME_ENV": "production",
    "DEME_SECRET_KEY": "s" * 40,
    "DEME_PII_KEY": "b6Yw3Qm9mE5m3ZtT1C7i3yV9wZr9a2Zc0Zk7mP2q3sI=",
    "DEME_BOT_SHARED_SECRET": "bot-secret-for-production-1234",
    "DEME_METRICS_TOKEN": "prometheus-scrape-token-0123456789",
}


@pytest.fixture()
def production(db: Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    """The test database, with the app configured as in production."""
    assert os.environ["DEME_DATABASE_URL"]
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    forget_configuration()
    assert get_settings().env == "production"
    yield db
    monkeypatch.undo()
    forget_configuration()


def _app() -> Any:
    from deme.app import create_app

    return create_app()


def test_production_refuses_to_start_with_a_ussd_channel_nobody_authenticates(
    production: Session,
) -> None:
    from deme.app import UnsafeConfiguration

    production.add(
        Channel(name="at-ussd", type=ChannelType.AFRICASTALKING, config={"ussd_code": "*384#"})
    )
    production.commit()
    with (
        pytest.raises(UnsafeConfiguration, match=r"'at-ussd'.*deme channel-secret"),
        TestClient(_app(), base_url="https://deme.test"),
    ):
        pass


def test_production_starts_once_the_channel_has_a_secret(production: Session) -> None:
    production.add(
        Channel(
            name="at-ussd",
            type=ChannelType.AFRICASTALKING,
            credentials={"ussd_secret": "a-long-enough-secret"},
            config={"ussd_code": "*384#"},
        )
    )
    production.commit()
    with TestClient(_app(), base_url="https://deme.test") as client:
        assert client.get("/healthz").status_code == 200


def _admin_token(session: Session) -> str:
    from models.enums import UserRole
    from ops_console.auth import create_user, issue_api_token

    admin = create_user(
        session, username="root-admin", role=UserRole.ADMIN, password="a long admin passphrase"
    )
    operator = create_user(
        session,
        username="an-operator",
        role=UserRole.OPERATOR,
        password="a long operator passphrase",
    )
    token = issue_api_token(session, admin, "tests")
    session.info["operator_token"] = issue_api_token(session, operator, "tests")
    session.commit()
    return token


def test_metrics_in_production_need_the_scrape_token_or_an_admin(production: Session) -> None:
    admin = _admin_token(production)
    operator = production.info["operator_token"]
    with TestClient(_app(), base_url="https://deme.test") as client:
        anonymous = client.get("/metrics")
        assert anonymous.status_code == 401 and "DEME_METRICS_TOKEN" in anonymous.text
        assert "deme_http_requests_total" not in anonymous.text
        bearer = {"Authorization": f"Bearer {PRODUCTION['DEME_METRICS_TOKEN']}"}
        assert "deme_http_requests_total" in client.get("/metrics", headers=bearer).text
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        as_admin = client.get("/metrics", headers={"Authorization": f"Bearer {admin}"})
        assert as_admin.status_code == 200
        as_operator = client.get("/metrics", headers={"Authorization": f"Bearer {operator}"})
        assert as_operator.status_code == 401


def test_api_documentation_in_production_is_for_signed_in_staff(production: Session) -> None:
    admin = _admin_token(production)
    with TestClient(_app(), base_url="https://deme.test") as client:
        for path in ("/api/docs", "/api/openapi.json"):
            assert client.get(path).status_code == 401, path
        headers = {"Authorization": f"Bearer {admin}"}
        document = client.get("/api/openapi.json", headers=headers)
        assert document.status_code == 200 and "/api/v1/tickets" in document.json()["paths"]
        assert client.get("/api/docs", headers=headers).status_code == 200


def test_development_keeps_docs_and_metrics_open(client: Any) -> None:
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/metrics").status_code == 200
