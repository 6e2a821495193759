# Cython declarations for settle.py (Cython pure Python mode; see setup.py).
# An order's price and leaves are C ints (book.pxd) and lots and cash are Python ints:
# each product starts from a Python int (h.mult, lots, q), so it is made in Python ints
# and cannot overflow a C one.

cimport cython
from .accounts cimport Account, Holding
from .book cimport Order

cdef class Settlement:
    cdef public list events

    @cython.locals(h=Holding)
    cpdef opened(self, Order o)
    @cython.locals(h=Holding)
    cpdef closed(self, Order o, object lots)
    cpdef reduced(self, Order o, object lots)
    @cython.locals(acct=Account)
    cpdef expired(self, Order o, object ev)
    @cython.locals(acct=Account)
    cpdef _expose(self, Holding h, Order o, object lots)
    @cython.locals(events=list, th=Holding, t_acct=Account, t_origin=tuple, buy=bint,
                   i=Py_ssize_t, m=Order, mh=Holding, m_acct=Account, q=object, cash=object)
    cpdef matched(self, Order taker, Py_ssize_t start, list makers, bint taker_cancelled)
