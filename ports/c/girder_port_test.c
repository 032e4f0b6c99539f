/* SPDX-License-Identifier: Apache-2.0 */
/*
 * girder_port_test.c - the C port helper (girder_port.h) against a fake node
 * on pipes: frames it writes parse back (round trip of send, reply, publish,
 * requests); "init", messages, calls and publishes read as events; a request
 * keeps the frames that arrive before its answer, in order; a stream that ends
 * inside a frame is GIRDER_PORT_ETRUNC, between frames GIRDER_PORT_ECLOSED; a
 * length of 0 or above max_frame is GIRDER_PORT_ETOOBIG from the header
 * alone; garbage is GIRDER_PORT_EBADFRAME; terms that are not one value are
 * refused before anything is written.
 */
#include "girder_port.h"

#include <check.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The fake node: to_port[1] writes the port's stdin, from_port[0] reads its stdout. */
typedef struct fake {
    int to_port[2], from_port[2];
    girder_port *gp;
} fake;

static void fake_open(fake *f, uint32_t max)
{
    ck_assert_int_eq(pipe(f->to_port), 0);
    ck_assert_int_eq(pipe(f->from_port), 0);
    ck_assert_int_eq(girder_port_open(f->to_port[0], f->from_port[1], max, &f->gp), 0);
}

static void fake_close(fake *f)
{
    girder_port_close(f->gp);
    for (int i = 0; i < 2; i++) {
        if (f->to_port[i] >= 0) {
            close(f->to_port[i]);
        }
        close(f->from_port[i]);
    }
}

static void put_raw(fake *f, const void *p, size_t n)
{
    ck_assert_int_eq(write(f->to_port[1], p, n), (ssize_t)n);
}

/* Write one frame holding the packed value in sb to the port. */
static void put_frame(fake *f, const msgpack_sbuffer *sb)
{
    uint8_t h[4] = {(uint8_t)(sb->size >> 24), (uint8_t)(sb->size >> 16), (uint8_t)(sb->size >> 8),
                    (uint8_t)sb->size};

    put_raw(f, h, 4);
    put_raw(f, sb->data, sb->size);
}

/* Read one frame the port wrote, unpacked into up. */
static void get_frame(fake *f, msgpack_unpacked *up, char *buf, size_t cap)
{
    uint8_t h[4];
    size_t n, got = 0, used = 0;

    ck_assert_int_eq(read(f->from_port[0], h, 4), 4);
    ck_assert_int_eq(girder_port_frame_check(h, 4, 1u << 20, &used),
                     0); /* header alone: need more */
    n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    ck_assert_uint_le(n, cap);
    while (got < n) {
        ssize_t k = read(f->from_port[0], buf + got, n - got);

        ck_assert_int_gt(k, 0);
        got += (size_t)k;
    }
    ck_assert_int_eq(msgpack_unpack_next(up, buf, n, NULL), MSGPACK_UNPACK_SUCCESS);
}

static bool is_str(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* Pack [Kind, ...] frames for the port. */
static void frame_notify(fake *f, const char *method, int nparams, const char *p1, const char *p2)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 2);
    msgpack_pack_str_with_body(&pk, method, strlen(method));
    msgpack_pack_array(&pk, (size_t)nparams);
    if (nparams >= 1) {
        msgpack_pack_str_with_body(&pk, p1, strlen(p1));
    }
    if (nparams >= 2) {
        msgpack_pack_str_with_body(&pk, p2, strlen(p2));
    }
    put_frame(f, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static void frame_init(fake *f)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    static const char pid[8] = {1, 2, 3, 4, 5, 6, 7, 8};

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 2);
    msgpack_pack_str_with_body(&pk, "init", 4);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_ext_with_body(&pk, pid, sizeof(pid), 1);
    msgpack_pack_str_with_body(&pk, "a@h", 3);
    msgpack_pack_str_with_body(&pk, "w", 1);
    put_frame(f, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static void frame_call(fake *f, uint64_t id, const char *req)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint64(&pk, id);
    msgpack_pack_str_with_body(&pk, "call", 4);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_str_with_body(&pk, req, strlen(req));
    put_frame(f, &sb);
    msgpack_sbuffer_destroy(&sb);
}

static void frame_response(fake *f, uint64_t id, const char *err, const char *result)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint64(&pk, id);
    if (err) {
        msgpack_pack_str_with_body(&pk, err, strlen(err));
        msgpack_pack_nil(&pk);
    } else {
        msgpack_pack_nil(&pk);
        msgpack_pack_str_with_body(&pk, result, strlen(result));
    }
    put_frame(f, &sb);
    msgpack_sbuffer_destroy(&sb);
}

START_TEST(events_and_round_trip)
{
    fake f;
    girder_port_event ev;
    msgpack_unpacked up;
    char buf[4096];
    girder_port_pid pid;
    static const char hi[] = {(char)0xa2, 'h', 'i'};

    fake_open(&f, 0);
    msgpack_unpacked_init(&up);
    frame_init(&f);
    frame_notify(&f, "message", 1, "hello", NULL);
    frame_call(&f, 7, "req");
    frame_notify(&f, "publish", 2, "orders.eu", "x");
    frame_notify(&f, "future", 0, NULL, NULL);

    ck_assert_int_eq(girder_port_next(f.gp, &ev), 0); /* init is taken, not returned */
    ck_assert_int_eq(ev.kind, GIRDER_PORT_MESSAGE);
    ck_assert(is_str(ev.term, "hello"));
    ck_assert_str_eq(girder_port_node(f.gp), "a@h");
    ck_assert_str_eq(girder_port_name(f.gp), "w");
    ck_assert_ptr_nonnull(girder_port_self(f.gp));
    ck_assert_uint_eq(girder_port_self(f.gp)->len, 10); /* fixext 8: 0xd8, type, 8 bytes */

    ck_assert_int_eq(girder_port_next(f.gp, &ev), 0);
    ck_assert_int_eq(ev.kind, GIRDER_PORT_CALL);
    ck_assert_uint_eq(ev.id, 7);
    ck_assert(is_str(ev.term, "req"));
    ck_assert_int_eq(girder_port_reply(f.gp, 7, hi, sizeof(hi)), 0);
    get_frame(&f, &up, buf, sizeof(buf)); /* [1, 7, nil, "hi"] */
    ck_assert_int_eq(up.data.via.array.size, 4);
    ck_assert_uint_eq(up.data.via.array.ptr[0].via.u64, 1);
    ck_assert_uint_eq(up.data.via.array.ptr[1].via.u64, 7);
    ck_assert_int_eq(up.data.via.array.ptr[2].type, MSGPACK_OBJECT_NIL);
    ck_assert(is_str(&up.data.via.array.ptr[3], "hi"));
    ck_assert_int_eq(girder_port_reply_error(f.gp, 8, "nope"), 0);
    get_frame(&f, &up, buf, sizeof(buf));
    ck_assert(is_str(&up.data.via.array.ptr[2], "nope"));

    ck_assert_int_eq(girder_port_next(f.gp, &ev), 0);
    ck_assert_int_eq(ev.kind, GIRDER_PORT_PUBLISH);
    ck_assert(is_str(ev.topic, "orders.eu"));
    ck_assert(is_str(ev.term, "x"));
    ck_assert_int_eq(girder_port_next(f.gp, &ev), 0);
    ck_assert_int_eq(ev.kind, GIRDER_PORT_OTHER);

    /* send to a pid kept from init, to a name, publish: [2, "send", [Dest, Term]] */
    ck_assert_int_eq(girder_port_send(f.gp, girder_port_self(f.gp), hi, sizeof(hi)), 0);
    get_frame(&f, &up, buf, sizeof(buf));
    ck_assert(is_str(&up.data.via.array.ptr[1], "send"));
    ck_assert_int_eq(up.data.via.array.ptr[2].via.array.ptr[0].type, MSGPACK_OBJECT_EXT);
    ck_assert_int_eq(girder_port_pid_get(&up.data.via.array.ptr[2].via.array.ptr[0], &pid), 0);
    ck_assert_mem_eq(pid.data, girder_port_self(f.gp)->data, pid.len);
    ck_assert_int_eq(girder_port_send_name(f.gp, "w@b@h", hi, sizeof(hi)), 0);
    get_frame(&f, &up, buf, sizeof(buf));
    ck_assert(is_str(&up.data.via.array.ptr[2].via.array.ptr[0], "w@b@h"));
    ck_assert(is_str(&up.data.via.array.ptr[2].via.array.ptr[1], "hi"));
    ck_assert_int_eq(girder_port_publish(f.gp, "t.x", hi, sizeof(hi)), 0);
    get_frame(&f, &up, buf, sizeof(buf));
    ck_assert(is_str(&up.data.via.array.ptr[1], "publish"));
    ck_assert(is_str(&up.data.via.array.ptr[2].via.array.ptr[0], "t.x"));

    /* Not exactly one value: refused, nothing written. */
    ck_assert_int_eq(girder_port_send_name(f.gp, "w", "\xa2h", 2), GIRDER_PORT_EBADARG);
    ck_assert_int_eq(girder_port_reply(f.gp, 1, "\xc0\xc0", 2), GIRDER_PORT_EBADARG);
    ck_assert_int_eq(girder_port_request(f.gp, "x", hi, sizeof(hi), NULL), GIRDER_PORT_EBADARG);

    close(f.to_port[1]); /* EOF between frames: exit now */
    f.to_port[1] = -1;
    ck_assert_int_eq(girder_port_next(f.gp, &ev), GIRDER_PORT_ECLOSED);
    msgpack_unpacked_destroy(&up);
    fake_close(&f);
}
END_TEST

START_TEST(request_keeps_what_arrives_first)
{
    fake f;
    girder_port_event ev;
    msgpack_unpacked up;
    char buf[4096];

    fake_open(&f, 0);
    msgpack_unpacked_init(&up);
    /* What the node says before answering request 1, then the answer. */
    frame_notify(&f, "message", 1, "m1", NULL);
    frame_call(&f, 9, "c1");
    frame_response(&f, 99, "stale", NULL); /* nobody waits for 99: dropped */
    frame_response(&f, 1, NULL, "ok");
    frame_response(&f, 2, "name_taken", NULL);
    ck_assert_int_eq(girder_port_join(f.gp, "app", "workers"), 0);
    get_frame(&f, &up, buf, sizeof(buf)); /* [0, 1, "join", ["app", "workers"]] */
    ck_assert_uint_eq(up.data.via.array.ptr[0].via.u64, 0);
    ck_assert_uint_eq(up.data.via.array.ptr[1].via.u64, 1);
    ck_assert(is_str(&up.data.via.array.ptr[2], "join"));
    ck_assert(is_str(&up.data.via.array.ptr[3].via.array.ptr[1], "workers"));
    ck_assert_int_eq(girder_port_register(f.gp, "w"), GIRDER_PORT_EREMOTE);
    ck_assert_str_eq(girder_port_errmsg(f.gp), "name_taken");
    get_frame(&f, &up, buf, sizeof(buf));
    ck_assert(is_str(&up.data.via.array.ptr[2], "register"));
    /* The kept frames come out in order. */
    ck_assert_int_eq(girder_port_next(f.gp, &ev), 0);
    ck_assert_int_eq(ev.kind, GIRDER_PORT_MESSAGE);
    ck_assert(is_str(ev.term, "m1"));
    ck_assert_int_eq(girder_port_next(f.gp, &ev), 0);
    ck_assert_int_eq(ev.kind, GIRDER_PORT_CALL);
    ck_assert_uint_eq(ev.id, 9);
    ck_assert(is_str(ev.term, "c1"));
    msgpack_unpacked_destroy(&up);
    fake_close(&f);
}
END_TEST

START_TEST(truncated_frame)
{
    fake f;
    girder_port_event ev;
    static const uint8_t part[] = {0, 0, 0, 10, 0x93, 0x02};

    fake_open(&f, 0);
    put_raw(&f, part, sizeof(part));
    close(f.to_port[1]);
    f.to_port[1] = -1;
    ck_assert_int_eq(girder_port_next(f.gp, &ev), GIRDER_PORT_ETRUNC);
    fake_close(&f);

    fake_open(&f, 0); /* inside the header */
    put_raw(&f, part, 2);
    close(f.to_port[1]);
    f.to_port[1] = -1;
    ck_assert_int_eq(girder_port_next(f.gp, &ev), GIRDER_PORT_ETRUNC);
    fake_close(&f);
}
END_TEST

START_TEST(oversized_and_garbage)
{
    fake f;
    girder_port_event ev;
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff};
    static const uint8_t over[] = {0, 0, 4, 1}; /* 1025 > 1024 */
    static const uint8_t zero[] = {0, 0, 0, 0};
    static const uint8_t junk[] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    static const uint8_t notrpc[] = {0, 0, 0, 2, 0x91, 0x05}; /* [5] */
    size_t used;

    /* Refused from the header alone: nothing else was written, the read
     * does not wait for a payload. */
    fake_open(&f, 1024);
    put_raw(&f, huge, sizeof(huge));
    ck_assert_int_eq(girder_port_next(f.gp, &ev), GIRDER_PORT_ETOOBIG);
    fake_close(&f);
    fake_open(&f, 1024);
    put_raw(&f, over, sizeof(over));
    ck_assert_int_eq(girder_port_next(f.gp, &ev), GIRDER_PORT_ETOOBIG);
    fake_close(&f);
    fake_open(&f, 1024);
    put_raw(&f, zero, sizeof(zero));
    ck_assert_int_eq(girder_port_next(f.gp, &ev), GIRDER_PORT_ETOOBIG);
    fake_close(&f);
    ck_assert_int_eq(girder_port_frame_check(over, 4, 1025, &used), 0);
    ck_assert_int_eq(girder_port_frame_check(junk, sizeof(junk), 1024, &used), 1);
    ck_assert_uint_eq(used, sizeof(junk));

    fake_open(&f, 0);
    put_raw(&f, junk, sizeof(junk));
    ck_assert_int_eq(girder_port_next(f.gp, &ev), GIRDER_PORT_EBADFRAME);
    fake_close(&f);
    fake_open(&f, 0);
    put_raw(&f, notrpc, sizeof(notrpc));
    ck_assert_int_eq(girder_port_next(f.gp, &ev), GIRDER_PORT_EBADFRAME);
    fake_close(&f);
    /* A map32 announcing 3.7e9 entries in a 10-byte frame (found by the
     * fuzzer): refused before msgpack-c allocates for it. */
    {
        static const uint8_t bomb[] = {0,   0,    0,    10,   0x93, 0x02, 0xa1,
                                       'x', 0x91, 0xdf, 0xdf, 0xdf, 0xdf, 0xdf};
        uint8_t deep[4 + 41];

        fake_open(&f, 0);
        put_raw(&f, bomb, sizeof(bomb));
        ck_assert_int_eq(girder_port_next(f.gp, &ev), GIRDER_PORT_EBADFRAME);
        fake_close(&f);
        /* 40 nested arrays: deeper than 32 */
        deep[0] = deep[1] = deep[2] = 0;
        deep[3] = 41;
        memset(deep + 4, 0x91, 40);
        deep[44] = 0xc0;
        fake_open(&f, 0);
        put_raw(&f, deep, sizeof(deep));
        ck_assert_int_eq(girder_port_next(f.gp, &ev), GIRDER_PORT_EBADFRAME);
        ck_assert_int_eq(girder_port_reply(f.gp, 1, bomb + 9, 5), GIRDER_PORT_EBADARG);
        ck_assert_int_eq(girder_port_reply(f.gp, 1, deep + 4, 41), GIRDER_PORT_EBADARG);
        ck_assert_int_eq(girder_port_reply(f.gp, 1, "\xc1", 1), GIRDER_PORT_EBADARG);
        fake_close(&f);
    }
    ck_assert_str_eq(girder_port_strerror(GIRDER_PORT_ETOOBIG),
                     "frame length 0 or above max_frame");
}
END_TEST

START_TEST(big_frame_split_across_reads)
{
    fake f;
    girder_port_event ev;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t n = 300000; /* larger than a pipe's buffer: the writer is a child */
    char *big = malloc(n);
    pid_t child;

    memset(big, 'z', n);
    fake_open(&f, 0);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 2);
    msgpack_pack_str_with_body(&pk, "message", 7);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_bin_with_body(&pk, big, n);
    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        put_frame(&f, &sb);
        _exit(0);
    }
    ck_assert_int_eq(girder_port_next(f.gp, &ev), 0);
    ck_assert_int_eq(ev.kind, GIRDER_PORT_MESSAGE);
    ck_assert_int_eq(ev.term->type, MSGPACK_OBJECT_BIN);
    ck_assert_uint_eq(ev.term->via.bin.size, n);
    ck_assert_int_eq(memcmp(ev.term->via.bin.ptr, big, n), 0);
    msgpack_sbuffer_destroy(&sb);
    free(big);
    fake_close(&f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("girder_port");
    TCase *tc = tcase_create("helper");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, events_and_round_trip);
    tcase_add_test(tc, request_keeps_what_arrives_first);
    tcase_add_test(tc, truncated_frame);
    tcase_add_test(tc, oversized_and_garbage);
    tcase_add_test(tc, big_frame_split_across_reads);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
