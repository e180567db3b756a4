"""The versioning core: on-store layout, records, chunk index and node state.

Layering: this package talks only to :mod:`diced.backends`; the public API
(:mod:`diced.store`, :mod:`diced.repo`, :mod:`diced.array`) sits on top of it.
The on-store format it writes is documented in ``docs/format.md``.
"""
