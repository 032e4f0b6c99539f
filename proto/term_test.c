/* SPDX-License-Identifier: Apache-2.0 */
/*
 * term_test.c - unit tests of the term codec (term.h): pid/ref packing and
 * parsing, and the validator on good, truncated, too-deep and lying input.
 */
#include "proto/err.h"
#include "proto/term.h"

#include "testing/gr_test.h"
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Pack an id into a fresh sbuffer; the caller destroys it. */
static void pack_id(msgpack_sbuffer *sb, int type, const char *node, uint32_t cr, uint64_t id)
{
    msgpack_packer pk;

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_term_pack_id(&pk, type, node, strlen(node), cr, id), 0);
}

/* Does msgpack-c unpack buf[0..len) as exactly one object? */
static int msgpack_accepts(const void *buf, size_t len)
{
    msgpack_unpacked u;
    size_t off = 0;
    int ok;

    msgpack_unpacked_init(&u);
    ok = msgpack_unpack_next(&u, buf, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len;
    msgpack_unpacked_destroy(&u);
    return ok;
}

START_TEST(pid_roundtrip)
{
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    gr_term_id id;
    size_t off = 0;

    pack_id(&sb, GR_TERM_EXT_PID, "a@host", 7, 0x0102030405060708ull);
    ck_assert_int_eq(gr_term_validate(sb.data, sb.size), 0);
    msgpack_unpacked_init(&u);
    ck_assert_int_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(gr_term_parse_id(&u.data, GR_TERM_EXT_PID, &id), 0);
    ck_assert_uint_eq(id.node_len, 6);
    ck_assert(memcmp(id.node, "a@host", 6) == 0);
    ck_assert_uint_eq(id.creation, 7);
    ck_assert(id.id == 0x0102030405060708ull);
    /* a pid is not a ref */
    ck_assert_int_eq(gr_term_parse_id(&u.data, GR_TERM_EXT_REF, &id), GR_EBADTERM);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(decode_id_from_bytes)
{
    msgpack_sbuffer sb;
    gr_term_id id = {0};

    pack_id(&sb, GR_TERM_EXT_REF, "n@h", 1, 42);
    ck_assert_int_eq(gr_term_decode_id(sb.data, sb.size, GR_TERM_EXT_REF, &id), 0);
    ck_assert_uint_eq(id.node_len, 3);
    ck_assert(id.id == 42);
    ck_assert_int_eq(gr_term_decode_id(sb.data, sb.size, GR_TERM_EXT_PID, &id), GR_EBADTERM);
    /* trailing or missing bytes */
    ck_assert_int_eq(gr_term_decode_id(sb.data, sb.size - 1, GR_TERM_EXT_REF, &id), GR_EBADTERM);
    ck_assert_int_eq(gr_term_decode_id(sb.data, 0, GR_TERM_EXT_REF, &id), GR_EBADTERM);
    msgpack_sbuffer_destroy(&sb);
    /* not an ext at all */
    ck_assert_int_eq(gr_term_decode_id("\x01", 1, GR_TERM_EXT_REF, &id), GR_EBADTERM);
}
END_TEST

START_TEST(pack_id_bad_node)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char big[GR_TERM_NODE_MAX + 2];

    memset(big, 'x', sizeof(big));
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_term_pack_id(&pk, GR_TERM_EXT_PID, "", 0, 1, 1), -EINVAL);
    ck_assert_int_eq(gr_term_pack_id(&pk, GR_TERM_EXT_PID, big, sizeof(big), 1, 1), -EINVAL);
    ck_assert_int_eq(gr_term_pack_id(&pk, GR_TERM_EXT_PID, big, GR_TERM_NODE_MAX, 1, 1), 0);
    ck_assert_int_eq(gr_term_validate(sb.data, sb.size), 0);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(parse_id_malformed_payload)
{
    /* ext 1 with payload: node_len 5 but only 3 node bytes + 12 */
    unsigned char bad[] = {0xc7, 16, 1, 5, 'a', '@', 'b', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9};
    unsigned char zero_len[] = {0xc7, 14, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9};
    gr_term_id id;

    ck_assert_int_eq(gr_term_validate(bad, sizeof(bad)), GR_EBADTERM);
    ck_assert_int_eq(gr_term_decode_id(bad, sizeof(bad), GR_TERM_EXT_PID, &id), GR_EBADTERM);
    ck_assert_int_eq(gr_term_validate(zero_len, sizeof(zero_len)), GR_EBADTERM);
    ck_assert_int_eq(gr_term_parse_id(NULL, GR_TERM_EXT_PID, &id), GR_EBADTERM);
}
END_TEST

START_TEST(validate_scalars_and_containers)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_nil(&pk);
    msgpack_pack_true(&pk);
    msgpack_pack_double(&pk, 1.5);
    msgpack_pack_int64(&pk, -70000);
    msgpack_pack_bin_with_body(&pk, "\0\1", 2);
    msgpack_pack_uint64(&pk, UINT64_MAX);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_ext_with_body(&pk, "abcd", 4, 77); /* unknown ext: opaque */
    ck_assert_int_eq(gr_term_validate(sb.data, sb.size), 0);
    ck_assert(msgpack_accepts(sb.data, sb.size));
    /* trailing bytes: not one term */
    msgpack_pack_nil(&pk);
    ck_assert_int_eq(gr_term_validate(sb.data, sb.size), GR_EBADTERM);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(validate_truncated)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "hello world", 11);
    msgpack_pack_uint32(&pk, 0x12345678);
    ck_assert_int_eq(gr_term_pack_id(&pk, GR_TERM_EXT_PID, "n@h", 3, 1, 2), 0);
    ck_assert_int_eq(gr_term_validate(sb.data, sb.size), 0);
    /* every proper prefix is refused, by both the validator and msgpack-c */
    for (size_t n = 0; n < sb.size; n++) {
        ck_assert_int_eq(gr_term_validate(sb.data, n), GR_EBADTERM);
        ck_assert(!msgpack_accepts(sb.data, n));
    }
    ck_assert_int_eq(gr_term_validate(NULL, 0), GR_EBADTERM);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(next_finds_the_first_term)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t first, n = 7;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    ck_assert_int_eq(gr_term_pack_id(&pk, GR_TERM_EXT_PID, "n@h", 3, 1, 2), 0);
    msgpack_pack_bin_with_body(&pk, "\0\1\2", 3);
    first = sb.size;
    ck_assert_int_eq(gr_term_next(sb.data, sb.size, &n), 0);
    ck_assert_uint_eq(n, first);
    /* what follows is not looked at: another term, or garbage */
    msgpack_pack_str_with_body(&pk, "x", 1);
    ck_assert_int_eq(gr_term_next(sb.data, sb.size, &n), 0);
    ck_assert_uint_eq(n, first);
    ck_assert_int_eq(gr_term_validate(sb.data, sb.size), GR_EBADTERM);
    msgpack_sbuffer_write(&sb, "\xc1", 1);
    ck_assert_int_eq(gr_term_next(sb.data, sb.size, &n), 0);
    ck_assert_uint_eq(n, first);
    /* the pid alone, 1 byte in (after the array header), the bin after it */
    ck_assert_int_eq(gr_term_next(sb.data + 1, sb.size - 1, &n), 0);
    ck_assert_uint_eq(n, first - 1 - 5);
    /* a truncated first term is refused, *ret_len untouched */
    n = 7;
    for (size_t k = 0; k < first; k++) {
        ck_assert_int_eq(gr_term_next(sb.data, k, &n), GR_EBADTERM);
    }
    ck_assert_uint_eq(n, 7);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

/* depth nested arrays, the innermost holding `inner` (an empty array if 1). */
static size_t nest(unsigned char *buf, int depth, int empty_inner)
{
    size_t n = 0;

    for (int i = 0; i < depth; i++) {
        buf[n++] = 0x91; /* fixarray of 1 */
    }
    buf[n++] = empty_inner ? 0x90 : 0x01;
    return n;
}

START_TEST(validate_depth)
{
    unsigned char buf[GR_TERM_DEPTH_MAX + 8];
    size_t n;

    n = nest(buf, GR_TERM_DEPTH_MAX, 0);
    ck_assert_int_eq(gr_term_validate(buf, n), 0);
    ck_assert(msgpack_accepts(buf, n));
    n = nest(buf, GR_TERM_DEPTH_MAX + 1, 0);
    ck_assert_int_eq(gr_term_validate(buf, n), GR_EBADTERM);
    /* an empty container still counts: msgpack-c refuses it at this depth */
    n = nest(buf, GR_TERM_DEPTH_MAX, 1);
    ck_assert(!msgpack_accepts(buf, n));
    ck_assert_int_eq(gr_term_validate(buf, n), GR_EBADTERM);
    n = nest(buf, GR_TERM_DEPTH_MAX - 1, 1);
    ck_assert(msgpack_accepts(buf, n));
    ck_assert_int_eq(gr_term_validate(buf, n), 0);
    /* nested 3 levels deeper by a wrapper: 3 fewer of its own */
    n = nest(buf, GR_TERM_DEPTH_MAX - 3, 0);
    ck_assert_int_eq(gr_term_validate_nested(buf, n, 3), 0);
    ck_assert_int_eq(gr_term_validate_nested(buf, n, 4), GR_EBADTERM);
    n = nest(buf, GR_TERM_DEPTH_MAX - 3, 1); /* the empty innermost counts */
    ck_assert_int_eq(gr_term_validate_nested(buf, n, 3), GR_EBADTERM);
    ck_assert_int_eq(gr_term_validate_nested(buf, n, 2), 0);
    ck_assert_int_eq(gr_term_validate_nested(buf, n, GR_TERM_DEPTH_MAX + 1), GR_EBADTERM);
    ck_assert_int_eq(gr_term_validate_nested(buf, n, 0), gr_term_validate(buf, n));
}
END_TEST

START_TEST(validate_huge_declared_lengths)
{
    /* array32 / map32 / str32 / bin32 / ext32 claiming ~4G with a few bytes */
    static const unsigned char cases[][8] = {
        {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x01},
        {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01, 0x01},
        {0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c'},
        {0xc6, 0x7f, 0xff, 0xff, 0xff, 'a', 'b', 'c'},
        {0xc9, 0xff, 0xff, 0xff, 0xf0, 0x01, 'a', 'b'},
        {0xdc, 0x00, 0x08, 0x01, 0x01, 0x01, 0x01, 0x01}, /* array16 of 8, 5 present */
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_int_eq(gr_term_validate(cases[i], sizeof(cases[i])), GR_EBADTERM);
    }
}
END_TEST

START_TEST(validate_reserved_byte_and_short_headers)
{
    ck_assert_int_eq(gr_term_validate("\xc1", 1), GR_EBADTERM);
    ck_assert_int_eq(gr_term_validate("\xd9", 1), GR_EBADTERM);       /* str8, no length */
    ck_assert_int_eq(gr_term_validate("\xc7\x01", 2), GR_EBADTERM);   /* ext8, no type */
    ck_assert_int_eq(gr_term_validate("\xd4", 1), GR_EBADTERM);       /* fixext1, no type */
    ck_assert_int_eq(gr_term_validate("\xcb\0\0\0", 4), GR_EBADTERM); /* short double */
    ck_assert_int_eq(gr_term_validate("\xa0", 1), 0);                 /* "" */
}
END_TEST

START_TEST(is_str)
{
    msgpack_object o;

    o.type = MSGPACK_OBJECT_STR;
    o.via.str.ptr = "DOWN";
    o.via.str.size = 4;
    ck_assert(gr_term_is_str(&o, "DOWN"));
    ck_assert(!gr_term_is_str(&o, "DOW"));
    ck_assert(!gr_term_is_str(NULL, "DOWN"));
}
END_TEST

/* Unpack sb's one term into u (the caller destroys u). */
static const msgpack_object *unpack_one(msgpack_unpacked *u, const msgpack_sbuffer *sb)
{
    size_t off = 0;

    msgpack_unpacked_init(u);
    ck_assert_int_eq(msgpack_unpack_next(u, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, sb->size);
    return &u->data;
}

START_TEST(pack_cstr_and_kv_uint)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_term_pack_cstr(&pk, "ok"), 0);
    ck_assert_int_eq(gr_term_pack_cstr(&pk, ""), 0);
    ck_assert_int_eq(gr_term_pack_cstr(&pk, NULL), 0);
    ck_assert_uint_eq(sb.size, 5);
    ck_assert_mem_eq(sb.data, "\xa2ok\xa0\xc0", 5); /* "ok", "", nil */
    msgpack_sbuffer_clear(&sb);
    ck_assert_int_eq(gr_term_pack_kv_uint(&pk, "n", 300), 0);
    ck_assert_uint_eq(sb.size, 5);
    ck_assert_mem_eq(sb.data, "\xa1n\xcd\x01\x2c", 5); /* "n", 300 */
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(map_get)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    const msgpack_object *m;
    const msgpack_object *v;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    gr_term_pack_cstr(&pk, "a");
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_uint64(&pk, 7); /* a non-str key is skipped */
    msgpack_pack_uint64(&pk, 2);
    gr_term_pack_cstr(&pk, "b");
    gr_term_pack_cstr(&pk, "x");
    m = unpack_one(&u, &sb);
    v = gr_term_map_get(m, "a");
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(v->via.u64, 1);
    ck_assert(gr_term_is_str(gr_term_map_get(m, "b"), "x"));
    ck_assert_ptr_null(gr_term_map_get(m, "c"));
    ck_assert_ptr_null(gr_term_map_get(m, "ab"));
    ck_assert_ptr_null(gr_term_map_get(gr_term_map_get(m, "a"), "a")); /* not a map */
    ck_assert_ptr_null(gr_term_map_get(NULL, "a"));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(get_str)
{
    char buf[4] = "zzz";
    msgpack_object o;

    o.type = MSGPACK_OBJECT_STR;
    o.via.str.ptr = "abc";
    o.via.str.size = 3;
    ck_assert_int_eq(gr_term_get_str(&o, buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "abc");
    memcpy(buf, "zzz", 4);
    ck_assert_int_eq(gr_term_get_str(&o, buf, 3), GR_EBADARG); /* no room for the NUL */
    o.via.str.size = 0;
    ck_assert_int_eq(gr_term_get_str(&o, buf, sizeof(buf)), GR_EBADARG); /* empty */
    o.via.str.ptr = "a\0b";
    o.via.str.size = 3;
    ck_assert_int_eq(gr_term_get_str(&o, buf, sizeof(buf)), GR_EBADARG); /* a NUL inside */
    o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    o.via.u64 = 5;
    ck_assert_int_eq(gr_term_get_str(&o, buf, sizeof(buf)), GR_EBADARG);
    ck_assert_str_eq(buf, "zzz"); /* untouched by every refusal */
}
END_TEST

START_TEST(pack_rpc_answer)
{
    static const char res[] = "\x92\x01\xa1x"; /* [1, "x"] */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    const msgpack_object *a;

    /* success with a result: the raw term, as is */
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_term_pack_rpc_answer(&pk, 42, 0, res, 4), 0);
    ck_assert_int_eq(gr_term_validate(sb.data, sb.size), 0);
    a = unpack_one(&u, &sb);
    ck_assert_int_eq(a->type, MSGPACK_OBJECT_ARRAY);
    ck_assert_uint_eq(a->via.array.size, 4);
    ck_assert(gr_term_is_str(&a->via.array.ptr[0], "$rpc"));
    ck_assert_uint_eq(a->via.array.ptr[1].via.u64, 42);
    ck_assert_int_eq(a->via.array.ptr[2].via.i64, 0);
    ck_assert_int_eq(a->via.array.ptr[3].type, MSGPACK_OBJECT_ARRAY);
    ck_assert(gr_term_is_str(&a->via.array.ptr[3].via.array.ptr[1], "x"));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_clear(&sb);

    /* success without a result: nil */
    ck_assert_int_eq(gr_term_pack_rpc_answer(&pk, 1, 0, NULL, 0), 0);
    a = unpack_one(&u, &sb);
    ck_assert_int_eq(a->via.array.ptr[3].type, MSGPACK_OBJECT_NIL);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_clear(&sb);

    /* an error: its status and stable reason id, whatever res holds */
    ck_assert_int_eq(gr_term_pack_rpc_answer(&pk, 2, GR_EBADARG, res, 4), 0);
    a = unpack_one(&u, &sb);
    ck_assert_int_eq(a->via.array.ptr[2].via.i64, GR_EBADARG);
    ck_assert(gr_term_is_str(&a->via.array.ptr[3], "badarg"));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(parse_rpc_answer)
{
    static const char res[] = "\xa2ok"; /* "ok" */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    const msgpack_object *x = NULL;
    uint64_t tag = 0;
    int status = 1;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    ck_assert_int_eq(gr_term_pack_rpc_answer(&pk, 7, 0, res, 3), 0);
    ck_assert_int_eq(gr_term_parse_rpc_answer(unpack_one(&u, &sb), &tag, &status, &x), 0);
    ck_assert_uint_eq(tag, 7);
    ck_assert_int_eq(status, 0);
    ck_assert(gr_term_is_str(x, "ok"));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_clear(&sb);

    ck_assert_int_eq(gr_term_pack_rpc_answer(&pk, 8, GR_ENOPROC, NULL, 0), 0);
    ck_assert_int_eq(gr_term_parse_rpc_answer(unpack_one(&u, &sb), &tag, &status, &x), 0);
    ck_assert_uint_eq(tag, 8);
    ck_assert_int_eq(status, GR_ENOPROC);
    ck_assert(gr_term_is_str(x, gr_errid(GR_ENOPROC)));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_clear(&sb);

    /* not an answer: a wrong tag word, a negative tag, three elements */
    msgpack_pack_array(&pk, 4);
    gr_term_pack_cstr(&pk, "$rpx");
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_nil(&pk);
    ck_assert_int_eq(gr_term_parse_rpc_answer(unpack_one(&u, &sb), &tag, &status, &x), GR_EBADTERM);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_array(&pk, 4);
    gr_term_pack_cstr(&pk, "$rpc");
    msgpack_pack_int(&pk, -1);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_nil(&pk);
    ck_assert_int_eq(gr_term_parse_rpc_answer(unpack_one(&u, &sb), &tag, &status, &x), GR_EBADTERM);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_array(&pk, 3);
    gr_term_pack_cstr(&pk, "$rpc");
    msgpack_pack_uint64(&pk, 1);
    msgpack_pack_int(&pk, 0);
    ck_assert_int_eq(gr_term_parse_rpc_answer(unpack_one(&u, &sb), &tag, &status, &x), GR_EBADTERM);
    ck_assert_uint_eq(tag, 8); /* untouched */
    ck_assert_int_eq(status, GR_ENOPROC);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}
END_TEST

static Suite *term_suite(void)
{
    Suite *s = suite_create("term");
    TCase *tc = gr_test_tcase(s, "codec", NULL, NULL, 0);

    gr_test_add(tc, pid_roundtrip, decode_id_from_bytes, pack_id_bad_node,
                parse_id_malformed_payload, validate_scalars_and_containers, validate_truncated,
                next_finds_the_first_term, validate_depth, validate_huge_declared_lengths,
                validate_reserved_byte_and_short_headers, is_str, pack_cstr_and_kv_uint, map_get,
                get_str, pack_rpc_answer, parse_rpc_answer);
    return s;
}

int main(void)
{
    return gr_test_run(term_suite);
}
