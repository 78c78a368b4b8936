from __future__ import annotations

import pytest

from tests.support.postgres import Postgres


@pytest.fixture
def postgres_db(postgres: Postgres, unique: str) -> str:
    """An empty database for one test."""
    return postgres.create_database(f"empty_{unique}")
