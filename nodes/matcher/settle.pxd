# Cython declarations for settle.py (Cython pure Python mode; see setup.py).
# All C int64s, as the accounts' numbers are (accounts.pxd): a product mult * lots * price
# is at most one resting order's notional, which the engine bounds by 2^62 - 1, and every
# sum stays within the bounds the engine checked before the order could rest or trade.
# overflowcheck (the directive line atop settle.py: a .pxd cannot set it): were that ever wrong,
# an OverflowError, never a silently wrapped number.

cimport cython
from .accounts cimport Account, Holding
from .book cimport Order

cdef class Settlement:
    cdef public list events

    @cython.locals(h=Holding, acct=Account, lots="long long")
    cpdef opened(self, Order o)
    @cython.locals(h=Holding)
    cpdef closed(self, Order o, long long lots)
    cpdef reduced(self, Order o, long long lots)
    @cython.locals(acct=Account)
    cpdef expired(self, Order o, object ev)
    @cython.locals(acct=Account)
    cpdef _expose(self, Holding h, Order o, long long lots)
    @cython.locals(events=list, th=Holding, t_acct=Account, t_origin=tuple, buy=bint,
                   i=Py_ssize_t, m=Order, mh=Holding, m_acct=Account, q="long long",
                   cash="long long")
    cpdef matched(self, Order taker, Py_ssize_t start, list makers, bint taker_cancelled)
