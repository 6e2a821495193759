# Cython declarations for engine.py (Cython pure Python mode; see setup.py).

cimport cython
from .accounts cimport Account, Holding
from .book cimport Book, Order
from .settle cimport Settlement

cdef class Engine:
    # Objects, not C ints: a command's seq and an order's id are each made once and shared by
    # every event (and map key) that names them.
    cdef public object seq, next_order_id
    cdef public object digest_every
    cdef public dict cash_mult, answers, books, accounts, reject_counts, instruments
    cdef public object cash
    cdef public Settlement settle
    cdef public list events, reports
    cdef public object _digester

    cpdef Book add_symbol(self, object symbol)
    cpdef str _px(self, str symbol, object ticks)
    cpdef str _qty(self, str symbol, object lots)
    cpdef str _cash(self, object units)
    @cython.locals(room="long long", max_cash="long long", max_lots="long long")
    cpdef object _past_bounds(self, Account acct, Holding h, int side, long long lots, object cash)
    cpdef Account account(self, str name)
    cpdef process(self, object cmd)
    cpdef _reject(self, object cmd, object seq, int ref, object reason, str text)
    @cython.locals(acct=Account, book=Book, o=Order, h=Holding, settle=Settlement, side=int,
                   max_cash="long long", max_lots="long long", lots="long long", past=bint,
                   tif=int, ord_type=int, limit=bint, crosses=bint, bounded=bint, done=bint,
                   account=str, cl_ord_id=str, symbol=str, key=tuple, origin=tuple, events=list,
                   start=Py_ssize_t)
    # Commands are unpacked with one msgspec astuple, a C copy of the Struct's slots: reading
    # the fields one by one costs this build a generic attribute lookup each (12 % in perf).
    cpdef _new_order(self, object cmd, object seq)
    cpdef _risk(self, Account acct, Holding h, int side, object price, object qty,
                object old_qty, object old_cash, bint rests)
    @cython.locals(acct=Account, origin=tuple)
    cpdef Account _session(self, str account, str cl_ord_id, object gw, object client)
    @cython.locals(o=Order)
    cpdef Order _lookup(self, object cmd, object seq, int ref, Account acct, str symbol,
                        object oid, str orig_cl_ord_id)
    @cython.locals(o=Order, acct=Account, account=str, cl_ord_id=str, symbol=str,
                   key=tuple, origin=tuple)
    cpdef _cancel(self, object cmd, object seq)
    cpdef _take_out(self, Book book, Order o, int reason, object seq, object ts, str req=*)
    cpdef _answer(self, Account acct, tuple origin, tuple key, Order o, object ev)
    @cython.locals(book=Book, o=Order, n=Order, acct=Account, h=Holding, settle=Settlement,
                   account=str, cl_ord_id=str, symbol=str, key=tuple, origin=tuple, events=list,
                   start=Py_ssize_t, done=bint)
    cpdef _replace(self, object cmd, object seq)
    @cython.locals(o=Order)
    cpdef int _cancel_all(self, Account acct, int reason, object seq, object ts,
                          object origin=*) except -1
    cpdef _mass_cancel(self, object cmd, object seq)
    @cython.locals(operator=Account, target=Account)
    cpdef _kill_switch(self, object cmd, object seq)
    cpdef _limits(self, object cmd, object seq)
