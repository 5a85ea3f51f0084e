"""The PostgreSQL store: the shared backend several intentd processes use at once.

asyncpg speaks the protocol on the loop itself (no thread of ours, none of its own); a host name
in ``storage.url`` is resolved through the loop's default executor, as for aiohttp, while an IP
literal needs no thread at all.
"""
