"""Effects: every write Tenure makes to the outside world, one module per thing touched.

Each function is idempotent and safe to retry after a crash: creating what
exists, or deleting what is gone, is success. Deletions carry preconditions
(uid, resourceVersion) so they only ever remove the object that was checked.
"""
