/* md_book.c - keep one symbol's L2 book from the zex market-data feed.
 *
 * Written from protocol/SPEC.md section 12 (with sections 2 and 3) alone,
 * to show that a subscriber needs only libzmq and msgpack-c:
 *
 *   md_book --feed EP --snapshot EP --symbol SYM --seconds S
 *
 * It subscribes to md.<SYM>.l2, buffers updates, asks the snapshot service
 * for the book (12.5), applies the newer updates, and resynchronises from a
 * new snapshot on a sequence gap (12.3). At exit it prints one JSON line
 *   {"symbol":..,"seq":n,"bids":[["price","qty",orders],..],"asks":[..],
 *    "gaps":n,"resyncs":n}
 * (bids highest first, asks lowest first) and exits 0 if it is in sync.
 * "gaps" counts sequence gaps seen; "resyncs" counts in-sync books that a
 * gap made it throw away and rebuild from a snapshot.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#define MAXDEC 32            /* longest decimal string on the wire (3.1) */
#define JOIN_WAIT_MS 3000    /* request anyway if the topic is silent this long */
#define SNAP_TIMEOUT_MS 2000 /* re-request (new DEALER) if no reply this long */

/* ---------------------------------------------------------------- numbers */
/* A decimal string (3.1) parsed for ORDERING only: integer part and the
 * fraction scaled to 18 digits, both exact in int64. We print the string. */
typedef struct { int64_t ip, fr; } deckey;

static int dec_parse(const char *s, size_t n, deckey *k) {
    size_t i = 0, d = 0;
    int64_t ip = 0, fr = 0;
    if (n == 0 || n > MAXDEC) return -1;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, d++) ip = ip * 10 + (s[i] - '0');
    if (d == 0 || d > 18) return -1;
    if (i < n) {
        if (s[i++] != '.') return -1;
        for (d = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++, d++) fr = fr * 10 + (s[i] - '0');
        if (d == 0 || d > 18 || i != n) return -1;
        for (; d < 18; d++) fr *= 10;
    }
    k->ip = ip; k->fr = fr;
    return 0;
}
static int key_cmp(deckey a, deckey b) {
    if (a.ip != b.ip) return a.ip < b.ip ? -1 : 1;
    return a.fr < b.fr ? -1 : a.fr > b.fr;
}

/* ---------------------------------------------------------------- the book */
typedef struct { deckey key; char price[MAXDEC + 1], qty[MAXDEC + 1]; uint64_t orders; } level;
typedef struct { level *v; size_t n, cap; } side_t; /* kept sorted, lowest price first */

static size_t side_find(const side_t *s, deckey k, int *found) { /* binary search */
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (key_cmp(s->v[mid].key, k) < 0) lo = mid + 1; else hi = mid;
    }
    *found = lo < s->n && key_cmp(s->v[lo].key, k) == 0;
    return lo;
}
static void side_set(side_t *s, const level *lv) {
    int found;
    size_t i = side_find(s, lv->key, &found);
    if (!found) {
        if (s->n == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 64;
            if (!(s->v = realloc(s->v, s->cap * sizeof *s->v))) { perror("realloc"); exit(2); }
        }
        memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
        s->n++;
    }
    s->v[i] = *lv;
}
static void side_del(side_t *s, deckey k) {
    int found;
    size_t i = side_find(s, k, &found);
    if (found) memmove(&s->v[i], &s->v[i + 1], (--s->n - i) * sizeof *s->v);
}

/* -------------------------------------------------------- msgpack helpers */
static const msgpack_object *get(const msgpack_object *m, const char *key) {
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->via.str.size == kl && memcmp(k->via.str.ptr, key, kl) == 0) return &m->via.map.ptr[i].val;
    }
    return NULL;
}
/* A map whose keys are all str (2.1): call before get() on any map. */
static int is_map(const msgpack_object *m) {
    if (m->type != MSGPACK_OBJECT_MAP) return 0;
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (m->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR) return 0;
    return 1;
}
static int get_str(const msgpack_object *m, const char *key, const char **p, size_t *n) {
    const msgpack_object *o = get(m, key);
    if (!o || o->type != MSGPACK_OBJECT_STR) return -1;
    *p = o->via.str.ptr; *n = o->via.str.size;
    return 0;
}
static int get_u64(const msgpack_object *m, const char *key, uint64_t *v) { /* 0..2^63-1 */
    const msgpack_object *o = get(m, key);
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > INT64_MAX) return -1;
    *v = o->via.u64;
    return 0;
}
static int str_is(const msgpack_object *m, const char *key, const char *want) {
    const char *p; size_t n;
    return get_str(m, key, &p, &n) == 0 && n == strlen(want) && memcmp(p, want, n) == 0;
}
static int get_array(const msgpack_object *m, const char *key, const msgpack_object_array **a) {
    const msgpack_object *o = get(m, key);
    if (!o || o->type != MSGPACK_OBJECT_ARRAY) return -1;
    *a = &o->via.array;
    return 0;
}
/* Decode one frame as one map (nothing may follow it) with v absent or 1. */
static int decode(msgpack_unpacked *u, const char *data, size_t len) {
    size_t off = 0;
    uint64_t v = 1;
    if (msgpack_unpack_next(u, data, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len) return -1;
    if (!is_map(&u->data)) return -1;
    if (get(&u->data, "v") && (get_u64(&u->data, "v", &v) || v != 1)) return -1;
    return 0;
}
/* A level map {price, qty, orders} of an l2 change or a snapshot side. */
static int parse_level(const msgpack_object *m, level *lv) {
    const char *p, *q; size_t pn, qn; deckey qk;
    if (!is_map(m) || get_str(m, "price", &p, &pn) || get_str(m, "qty", &q, &qn) ||
        get_u64(m, "orders", &lv->orders) || dec_parse(p, pn, &lv->key) || dec_parse(q, qn, &qk))
        return -1;
    memcpy(lv->price, p, pn); lv->price[pn] = 0;
    memcpy(lv->qty, q, qn); lv->qty[qn] = 0;
    return 0;
}
static int qty_is_zero(const char *q) { for (; *q; q++) if (*q != '0' && *q != '.') return 0; return 1; }

/* ------------------------------------------------------------------ state */
enum { JOINING, WAITING, LIVE };       /* before the first message / snapshot asked / in sync */
typedef struct { char *data; size_t len; uint64_t seq; } update; /* a buffered l2 frame */

static struct {
    const char *symbol;
    char topic[64];
    side_t side[2];                    /* 0 = bids, 1 = asks */
    int phase;
    uint64_t B;                        /* the book's seq */
    int have_next; uint64_t next;      /* the seq the topic's next message should carry */
    update *buf; size_t nbuf, capbuf;  /* updates kept while waiting for a snapshot */
    int have_F; uint64_t F;            /* first seq the buffer is sure to hold from */
    void *ctx, *dealer;
    const char *snap_ep;
    char req_id[40]; int nreq; int64_t req_deadline;
    int gaps, resyncs, loads, live_applied;
} st;

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }
static int64_t now_ms(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Validate (apply == 0) or apply (apply == 1) the changes of an l2 map (12.4.3). */
static int l2_changes(const msgpack_object *m, int apply) {
    const msgpack_object_array *ch;
    if (get_array(m, "changes", &ch)) return -1;
    for (uint32_t i = 0; i < ch->size; i++) {
        const msgpack_object *c = &ch->ptr[i];
        level lv; int s;
        if (parse_level(c, &lv)) return -1;
        if (str_is(c, "side", "buy")) s = 0; else if (str_is(c, "side", "sell")) s = 1; else return -1;
        int del = str_is(c, "action", "delete");
        if (!del && !str_is(c, "action", "add") && !str_is(c, "action", "change")) return -1;
        if (!apply) continue;
        if (del || qty_is_zero(lv.qty)) side_del(&st.side[s], lv.key); else side_set(&st.side[s], &lv);
    }
    return 0;
}
static void apply_frame(const update *u) {   /* a buffered frame, validated on arrival */
    msgpack_unpacked mu; msgpack_unpacked_init(&mu);
    if (decode(&mu, u->data, u->len) == 0) l2_changes(&mu.data, 1);
    msgpack_unpacked_destroy(&mu);
    st.B = u->seq;
}
static void clear_buffer(void) {
    for (size_t i = 0; i < st.nbuf; i++) free(st.buf[i].data);
    st.nbuf = 0; st.have_F = 0;
}
static void buffer_push(const char *data, size_t len, uint64_t seq) {
    if (st.nbuf == st.capbuf) {
        st.capbuf = st.capbuf ? 2 * st.capbuf : 256;
        if (!(st.buf = realloc(st.buf, st.capbuf * sizeof *st.buf))) { perror("realloc"); exit(2); }
    }
    update *u = &st.buf[st.nbuf++];
    if (!(u->data = malloc(len))) { perror("malloc"); exit(2); }
    memcpy(u->data, data, len); u->len = len; u->seq = seq;
}

/* --------------------------------------------------------------- snapshot */
/* Send a snapshot_request (12.4.6) as one frame; with fresh != 0 on a new DEALER. */
static void request_snapshot(int fresh) {
    if (fresh || !st.dealer) {
        int linger = 0;
        if (st.dealer) zmq_close(st.dealer);
        st.dealer = zmq_socket(st.ctx, ZMQ_DEALER);
        zmq_setsockopt(st.dealer, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(st.dealer, st.snap_ep)) { fprintf(stderr, "connect %s: %s\n", st.snap_ep, zmq_strerror(errno)); exit(2); }
    }
    snprintf(st.req_id, sizeof st.req_id, "c-%d", ++st.nreq);
    msgpack_sbuffer sb; msgpack_packer pk;
    msgpack_sbuffer_init(&sb); msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const char *kv[][2] = {{"type", "snapshot_request"}, {"symbol", st.symbol}, {"channel", "l2"}, {"req_id", st.req_id}};
    msgpack_pack_map(&pk, 6);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 2; j++) { msgpack_pack_str(&pk, strlen(kv[i][j])); msgpack_pack_str_body(&pk, kv[i][j], strlen(kv[i][j])); }
    msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "v", 1); msgpack_pack_int(&pk, 1);
    msgpack_pack_str(&pk, 5); msgpack_pack_str_body(&pk, "depth", 5); msgpack_pack_int(&pk, 0);
    zmq_send(st.dealer, sb.data, sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
    st.phase = WAITING;
    st.req_deadline = now_ms() + SNAP_TIMEOUT_MS;
}

/* A reply on the DEALER (12.4.7, 12.4.9): 12.5 steps 4 to 6. */
static void on_reply(const char *data, size_t len) {
    msgpack_unpacked mu; msgpack_unpacked_init(&mu);
    const msgpack_object *m = &mu.data;
    const msgpack_object_array *sides[2];
    uint64_t S, code = 0;
    side_t fresh[2] = {{0}};
    if (decode(&mu, data, len) || st.phase != WAITING || !str_is(m, "req_id", st.req_id)) goto out;
    if (str_is(m, "type", "snapshot_reject")) {
        get_u64(m, "code", &code);
        fprintf(stderr, "md_book: snapshot_reject code %" PRIu64 "\n", code);
        if (code == 200) { fprintf(stderr, "md_book: unknown symbol %s\n", st.symbol); exit(2); }
        goto out; /* the request timeout asks again */
    }
    if (!str_is(m, "type", "snapshot") || !str_is(m, "symbol", st.symbol) || get_u64(m, "seq", &S) ||
        get_array(m, "bids", &sides[0]) || get_array(m, "asks", &sides[1]))
        goto out;
    for (int s = 0; s < 2; s++)
        for (uint32_t i = 0; i < sides[s]->size; i++) {
            level lv;
            if (parse_level(&sides[s]->ptr[i], &lv)) { fprintf(stderr, "md_book: bad snapshot level\n"); goto out_free; }
            side_set(&fresh[s], &lv);
        }
    if (st.have_F && S + 1 < st.F) { /* step 5: older than the buffer; ask again, keep buffer */
        request_snapshot(0);
        goto out_free;
    }
    for (int s = 0; s < 2; s++) { free(st.side[s].v); st.side[s] = fresh[s]; fresh[s].v = NULL; }
    st.B = S;                          /* step 6: load, then catch up */
    for (size_t i = 0; i < st.nbuf; i++)
        if (st.buf[i].seq > st.B) apply_frame(&st.buf[i]);
    fprintf(stderr, "md_book: in sync at seq %" PRIu64 " (snapshot seq %" PRIu64 ", %zu buffered)\n", st.B, S, st.nbuf);
    clear_buffer();
    st.phase = LIVE;
    st.loads++;
out_free:
    free(fresh[0].v); free(fresh[1].v);
out:
    msgpack_unpacked_destroy(&mu);
}

/* -------------------------------------------------------------------- feed */
/* One feed message (topic + map): 12.3 item 4 and 12.5 steps 1, 2 and 7. */
static void on_feed(const char *topic, size_t tlen, const char *data, size_t len) {
    msgpack_unpacked mu; msgpack_unpacked_init(&mu);
    const msgpack_object *m = &mu.data;
    uint64_t seq = 0;
    int is_update;
    if (tlen != strlen(st.topic) || memcmp(topic, st.topic, tlen) || decode(&mu, data, len) ||
        !str_is(m, "symbol", st.symbol))
        goto out;
    if (str_is(m, "type", "l2")) {
        if (get_u64(m, "seq", &seq) || l2_changes(m, 0)) goto out;
        is_update = 1;
    } else if (str_is(m, "type", "md_heartbeat")) {
        if (!str_is(m, "channel", "l2") || get_u64(m, "next_seq", &seq)) goto out;
        is_update = 0;
    } else goto out;                   /* another type: ignored (10.3) */

    /* The topic's own sequence, and (in sync) the book's. */
    int gap = st.have_next && seq != st.next;
    if (st.phase == LIVE && seq > st.B + 1) gap = 1;
    st.have_next = 1;
    st.next = is_update ? seq + 1 : seq;
    if (gap) {
        st.gaps++;
        clear_buffer();                /* the buffer starts again at this message */
        if (st.phase == LIVE) {        /* discard the book and resync */
            st.resyncs++;
            st.side[0].n = st.side[1].n = 0;
            request_snapshot(0);
        }
    }
    if (st.phase == LIVE) {            /* step 7 */
        if (is_update && seq == st.B + 1) {
            l2_changes(m, 1);
            st.B = seq;
            st.live_applied++;
        }                              /* seq <= B: the snapshot holds it */
        goto out;
    }
    if (!st.have_F && st.nbuf == 0) { st.have_F = 1; st.F = seq; } /* update seq or heartbeat next_seq */
    if (is_update) buffer_push(data, len, seq);
    if (st.phase == JOINING) request_snapshot(0); /* step 2: the subscription is in effect */
out:
    msgpack_unpacked_destroy(&mu);
}

/* ------------------------------------------------------------------ output */
static void print_side(const side_t *s, int best_high) {
    printf("[");
    for (size_t i = 0; i < s->n; i++) {
        const level *lv = &s->v[best_high ? s->n - 1 - i : i];
        printf("%s[\"%s\",\"%s\",%" PRIu64 "]", i ? "," : "", lv->price, lv->qty, lv->orders);
    }
    printf("]");
}

/* Receive one whole ZeroMQ message; returns its frame count (0 if none). */
static int recv_msg(void *sock, zmq_msg_t *f, int max) {
    int n = 0, more = 1;
    size_t ml = sizeof more;
    while (more) {
        zmq_msg_t *dst = n < max ? &f[n] : &f[max];
        if (zmq_msg_recv(dst, sock, n ? 0 : ZMQ_DONTWAIT) < 0) return 0;
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
        n++;
    }
    return n;
}

int main(int argc, char **argv) {
    const char *feed = NULL;
    double seconds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--feed")) feed = argv[i + 1];
        else if (!strcmp(argv[i], "--snapshot")) st.snap_ep = argv[i + 1];
        else if (!strcmp(argv[i], "--symbol")) st.symbol = argv[i + 1];
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else break;
    }
    if (!feed || !st.snap_ep || !st.symbol || strlen(st.symbol) > 16 || strpbrk(st.symbol, "\"\\")) {
        fprintf(stderr, "usage: md_book --feed EP --snapshot EP --symbol SYM --seconds S\n");
        return 2;
    }
    signal(SIGINT, on_signal); signal(SIGTERM, on_signal);
    snprintf(st.topic, sizeof st.topic, "md.%s.l2", st.symbol);
    st.ctx = zmq_ctx_new();
    void *sub = zmq_socket(st.ctx, ZMQ_SUB);
    int hwm = 1000000, linger = 0;
    zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, st.topic, strlen(st.topic));
    if (zmq_connect(sub, feed)) { fprintf(stderr, "connect %s: %s\n", feed, zmq_strerror(errno)); return 2; }

    int64_t start = now_ms(), end = start + (int64_t)(seconds * 1000);
    zmq_msg_t f[3];
    for (int i = 0; i < 3; i++) zmq_msg_init(&f[i]);
    while (!stop) {
        int64_t t = now_ms(), wake = end;
        if (t >= end) break;
        if (st.phase == JOINING && t >= start + JOIN_WAIT_MS) request_snapshot(0);
        if (st.phase == WAITING && t >= st.req_deadline) request_snapshot(1); /* no reply: new DEALER */
        if (st.phase == JOINING && start + JOIN_WAIT_MS < wake) wake = start + JOIN_WAIT_MS;
        if (st.phase == WAITING && st.req_deadline < wake) wake = st.req_deadline;
        if (wake > t + 100) wake = t + 100; /* bounded, so a signal is never missed for long */
        zmq_pollitem_t items[2] = {{sub, 0, ZMQ_POLLIN, 0}, {st.dealer, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, st.dealer ? 2 : 1, wake > t ? wake - t : 0) < 0 && errno != EINTR) break;
        int n;
        while ((n = recv_msg(sub, f, 2)) > 0)   /* drain the feed; ignore non-2-frame messages */
            if (n == 2) on_feed(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), zmq_msg_data(&f[1]), zmq_msg_size(&f[1]));
        while (st.dealer && (n = recv_msg(st.dealer, f, 1)) > 0)
            if (n == 1) on_reply(zmq_msg_data(&f[0]), zmq_msg_size(&f[0]));
    }

    printf("{\"symbol\":\"%s\",\"seq\":%" PRIu64 ",\"bids\":", st.symbol, st.B);
    print_side(&st.side[0], 1);
    printf(",\"asks\":");
    print_side(&st.side[1], 0);
    printf(",\"gaps\":%d,\"resyncs\":%d}\n", st.gaps, st.resyncs);
    fflush(stdout);
    for (int i = 0; i < 3; i++) zmq_msg_close(&f[i]);
    if (st.dealer) zmq_close(st.dealer);
    zmq_close(sub);
    zmq_ctx_term(st.ctx);
    fprintf(stderr, "md_book: %s at exit; book seq %" PRIu64 ", %d snapshot(s) loaded, %d live update(s) applied\n",
            st.phase == LIVE ? "in sync" : "NOT in sync", st.B, st.loads, st.live_applied);
    return st.phase == LIVE ? 0 : 1;
}
