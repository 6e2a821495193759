# Cython declarations for book.py (Cython pure Python mode; see setup.py).
# Quantities and prices of one order are C integers: the engine refuses any above
# engine.MAX_LOTS / MAX_TICKS (2^62 - 1) before an Order is made. Sums (a level's qty) stay
# Python ints. The book cimports nothing of the accounts: an order's owner is an object.

cimport cython

# The module's int constants as C ints: the matching loop compares against them per order.
cdef int BUY, SELL, FOK, MARKET, STP_NONE, STP_CANCEL_NEWEST, STP_CANCEL_OLDEST
cdef int CXL_STP, EXP_FOK, EXP_MARKET, EXP_IOC
cdef long long NO_BID, NO_ASK

cdef class Order:
    # order_id is an object: the one int its account's orders map holds as key and every event
    # names, instead of a new int made from a C one at each.
    cdef public object order_id
    cdef public long long price, qty, leaves, filled, cancelled
    # opaque to the book: compared by identity (self-trade prevention), never read
    cdef public object owner
    cdef public str account, cl_ord_id, symbol
    cdef public int side, stp
    cdef public bint post_only, live
    cdef public tuple origin
    cdef public object enc

cdef class Level:
    cdef public long long price
    cdef public object orders
    cdef public object qty
    cdef public long long count

cdef class Book:
    cdef public str symbol
    cdef public dict bids, asks
    cdef public object bid_prices, ask_prices
    cdef public long long best_bid_px, best_ask_px, next_trade_id, resting
    cdef public list events, fresh, makers

    @cython.locals(level=Level, o=Order, out=list)
    cpdef list orders_in_priority(self, int side)
    @cython.locals(o=Order, out=list)
    cpdef list encoded_in_priority(self, int side)
    # in the book, not in state.py, so that the compiled build reads an order's fields as C fields
    @cython.locals(o=Order, fresh=list, take=list, done="long long")
    cpdef long long encode_fresh(self, object encode, long long budget) except -1
    cpdef long long highest_ask(self) except -1
    cpdef bint would_cross(self, int side, long long price)
    @cython.locals(level=Level)
    cpdef rest(self, Order o)
    @cython.locals(fresh=list, keep=list, seen=set, x=Order)
    cdef _changed(self, Order o)
    @cython.locals(level=Level)
    cpdef unrest(self, Order o)
    cpdef _drop_level(self, int side, long long price)
    cpdef reduce(self, Order o, object by)
    @cython.locals(q="long long")
    cpdef cancel(self, Order o, int reason, object seq, object ts, str req=*)
    @cython.locals(m=Order, need=object, buy=bint, stp=int, owner=object)
    cpdef bint fillable(self, Order taker, bint limit)
    @cython.locals(level=Level, m=Order, best="long long", q="long long", buy=bint,
                   t_price="long long", tid="long long", stp=int, maker_side=int,
                   owner=object, t_account=str, symbol=str, events=list, makers=list)
    cpdef bint match(self, Order taker, bint limit, object seq, object ts) except -1
    cpdef _cancel_resting(self, Order m, Level level, int reason, object seq, object ts)
    cpdef _cancel_taker(self, Order t, object seq, object ts)
    cpdef expire(self, Order t, int tif, int ord_type, object seq, object ts)
