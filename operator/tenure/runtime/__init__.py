"""The running operator: kopf wiring, in-memory stores, the deadline scheduler.

kopf watches tenants, and :mod:`~tenure.runtime.informer` lists then watches
policies, holds, DataStores, namespaces and volumes; both update
:mod:`~tenure.runtime.store` and wake the schedulers. kopf
runs no per-object timers and stores no handler progress, so an idle
operator writes nothing. One :class:`~tenure.runtime.scheduler.Scheduler`
owns every tenant's next deadline and hands due or changed tenants to the
:class:`~tenure.runtime.reconciler.Reconciler`.
"""
