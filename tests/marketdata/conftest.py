"""The market-data tests use the whole-exchange fixture of tests/exchange.py (``md_exchange``)."""

from tests.exchange import SYMBOLS, MdExchange  # noqa: F401  (re-exported for the tests here)
