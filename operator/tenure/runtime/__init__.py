"""The running operator: kopf wiring, in-memory caches, the deadline scheduler.

kopf watches the API and keeps indexes (in-memory caches) of tenants,
policies, holds, namespaces and volumes; it runs no per-object timers and
stores no handler progress, so an idle operator writes nothing. One
:class:`~tenure.runtime.scheduler.Scheduler` owns every tenant's next
deadline and hands due or changed tenants to the
:class:`~tenure.runtime.reconciler.Reconciler`.
"""
