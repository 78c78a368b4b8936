"""The LiteLLM proxy preset: where a tenant's data lives in LiteLLM's schema.

A tenant's keys are LiteLLM organization ids and/or team ids. Before anything
is deleted they are resolved to every organization, team and virtual key
(hashed token) they cover, and that resolution is recorded in the Tenant's
status: a purge interrupted after the team rows are gone still knows which
spend logs and keys to delete.

Derived from LiteLLM's own migrations (the litellm-proxy-extras package); the
tests build the schema by applying them in order to a real PostgreSQL.
"""

from __future__ import annotations

from typing import Any, cast

import psycopg

from .targets import Target

ORGANIZATION, TEAM, TOKEN = "organization", "team", "token"


def _t(table: str, data_class: Any, *keys: tuple[str, str], timestamp: str | None = None, **redact: Any) -> Target:
    return Target(
        "public", table, tuple(keys), data_class, timestamp, cast(Any, {k: tuple(v) for k, v in redact.items()})
    )


_TEAM, _ORG, _KEY = ("team_id", TEAM), ("organization_id", ORGANIZATION), ("api_key", TOKEN)

TARGETS: tuple[Target, ...] = (
    # Virtual keys first: once they are gone the gateway rejects the tenant's requests,
    # so no new rows arrive while the rest is deleted.
    _t("LiteLLM_VerificationToken", "account", ("token", TOKEN), _TEAM, _ORG),
    _t(
        "LiteLLM_SpendLogs",
        "usage",
        _TEAM,
        _ORG,
        _KEY,
        timestamp="startTime",
        prompts=["messages", "proxy_server_request"],
        responses=["response"],
    ),
    _t("LiteLLM_DailyTeamSpend", "usage", _TEAM, timestamp="created_at"),
    _t("LiteLLM_DailyOrganizationSpend", "usage", _ORG, timestamp="created_at"),
    _t("LiteLLM_DailyUserSpend", "usage", _KEY, timestamp="created_at"),
    _t("LiteLLM_DailyEndUserSpend", "usage", _KEY, timestamp="created_at"),
    _t("LiteLLM_DailyAgentSpend", "usage", _KEY, timestamp="created_at"),
    _t("LiteLLM_DailyTagSpend", "usage", _KEY, timestamp="created_at"),
    _t("LiteLLM_DailyGuardrailUsageUnits", "usage", _TEAM, _KEY, timestamp="created_at"),
    _t("LiteLLM_DailyRequestErrors", "logs", _TEAM, _KEY, timestamp="created_at"),
    _t("LiteLLM_AutoRouterSession", "usage", _KEY, timestamp="last_turn_at"),
    _t("LiteLLM_AutoRouterUserSession", "usage", _KEY, timestamp="last_turn_at"),
    _t("LiteLLM_AutoRouterDailySpend", "usage", _KEY),
    _t("LiteLLM_AutoRouterBaselineComparison", "usage", _KEY, timestamp="updated_at"),
    _t("LiteLLM_ToolTable", "account", _TEAM, ("key_hash", TOKEN)),
    _t("LiteLLM_GuardrailsTable", "account", _TEAM),
    _t("LiteLLM_JWTKeyMapping", "account", ("token", TOKEN)),
    _t("LiteLLM_DeprecatedVerificationToken", "account", ("active_token_id", TOKEN)),
    _t("LiteLLM_ManagedFileTable", "account", _TEAM),
    _t("LiteLLM_ManagedObjectTable", "account", _TEAM, ("org_id", ORGANIZATION), _KEY),
    _t("LiteLLM_ManagedVectorStoreTable", "account", _TEAM),
    _t("LiteLLM_ManagedVectorStoresTable", "account", _TEAM),
    _t("LiteLLM_MemoryTable", "account", _TEAM),
    _t("LiteLLM_DeletedVerificationToken", "account", ("token", TOKEN), _TEAM, _ORG),
    _t("LiteLLM_DeletedTeamTable", "account", _TEAM, _ORG),
    _t("LiteLLM_ProjectTable", "account", _TEAM),
    _t("LiteLLM_TeamMembership", "account", _TEAM),
    _t("LiteLLM_OrganizationMembership", "account", _ORG),
    _t("LiteLLM_TeamTable", "account", _TEAM),
    _t("LiteLLM_OrganizationTable", "account", _ORG),
)
"""In purge order: references (teams → organizations) are deleted before what they reference."""

_NO_KEY = "no column names a team, organization or key"
_BY_REQUEST = "rows keyed by a spend log's request_id, " + _NO_KEY
_BY_USER = "per user; users are shared across teams and organizations and are not deleted"
_IDS_IN_ARRAYS = "lists team or key ids inside arrays; the entries are not removed"

RESIDUAL = (
    f"LiteLLM_ErrorLogs: request_kwargs may hold prompts; {_NO_KEY}",
    "LiteLLM_AuditLog: before_value/updated_values JSON may copy deleted rows; only object_id identifies them",
    "LiteLLM_UserTable: users are shared across teams and organizations and are not deleted",
    f"LiteLLM_SpendLogToolIndex: tool names per request, {_BY_REQUEST} (LiteLLM's spend-log cleanup prunes it)",
    f"LiteLLM_SpendLogGuardrailIndex: guardrails per request, {_BY_REQUEST}",
    f"LiteLLM_AutoRouterBaselineObservation: router observations per request, {_BY_REQUEST}",
    f"LiteLLM_ShadowEvalAttempt: shadow evaluations per request, {_BY_REQUEST}",
    f"LiteLLM_AdaptiveRouterSession: last user and assistant content of router sessions, keyed by session; {_NO_KEY}",
    f"LiteLLM_WorkflowRun: workflow inputs and outputs, keyed by run, session and creating user; {_NO_KEY}",
    f"LiteLLM_WorkflowMessage: workflow message content, keyed by run and session; {_NO_KEY}",
    f"LiteLLM_WorkflowEvent: workflow event data, keyed by run; {_NO_KEY}",
    f"LiteLLM_ManagedFileContentTable: uploaded file bytes keyed by file id; {_NO_KEY}",
    f"LiteLLM_BackgroundInteractionSettlement: request context of background interactions; {_NO_KEY}",
    f"LiteLLM_LensTraceSignal: trace data of LiteLLM Lens; {_NO_KEY}",
    f"LiteLLM_LensReview: reviews of traces; {_NO_KEY}",
    f"LiteLLM_LensRun: Lens runs; {_NO_KEY}",
    f"LiteLLM_LensDataset: Lens datasets; {_NO_KEY}",
    f"LiteLLM_TelemetryReport: usage reports as JSON; {_NO_KEY}",
    "LiteLLM_BudgetWindowSpend: spend per budget window; entity_id may be a team or key id, not matched by kind",
    f"LiteLLM_MCPUserCredentials: MCP credentials {_BY_USER}",
    f"LiteLLM_MCPUserEnvVars: MCP environment values {_BY_USER}",
    f"LiteLLM_UserProviderCredentials: provider credentials {_BY_USER}",
    f"LiteLLM_SSOIdentityAssertion: SSO assertions {_BY_USER}",
    f"LiteLLM_VerifiedSubject: verified identities {_BY_USER}",
    f"LiteLLM_InvitationLink: invitations {_BY_USER}",
    f"LiteLLM_UserNotifications: access requests with their justification text {_BY_USER}",
    "LiteLLM_EndUserTable: end users (the customers' own users) are not attributed to a team or organization",
    f"LiteLLM_AccessGroupTable: {_IDS_IN_ARRAYS}",
    f"LiteLLM_PolicyAttachmentTable: {_IDS_IN_ARRAYS}",
)
"""Copies of tenant data no column attributes to a tenant: a purge does not clear them."""

RESIDUAL_IF_PRESENT = (
    (
        "LiteLLM_SpendLogs_legacy",
        "the unpartitioned spend logs LiteLLM's partitioning script (db_scripts/partition_spend_logs.sql) renames "
        "aside; a purge does not clear it: drop it once its rows are past retention",
    ),
)
"""Residual tables that exist only in some installations, listed when present."""

NO_TENANT_DATA = {
    "proxy configuration an administrator writes (models, credentials, tools, policies, settings)": (
        "LiteLLM_AgentIdentity", "LiteLLM_AgentsTable", "LiteLLM_BudgetTable", "LiteLLM_CacheConfig",
        "LiteLLM_ClaudeCodePluginTable", "LiteLLM_Config", "LiteLLM_ConfigOverrides", "LiteLLM_CredentialsTable",
        "LiteLLM_LensIngestionKey", "LiteLLM_LensSignalConfig", "LiteLLM_Lens", "LiteLLM_MCPServerOAuthClient",
        "LiteLLM_MCPServerTable", "LiteLLM_MCPToolsetTable", "LiteLLM_ManagedVectorStoreIndexTable",
        "LiteLLM_ModelAccessGroupBudgetTable", "LiteLLM_ModelTable", "LiteLLM_ObjectPermissionTable",
        "LiteLLM_PolicyTable", "LiteLLM_PromptTable", "LiteLLM_ProxyModelTable", "LiteLLM_SearchToolsTable",
        "LiteLLM_SkillsTable", "LiteLLM_SSOConfig", "LiteLLM_ShadowEvalJob", "LiteLLM_TagTable",
        "LiteLLM_UISettings", "LiteLLM_RetiredAgent", "LiteLLM_RetiredAgentIdentity",
    ),
    "aggregates over every tenant (per day, model, route, tool, guardrail or policy)": (
        "LiteLLM_DailyGlobalSpend", "LiteLLM_DailyModelUsage", "LiteLLM_DailyToolSpend",
        "LiteLLM_DailyGatewayRequests", "LiteLLM_DailyGatewayFailedRequests", "LiteLLM_DailyGuardrailMetrics",
        "LiteLLM_DailyPolicyMetrics", "LiteLLM_AdaptiveRouterState", "LiteLLM_ShadowEvalFunnel",
    ),
    "the proxy's own bookkeeping": (
        "LiteLLM_CronJob", "LiteLLM_ProxyWorkerHeartbeat", "LiteLLM_LensWorker", "LiteLLM_HealthCheckTable",
    ),
}  # fmt: skip
"""Tables of LiteLLM's schema that hold no tenant's data, by why."""


async def resolve(conn: psycopg.AsyncConnection[Any], keys: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Organizations, teams and virtual keys covered by the tenant's organization and team ids.

    A key that is neither a known organization nor a known team (its rows may
    already be deleted) is kept as both, so rows still carrying it are found.
    """
    if not keys:
        return {ORGANIZATION: (), TEAM: (), TOKEN: ()}
    async with conn.cursor() as cur:
        await cur.execute(
            'SELECT organization_id FROM "LiteLLM_OrganizationTable" WHERE organization_id = ANY(%s)', [list(keys)]
        )
        organizations = {row[0] for row in await cur.fetchall()}
        await cur.execute(
            'SELECT team_id FROM "LiteLLM_TeamTable" WHERE team_id = ANY(%s) OR organization_id = ANY(%s) '
            'UNION SELECT team_id FROM "LiteLLM_DeletedTeamTable" WHERE team_id = ANY(%s) OR organization_id = ANY(%s)',
            [list(keys), list(organizations)] * 2,
        )
        teams = {row[0] for row in await cur.fetchall()}
        unknown = set(keys) - organizations - teams
        organizations |= unknown
        teams |= unknown
        await cur.execute(
            'SELECT token FROM "LiteLLM_VerificationToken" WHERE team_id = ANY(%s) OR organization_id = ANY(%s) '
            'UNION SELECT token FROM "LiteLLM_DeletedVerificationToken" '
            "WHERE team_id = ANY(%s) OR organization_id = ANY(%s)",
            [list(teams), list(organizations)] * 2,
        )
        tokens = {row[0] for row in await cur.fetchall()}
    return {ORGANIZATION: tuple(sorted(organizations)), TEAM: tuple(sorted(teams)), TOKEN: tuple(sorted(tokens))}


async def tokens_by_owner(
    conn: psycopg.AsyncConnection[Any], teams: list[str], organizations: list[str]
) -> dict[str, tuple[str, ...]]:
    """Virtual key → the team and organization ids it carries, for many tenants in one query (used by sweeps)."""
    async with conn.cursor() as cur:
        await cur.execute(
            'SELECT token, team_id, organization_id FROM "LiteLLM_VerificationToken" '
            "WHERE team_id = ANY(%s) OR organization_id = ANY(%s)",
            [teams, organizations],
        )
        return {token: tuple(o for o in (team, org) if o) for token, team, org in await cur.fetchall()}


async def organizations_of(conn: psycopg.AsyncConnection[Any], teams: tuple[str, ...]) -> set[str]:
    """The organizations the teams belong to (live or deleted teams)."""
    if not teams:
        return set()
    async with conn.cursor() as cur:
        await cur.execute(
            'SELECT organization_id FROM "LiteLLM_TeamTable" WHERE team_id = ANY(%s) AND organization_id IS NOT NULL '
            'UNION SELECT organization_id FROM "LiteLLM_DeletedTeamTable" '
            "WHERE team_id = ANY(%s) AND organization_id IS NOT NULL",
            [list(teams)] * 2,
        )
        return {row[0] for row in await cur.fetchall()}


async def teams_of(conn: psycopg.AsyncConnection[Any], organizations: list[str]) -> dict[str, str]:
    """Team → organization, for the teams of the organizations (live or deleted teams); one query for many."""
    async with conn.cursor() as cur:
        await cur.execute(
            'SELECT team_id, organization_id FROM "LiteLLM_TeamTable" WHERE organization_id = ANY(%s) '
            'UNION SELECT team_id, organization_id FROM "LiteLLM_DeletedTeamTable" WHERE organization_id = ANY(%s)',
            [organizations] * 2,
        )
        return {team: organization for team, organization in await cur.fetchall()}
