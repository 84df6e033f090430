"""Several camgate nodes sharing one PostgreSQL database: the store, the leases, the node loop.

Imported only when CAMGATE_DATABASE_URL is set: a single node needs neither PostgreSQL nor
its driver.
"""
