/* SPDX-License-Identifier: Apache-2.0 */
/*
 * msg.c - messages (immutable, reference-counted encoded terms) and signals.
 *
 * A girder_msg is one allocation: a header and the encoded bytes. A local send
 * shares it by reference; a remote send frames the same bytes. The refcount is
 * the only mutable field, so a message may be read from any thread.
 *
 * Also here: building messages (gr_pack_*), pids and refs inside terms
 * (encoded with node names, so a term means the same on every node), and
 * signals. These are the runtime's lowest layer: they use only the node-name
 * table of rt.c, and every other file of daemon/runtime/ may call them.
 */
#include "runtime/rt_int.h"

#include "proto/err.h"
#include "proto/term.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

girder_msg *gr_msg_alloc(size_t len)
{
    girder_msg *m;

    if (len == 0 || len > UINT32_MAX) {
        return NULL;
    }
    m = malloc(sizeof(*m) + len);
    if (m == NULL) {
        return NULL;
    }
    atomic_init(&m->refs, 1);
    m->len = (uint32_t)len;
    return m;
}

/* Where the signal of a gr_rt_msg_alloc_once message of len bytes starts. */
static size_t once_sig_off(size_t len)
{
    size_t a = _Alignof(gr_sig);

    return (offsetof(girder_msg, data) + len + a - 1) / a * a;
}

girder_msg *gr_rt_msg_alloc_once(size_t len, uint8_t **ret_data)
{
    girder_msg *m;

    if (len == 0 || len > UINT32_MAX) {
        return NULL;
    }
    if ((m = malloc(once_sig_off(len) + sizeof(gr_sig))) == NULL) {
        return NULL;
    }
    atomic_init(&m->refs, 1);
    m->len = (uint32_t)len;
    *ret_data = m->data;
    return m;
}

/* ---- tallies ------------------------------------------------------------------------ */

struct gr_rt_tally {
    atomic_uint_fast64_t refs;       /* the owner's + its credits + tallied messages alive */
    atomic_uint_fast64_t done_bytes; /* bytes of the tallied messages released so far */
};

/* Where a tallied message keeps its tally: after its signal's room. */
static gr_rt_tally **tally_slot(girder_msg *m)
{
    return (gr_rt_tally **)((char *)m + once_sig_off(m->len) + sizeof(gr_sig));
}

gr_rt_tally *gr_rt_tally_new(void)
{
    gr_rt_tally *t = malloc(sizeof(*t));

    if (t != NULL) {
        atomic_init(&t->refs, 1);
        atomic_init(&t->done_bytes, 0);
    }
    return t;
}

void gr_rt_tally_hold(gr_rt_tally *t, uint64_t n)
{
    atomic_fetch_add_explicit(&t->refs, n, memory_order_relaxed);
}

void gr_rt_tally_release(gr_rt_tally *t, uint64_t n)
{
    if (t != NULL && n > 0 && atomic_fetch_sub_explicit(&t->refs, n, memory_order_acq_rel) == n) {
        free(t);
    }
}

uint64_t gr_rt_tally_refs(const gr_rt_tally *t)
{
    return atomic_load_explicit(&((gr_rt_tally *)t)->refs, memory_order_acquire);
}

uint64_t gr_rt_tally_done_bytes(const gr_rt_tally *t)
{
    return atomic_load_explicit(&((gr_rt_tally *)t)->done_bytes, memory_order_relaxed);
}

girder_msg *gr_rt_msg_alloc_tallied(size_t len, gr_rt_tally *t, uint8_t **ret_data)
{
    girder_msg *m;

    if (len == 0 || len > UINT32_MAX || t == NULL) {
        return NULL;
    }
    if ((m = malloc(once_sig_off(len) + sizeof(gr_sig) + sizeof(t))) == NULL) {
        return NULL;
    }
    atomic_init(&m->refs, GR_MSG_TALLIED | 1u);
    m->len = (uint32_t)len;
    *tally_slot(m) = t;
    *ret_data = m->data;
    return m;
}

/* The last reference of a tallied message went: free it, then report it to
 * its tally (its bytes first: an owner that sees the reference gone sees
 * them too). */
static void tallied_free(girder_msg *m)
{
    gr_rt_tally *t = *tally_slot(m);
    uint32_t len = m->len;

    free(m);
    atomic_fetch_add_explicit(&t->done_bytes, len, memory_order_relaxed);
    gr_rt_tally_release(t, 1);
}

gr_sig *gr_sig_in_msg(girder_msg *m, girder_pid from, girder_pid to)
{
    gr_sig *s = (gr_sig *)((char *)m + once_sig_off(m->len));

    *s = (gr_sig){.type = GR_SIG_MSG, .inmsg = 1, .from = from, .to = to, .msg = m};
    return s;
}

girder_msg *gr_rt_msg_alloc(size_t len, uint8_t **ret_data)
{
    girder_msg *m = gr_msg_alloc(len);

    if (m != NULL) {
        *ret_data = m->data;
    }
    return m;
}

unsigned gr_rt_msg_refs(const girder_msg *m)
{
    return atomic_load_explicit(&((girder_msg *)m)->refs, memory_order_acquire) & ~GR_MSG_TALLIED;
}

girder_msg *girder_msg_new(const void *bytes, size_t len)
{
    girder_msg *m = gr_msg_alloc(len);

    if (m != NULL) {
        memcpy(m->data, bytes, len);
    }
    return m;
}

girder_msg *girder_msg_atom(const char *s)
{
    gr_pack p;
    size_t n = strlen(s);

    gr_pack_init(&p);
    msgpack_pack_str(&p.pk, n);
    msgpack_pack_str_body(&p.pk, s, n);
    return gr_pack_finish(&p);
}

girder_msg *girder_msg_from_object(const msgpack_object *o)
{
    gr_pack p;

    gr_pack_init(&p);
    if (msgpack_pack_object(&p.pk, *o) < 0) {
        msgpack_sbuffer_destroy(&p.sb);
        return NULL;
    }
    return gr_pack_finish(&p);
}

girder_msg *girder_msg_ref(girder_msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

girder_msg *girder_msg_unref(girder_msg *m)
{
    unsigned old;

    if (m == NULL) {
        return NULL;
    }
    old = atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
    if (old == 1) {
        free(m);
    } else if (old == (GR_MSG_TALLIED | 1u)) {
        tallied_free(m);
    }
    return NULL;
}

const void *girder_msg_data(const girder_msg *m)
{
    return m->data;
}

size_t girder_msg_size(const girder_msg *m)
{
    return m->len;
}

int girder_msg_unpack(const girder_msg *m, msgpack_unpacked *out)
{
    size_t off = 0;

    if (msgpack_unpack_next(out, (const char *)m->data, m->len, &off) != MSGPACK_UNPACK_SUCCESS) {
        return GR_EBADTERM;
    }
    return 0;
}

bool girder_msg_is_atom(const girder_msg *m, const char *s)
{
    size_t n = strlen(s);
    const unsigned char *d = m->data;

    if (n <= 31) {
        return m->len == n + 1 && d[0] == (0xa0 | n) && memcmp(d + 1, s, n) == 0;
    }
    if (n <= 255) {
        return m->len == n + 2 && d[0] == 0xd9 && d[1] == n && memcmp(d + 2, s, n) == 0;
    }
    return false;
}

/* ---- building messages ------------------------------------------------------------- */

void gr_pack_init(gr_pack *p)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

int gr_pack_raw(gr_pack *p, const girder_msg *m)
{
    if (m == NULL) {
        return msgpack_pack_nil(&p->pk) == 0 ? 0 : -ENOMEM;
    }
    return msgpack_sbuffer_write(&p->sb, (const char *)m->data, m->len) == 0 ? 0 : -ENOMEM;
}

girder_msg *gr_pack_finish(gr_pack *p)
{
    girder_msg *m = NULL;

    if (p->sb.size > 0) {
        m = girder_msg_new(p->sb.data, p->sb.size);
    }
    msgpack_sbuffer_destroy(&p->sb);
    return m;
}

/* ---- pids and refs in terms ---------------------------------------------------------- */

static int pack_id(girder_rt *rt, msgpack_packer *pk, int type, uint32_t node, uint32_t creation,
                   uint64_t id)
{
    size_t nlen;
    const char *name = gr_rt_node_at(rt, node, &nlen);

    if (name == NULL) {
        return -EINVAL;
    }
    return gr_term_pack_id(pk, type, name, nlen, creation, id);
}

int gr_pack_pid(girder_rt *rt, msgpack_packer *pk, girder_pid pid)
{
    return pack_id(rt, pk, GR_TERM_EXT_PID, pid.node, pid.creation, pid.id);
}

int gr_pack_ref(girder_rt *rt, msgpack_packer *pk, girder_ref ref)
{
    return pack_id(rt, pk, GR_TERM_EXT_REF, ref.node, ref.creation, ref.id);
}

int girder_pack_pid(girder_ctx *ctx, msgpack_packer *pk, girder_pid pid)
{
    return gr_pack_pid(gr_proc_of(ctx)->sched->rt, pk, pid);
}

int girder_pack_ref(girder_ctx *ctx, msgpack_packer *pk, girder_ref ref)
{
    return gr_pack_ref(gr_proc_of(ctx)->sched->rt, pk, ref);
}

static int get_id(girder_rt *rt, const msgpack_object *o, int type, girder_pid *ret)
{
    gr_term_id tid;
    uint32_t node;
    int r;

    if ((r = gr_term_parse_id(o, type, &tid)) < 0) {
        return r;
    }
    if ((r = gr_rt_node_intern(rt, tid.node, tid.node_len, &node)) < 0) {
        return r;
    }
    *ret = (girder_pid){node, tid.creation, tid.id};
    return 0;
}

int girder_get_pid(girder_ctx *ctx, const msgpack_object *o, girder_pid *ret_pid)
{
    return get_id(gr_proc_of(ctx)->sched->rt, o, GR_TERM_EXT_PID, ret_pid);
}

int girder_get_ref(girder_ctx *ctx, const msgpack_object *o, girder_ref *ret_ref)
{
    girder_pid p;
    int r = get_id(gr_proc_of(ctx)->sched->rt, o, GR_TERM_EXT_REF, &p);

    if (r == 0) {
        *ret_ref = gr_pid_as_ref(p);
    }
    return r;
}

/* ---- signals ------------------------------------------------------------------------ */

gr_sig *gr_sig_new(gr_sig_type type, girder_pid from, girder_pid to)
{
    gr_sig *s = malloc(sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->next = NULL;
    s->type = (uint8_t)type;
    s->flags = 0;
    s->inmsg = 0;
    s->from = from;
    s->to = to;
    s->ref = (girder_ref){0, 0, 0};
    s->msg = NULL;
    s->ptr = NULL;
    return s;
}

void gr_sig_free(gr_sig *s)
{
    if (s != NULL) {
        bool in = s->inmsg;

        girder_msg_unref(s->msg); /* may free s itself when in */
        if (!in) {
            free(s);
        }
    }
}
