"""The conformance suite every `Store` backend must pass, shipped in the wheel.

Subclass `StoreConformance` in a test module, give it a ``store`` fixture that
yields a fresh, empty store, and declare what the backend lacks::

    import pytest
    from visiona_storage.testing import StoreConformance

    class TestMyStore(StoreConformance):
        supports_presigned_urls = False  # skipped, with this reason shown

        @pytest.fixture
        def store(self, tmp_path):
            with MyStore(tmp_path) as store:
                yield store

Needs pytest (``pip install visiona-storage[testing]``).
"""

from ._suite import BAD_KEYS, ODD_KEYS, StoreConformance

__all__ = ["BAD_KEYS", "ODD_KEYS", "StoreConformance"]
