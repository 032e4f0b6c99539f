/* SPDX-License-Identifier: Apache-2.0 */
/*
 * seedgen.c - writes the seed corpus of the proto/ fuzz harnesses.
 *
 * Usage: seedgen DIR. Creates DIR/frame, DIR/handshake and DIR/term and fills
 * them with small valid inputs (see each harness for the mode byte). Output is
 * deterministic (fixed keys and clock from fuzz_common.h), so re-running it
 * over the committed corpus changes nothing unless the protocol changed.
 */
#include "proto/err.h"
#include "proto/frame.h"
#include "proto/frame_int.h"
#include "proto/fuzz/fuzz_common.h"
#include "proto/handshake.h"
#include "proto/handshake_int.h"
#include "proto/record.h"
#include "proto/term.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *root;

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "seedgen: %s\n", what);
    exit(1);
}

/* Write DIR/sub/name = mode byte (if >= 0) followed by a[0..an) and b[0..bn). */
static void put(const char *sub, const char *name, int mode, const void *a, size_t an,
                const void *b, size_t bn)
{
    char path[4096];
    FILE *f;
    unsigned char m = (unsigned char)mode;

    snprintf(path, sizeof(path), "%s/%s", root, sub);
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        die("mkdir");
    }
    snprintf(path, sizeof(path), "%s/%s/%s", root, sub, name);
    if ((f = fopen(path, "wb")) == NULL) {
        die("fopen");
    }
    if ((mode >= 0 && fwrite(&m, 1, 1, f) != 1) || (an && fwrite(a, 1, an, f) != an) ||
        (bn && fwrite(b, 1, bn, f) != bn) || fclose(f) != 0) {
        die("write");
    }
}

static msgpack_sbuffer pid_bytes(int type, uint64_t id)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (gr_term_pack_id(&pk, type, FUZZ_NAME_I, strlen(FUZZ_NAME_I), 1, id) != 0) {
        die("pack id");
    }
    return sb;
}

static void add(gr_batch *b, Girder__Frame *f)
{
    if (gr_batch_add(b, f) != 0) {
        die("batch add");
    }
}

/* One frame of every kind. */
static void fill_batch(gr_batch *b, msgpack_sbuffer *pid, msgpack_sbuffer *ref)
{
    Girder__Frame f = GIRDER__FRAME__INIT;
    Girder__Heartbeat hb = GIRDER__HEARTBEAT__INIT;
    Girder__Member m = GIRDER__MEMBER__INIT, *mp = &m;
    Girder__MemberList ml = GIRDER__MEMBER_LIST__INIT;
    Girder__Join j = GIRDER__JOIN__INIT;
    Girder__Leave l = GIRDER__LEAVE__INIT;
    Girder__RpcRequest rq = GIRDER__RPC_REQUEST__INIT;
    Girder__RpcReply rp = GIRDER__RPC_REPLY__INIT;
    Girder__Signal s = GIRDER__SIGNAL__INIT;
    Girder__Fragment fr = GIRDER__FRAGMENT__INIT;

    hb.seq = 5;
    hb.time_ms = FUZZ_TIME;
    f.msg_case = GIRDER__FRAME__MSG_HEARTBEAT;
    f.heartbeat = &hb;
    add(b, &f);
    m.name = FUZZ_NAME_R;
    m.host = "127.0.0.1";
    m.port = 4370;
    m.incarnation = 2;
    m.state = GIRDER__MEMBER_STATE__SUSPECT;
    ml.n_members = 1;
    ml.members = &mp;
    ml.full = 1;
    f.msg_case = GIRDER__FRAME__MSG_MEMBERS;
    f.members = &ml;
    add(b, &f);
    j.member = &m;
    f.msg_case = GIRDER__FRAME__MSG_JOIN;
    f.join = &j;
    add(b, &f);
    l.name = FUZZ_NAME_R;
    f.msg_case = GIRDER__FRAME__MSG_LEAVE;
    f.leave = &l;
    add(b, &f);
    rq.ref = 9;
    rq.module = "system";
    rq.function = "ping";
    rq.args.data = (uint8_t *)"\x91\xa2hi";
    rq.args.len = 4;
    rq.deadline_ms = 5000;
    f.msg_case = GIRDER__FRAME__MSG_RPC_REQUEST;
    f.rpc_request = &rq;
    add(b, &f);
    rp.ref = 9;
    rp.status = GR_EBADFUNC;
    rp.reason = "undef_function";
    f.msg_case = GIRDER__FRAME__MSG_RPC_REPLY;
    f.rpc_reply = &rp;
    add(b, &f);
    s.kind = GIRDER__SIGNAL_KIND__MONITOR;
    s.from.data = (uint8_t *)pid->data;
    s.from.len = pid->size;
    s.to = s.from;
    s.ref.data = (uint8_t *)ref->data;
    s.ref.len = ref->size;
    s.payload.data = (uint8_t *)"\x82\xa1k\x01\xa1v\x90";
    s.payload.len = 7;
    f.msg_case = GIRDER__FRAME__MSG_SIGNAL;
    f.signal = &s;
    add(b, &f);
    fr.id = 1;
    fr.offset = 0;
    fr.total = 3;
    fr.chunk.data = (uint8_t *)"abc";
    fr.chunk.len = 3;
    f.msg_case = GIRDER__FRAME__MSG_FRAGMENT;
    f.fragment = &fr;
    add(b, &f);
}

static void frame_seeds(void)
{
    msgpack_sbuffer pid = pid_bytes(GR_TERM_EXT_PID, 0x100), ref = pid_bytes(GR_TERM_EXT_REF, 7);
    gr_record_tx *tx;
    gr_batch *b;
    const uint8_t *rec;
    size_t rlen;

    if (gr_record_tx_new(GR_CIPHER_CHACHA20_POLY1305, FUZZ_KEY, &tx) != 0 ||
        gr_batch_new(&FUZZ_LIMITS, &b) != 0) {
        die("alloc");
    }
    fill_batch(b, &pid, &ref);
    put("frame", "plain-all-kinds", 0xff, b->buf + GR_RECORD_HDR, b->len, NULL, 0);
    if (gr_record_seal(tx, b, &rec, &rlen) != 0) {
        die("seal");
    }
    put("frame", "record-all-kinds", 0x0e, rec, rlen, NULL, 0);
    put("frame", "record-bytewise", 0x00, rec, rlen, NULL, 0);
    put("frame", "record-oversized", 0x00, "\x00\x01\x00\x01", 4, NULL, 0);
    gr_batch_free(b);
    gr_record_tx_free(tx);
    msgpack_sbuffer_destroy(&pid);
    msgpack_sbuffer_destroy(&ref);
}

/* Move all of from's output into to; keep a copy in buf. Returns bytes. */
static size_t step(gr_handshake *from, gr_handshake *to, uint8_t *buf)
{
    const uint8_t *out;
    size_t n = gr_handshake_output(from, &out), off = 0, used;

    memcpy(buf, out, n);
    while (off < n) {
        if (gr_handshake_feed(to, buf + off, n - off, &used) < 0) {
            die("handshake");
        }
        off += used;
    }
    return n;
}

static void handshake_seeds(void)
{
    gr_cookie c = fuzz_cookie();
    gr_handshake_config ci = {.name = FUZZ_NAME_I, .cookie = &c, .limits = FUZZ_LIMITS};
    gr_handshake_config cr = {.name = FUZZ_NAME_R, .cookie = &c, .limits = FUZZ_LIMITS};
    gr_handshake *i, *r;
    uint8_t m[4][1100];
    size_t n[4];

    if (gr_handshake_new_fixed(&ci, GR_HANDSHAKE_INITIATOR, FUZZ_SK_I, FUZZ_TIME, &i) != 0 ||
        gr_handshake_new_fixed(&cr, GR_HANDSHAKE_RESPONDER, FUZZ_SK_R, FUZZ_TIME, &r) != 0) {
        die("handshake new");
    }
    n[0] = step(i, r, m[0]);
    n[1] = step(r, i, m[1]);
    n[2] = step(i, r, m[2]);
    n[3] = step(r, i, m[3]);
    /* mode: bit 0 = initiator, chunk = (mode >> 1) + 1 */
    put("handshake", "responder-full", 0xfe, m[0], n[0], m[2], n[2]);
    put("handshake", "responder-bytewise", 0x00, m[0], n[0], m[2], n[2]);
    put("handshake", "initiator-full", 0xff, m[1], n[1], m[3], n[3]);
    put("handshake", "responder-hello", 0x10, m[0], n[0], NULL, 0);
    put("handshake", "oversized", 0xfe, "\x00\x00\x04\x01", 4, NULL, 0);
    gr_handshake_free(i);
    gr_handshake_free(r);
}

static void term_seeds(void)
{
    msgpack_sbuffer sb = pid_bytes(GR_TERM_EXT_PID, 0x1234);
    msgpack_packer pk;
    unsigned char deep[40];

    put("term", "pid", -1, sb.data, sb.size, NULL, 0);
    msgpack_sbuffer_clear(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "list", 4);
    msgpack_pack_array(&pk, 5);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_int64(&pk, -1234567);
    msgpack_pack_double(&pk, 0.25);
    msgpack_pack_bin_with_body(&pk, "\x00\xff", 2);
    msgpack_pack_str_with_body(&pk, "ref", 3);
    if (gr_term_pack_id(&pk, GR_TERM_EXT_REF, "a@b", 3, 9, 99) != 0) {
        die("pack");
    }
    put("term", "map", -1, sb.data, sb.size, NULL, 0);
    memset(deep, 0x91, 32);
    deep[32] = 0xc0;
    put("term", "deep", -1, deep, 33, NULL, 0);
    msgpack_sbuffer_destroy(&sb);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seedgen DIR\n");
        return 2;
    }
    root = argv[1];
    if (mkdir(root, 0755) < 0 && errno != EEXIST) {
        die("mkdir root");
    }
    frame_seeds();
    handshake_seeds();
    term_seeds();
    return 0;
}
