# Cython declarations for accounts.py (pure Python mode: the .py is the source, this file
# only types it for the compiled build; see setup.py).
#
# An account's numbers are C int64s: the engine refuses any order that could take cash,
# bought or sold lots past 2^62 - 1 with every open order filled (engine.MAX_CASH, MAX_LOTS),
# so cash, positions and open lots stay within 2^62 and open cash (bid_cash, ask_cash)
# within 2^63 - 2; and a cash multiplier above 2^62 - 1 is refused when a symbol is listed.

cdef class Account

cdef class Holding:
    cdef public Account acct
    cdef public str symbol
    cdef public long long mult, pos, bought, sold, bid_lots, ask_lots

    cpdef bint traded(self)

cdef class Account:
    cdef public str name
    cdef public long long cash
    cdef public dict holdings, orders, max_position
    cdef public long long bid_cash, ask_cash
    cdef public object kill, max_open_orders, credit
    cdef public bint checks
    cdef public tuple origin
    cdef public list log, reports

    cpdef Holding holding(self, str symbol, object mult)
    cpdef report(self, tuple origin, int role, object ev)
