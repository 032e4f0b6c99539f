/* SPDX-License-Identifier: Apache-2.0 */
/*
 * frame_test.c - the port framing decoder (frame.h): whole, split and
 * back-to-back frames; lengths of 0 and above the limit refused from the header
 * alone; garbage payloads (truncated msgpack, trailing bytes, too deep) refused;
 * random bytes never crash it and never yield a frame beyond the buffer.
 */
#include "port/frame.h"

#include "proto/err.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static size_t frame(uint8_t *out, const void *payload, uint32_t len)
{
    gr_port_frame_header(out, len);
    memcpy(out + 4, payload, len);
    return 4 + (size_t)len;
}

START_TEST(whole_split_and_back_to_back)
{
    static const uint8_t msg[] = {0x93, 0x02, 0xa4, 's', 'e', 'n', 'd', 0x90}; /* [2,"send",[]] */
    uint8_t buf[64];
    const uint8_t *pl;
    size_t plen, used, n = frame(buf, msg, sizeof(msg));

    ck_assert_uint_eq(buf[0], 0);
    ck_assert_uint_eq(buf[3], sizeof(msg));
    ck_assert_int_eq(gr_port_frame_decode(buf, n, 1024, &pl, &plen, &used), 1);
    ck_assert_ptr_eq(pl, buf + 4);
    ck_assert_uint_eq(plen, sizeof(msg));
    ck_assert_uint_eq(used, n);
    for (size_t cut = 0; cut < n; cut++) { /* every prefix: need more */
        ck_assert_int_eq(gr_port_frame_decode(buf, cut, 1024, &pl, &plen, &used), 0);
    }
    n += frame(buf + n, "\xc0", 1); /* a second frame right behind */
    ck_assert_int_eq(gr_port_frame_decode(buf, n, 1024, &pl, &plen, &used), 1);
    ck_assert_int_eq(gr_port_frame_decode(buf + used, n - used, 1024, &pl, &plen, &used), 1);
    ck_assert_uint_eq(plen, 1);
}
END_TEST

START_TEST(lengths)
{
    uint8_t hdr[4];
    const uint8_t *pl;
    size_t plen, used;

    gr_port_frame_header(hdr, 0);
    ck_assert_int_eq(gr_port_frame_decode(hdr, 4, 1024, &pl, &plen, &used), GR_EFRAMETOOBIG);
    gr_port_frame_header(hdr, 1025);
    ck_assert_int_eq(gr_port_frame_decode(hdr, 4, 1024, &pl, &plen, &used), GR_EFRAMETOOBIG);
    memset(hdr, 0xff, 4); /* 4 GiB - 1: refused before any payload arrives */
    ck_assert_int_eq(gr_port_frame_decode(hdr, 4, GR_PORT_FRAME_MAX_DEFAULT, &pl, &plen, &used),
                     GR_EFRAMETOOBIG);
    gr_port_frame_header(hdr, 1024); /* the limit itself: wait for the payload */
    ck_assert_int_eq(gr_port_frame_decode(hdr, 4, 1024, &pl, &plen, &used), 0);
    gr_port_frame_header(hdr, 0x01020304);
    ck_assert_uint_eq(hdr[0], 1);
    ck_assert_uint_eq(hdr[1], 2);
    ck_assert_uint_eq(hdr[2], 3);
    ck_assert_uint_eq(hdr[3], 4);
}
END_TEST

START_TEST(garbage_payloads)
{
    static const struct {
        const char *bytes;
        uint32_t len;
    } bad[] = {
        {"\x92\x01", 2},             /* array of 2 with one element */
        {"\xa5hel", 4},              /* string cut short */
        {"\xc0\xc0", 2},             /* two values */
        {"\xc1", 1},                 /* never-used byte */
        {"\xdb\xff\xff\xff\xff", 5}, /* str32 of 4 GiB */
    };
    uint8_t buf[128], deep[64];
    const uint8_t *pl;
    size_t plen, used, n;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = frame(buf, bad[i].bytes, bad[i].len);
        ck_assert_msg(gr_port_frame_decode(buf, n, 1024, &pl, &plen, &used) == GR_EBADFRAME,
                      "garbage %zu accepted", i);
    }
    memset(deep, 0x91, sizeof(deep) - 1); /* 63 nested arrays */
    deep[sizeof(deep) - 1] = 0xc0;
    n = frame(buf, deep, sizeof(deep));
    ck_assert_int_eq(gr_port_frame_decode(buf, n, 1024, &pl, &plen, &used), GR_EBADFRAME);
}
END_TEST

START_TEST(random_bytes)
{
    uint8_t buf[256];
    unsigned seed = 12345;

    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand_r(&seed) % sizeof(buf)), plen, used;
        const uint8_t *pl;
        int r;

        for (size_t i = 0; i < len; i++) {
            buf[i] = (uint8_t)rand_r(&seed);
        }
        if (len >= 4 && (round & 1)) { /* a plausible length half of the time */
            gr_port_frame_header(buf, (uint32_t)(rand_r(&seed) % 260));
        }
        r = gr_port_frame_decode(buf, len, 200, &pl, &plen, &used);
        ck_assert(r == 0 || r == 1 || r == GR_EFRAMETOOBIG || r == GR_EBADFRAME);
        if (r == 1) {
            ck_assert_uint_le(used, len);
            ck_assert_uint_eq(used, plen + 4);
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("port_frame");
    TCase *tc = tcase_create("decode");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, whole_split_and_back_to_back);
    tcase_add_test(tc, lengths);
    tcase_add_test(tc, garbage_payloads);
    tcase_add_test(tc, random_bytes);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
