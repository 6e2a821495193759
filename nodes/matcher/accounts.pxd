# Cython declarations for accounts.py (pure Python mode: the .py is the source, this file
# only types it for the compiled build; see setup.py). Sums stay Python ints: a day's
# bought lots or cash can pass any C integer before the engine's bounds refuse more.

cdef class Account

cdef class Holding:
    cdef public Account acct
    cdef public str symbol
    cdef public object mult, pos, bought, sold, bid_lots, ask_lots

    cpdef bint traded(self)

cdef class Account:
    cdef public str name
    cdef public object cash
    cdef public dict holdings, orders, max_position
    cdef public object bid_cash, ask_cash
    cdef public object kill, max_open_orders, credit
    cdef public bint checks
    cdef public tuple origin
    cdef public list log, reports

    cpdef Holding holding(self, str symbol, object mult)
    cpdef report(self, tuple origin, int role, object ev)
