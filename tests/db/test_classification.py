"""Every table LiteLLM's migrations create is classified by the preset, so an upgrade that adds one is caught."""

from __future__ import annotations

from collections import Counter

import psycopg

from tenure.datastores import litellm


def classified() -> list[str]:
    purged = [target.table for target in litellm.TARGETS]
    residual = [entry.split(":")[0] for entry in litellm.RESIDUAL]
    none = [table for tables in litellm.NO_TENANT_DATA.values() for table in tables]
    return purged + residual + none


def test_every_table_of_litellms_schema_is_purged_residual_or_without_tenant_data(litellm_db: str) -> None:
    with psycopg.connect(litellm_db) as conn:
        tables = {
            name
            for (name,) in conn.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            ).fetchall()
        }
    names = classified()
    assert sorted(tables - set(names)) == [], "tables the LiteLLM preset does not classify"
    assert sorted(set(names) - tables) == [], "classified tables LiteLLM's schema does not have"
    assert [name for name, times in Counter(names).items() if times > 1] == [], "tables classified twice"
