"""Tenure: a Kubernetes operator that enforces a SaaS data-retention policy.

Tenants move through Active → Suspended → Expired → Purging → Purged on exact
deadlines taken from their RetentionPolicy; LegalHolds stop any purge. The
package is layered: ``api`` (the CRD models), ``lifecycle`` (the pure state
machine), ``effects`` (idempotent I/O on the things we delete) and
``runtime`` (the kopf wiring that connects them).
"""
