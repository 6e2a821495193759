# Cython declarations for accounts.py (pure-Python mode: the .py is the source, this file
# only types it for the compiled build; see nodes/matcher/COMPILED.md).

cdef class Account:
    cdef public str name
    cdef public object cash
    cdef public dict pos, bought, sold, orders, bid_lots, ask_lots, max_position
    cdef public object bid_cash
    cdef public object kill, max_open_orders, credit
    cdef public bint checks
    cdef public tuple origin
    cdef public list log, reports

    cpdef report(self, tuple origin, int role, object ev)
    cpdef expose_bid(self, str symbol, object lots, object cash)
    cpdef expose_ask(self, str symbol, object lots)
    cpdef buy(self, str symbol, object lots, object cash)
    cpdef sell(self, str symbol, object lots, object cash)
