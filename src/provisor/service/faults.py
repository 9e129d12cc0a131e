"""The SCIM error a database failure is answered with (503 with Retry-After, 507 on a full disk),
or None for any other exception. Storage knows its drivers' errors (storage/faults.py); the HTTP
layer asks here, so it needs no knowledge of them."""

from provisor.storage.faults import database_fault

__all__ = ["database_fault"]
