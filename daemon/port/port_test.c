/* SPDX-License-Identifier: Apache-2.0 */
/*
 * port_test.c - the behaviour "port" with real programs (sh, printf, cat): exit
 * status, signal and normal exits as reasons; a program that cannot start;
 * garbage and an oversized length stopping the port; a frame that sends to a
 * registered name; a call answered through `cat` (which echoes every frame, so
 * the node's request comes back as a request of the port, is answered
 * undef_function, and that answer comes back as the port's answer); a port
 * whose program does not read is marked busy above GR_PORT_BUSY_HIGH: a
 * process sending to it is suspended after its turn, a non-blocking send is
 * told GR_EPROCBUSY, and the port's end resumes the sender; messages to the
 * program (through `cat` into a file) and the Term of a program's "send" go
 * byte for byte, and what is not one term is dropped. No Python: the
 * cluster tests cover the Python helper.
 */
#include "port/port.h"

#include "proto/err.h"
#include "proto/term.h"
#include "runtime/rt.h"

#include <check.h>
#include <errno.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 10000

static girder_rt *rt;
static gr_ports *ports;
static gr_probe *probe;

static void setup(void)
{
    gr_rt_config rc = {.node_name = "porttest@127.0.0.1", .schedulers = 2};

    ck_assert_int_eq(gr_rt_new(&rc, &rt), 0);
    ck_assert_int_eq(gr_ports_new(rt, NULL, &ports), 0);
    ck_assert_int_eq(gr_rt_start(rt), 0);
    ck_assert_int_eq(gr_probe_new(rt, &probe), 0);
}

static void teardown(void)
{
    probe = gr_probe_free(probe);
    gr_rt_stop(rt);
    ports = gr_ports_free(ports);
    rt = gr_rt_free(rt);
}

typedef struct spawn_arg {
    const char *const *argv; /* cmd, args..., NULL */
    int64_t busy_high;       /* > 0: the spawn argument's busy_high */
    int64_t busy_low;        /* >= 0 and busy_high > 0: its busy_low */
    girder_pid pid;
} spawn_arg;

static int do_spawn(girder_ctx *ctx, void *arg)
{
    spawn_arg *s = arg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m;
    girder_ref mref;
    size_t n = 0;
    int r;

    while (s->argv[n]) {
        n++;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3 + (s->busy_high > 0) + (s->busy_high > 0 && s->busy_low >= 0));
    if (s->busy_high > 0) {
        msgpack_pack_str_with_body(&pk, "busy_high", 9);
        msgpack_pack_int64(&pk, s->busy_high);
        if (s->busy_low >= 0) {
            msgpack_pack_str_with_body(&pk, "busy_low", 8);
            msgpack_pack_int64(&pk, s->busy_low);
        }
    }
    msgpack_pack_str_with_body(&pk, "cmd", 3);
    msgpack_pack_str_with_body(&pk, s->argv[0], strlen(s->argv[0]));
    msgpack_pack_str_with_body(&pk, "args", 4);
    msgpack_pack_array(&pk, n - 1);
    for (size_t i = 1; i < n; i++) {
        msgpack_pack_str_with_body(&pk, s->argv[i], strlen(s->argv[i]));
    }
    msgpack_pack_str_with_body(&pk, "kill_timeout_ms", 15);
    msgpack_pack_uint32(&pk, 500);
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    r = girder_spawn_named(ctx, GR_PORT_BEHAVIOUR, m, GIRDER_SPAWN_MONITOR, &s->pid, &mref);
    girder_msg_unref(m);
    return r;
}

static girder_pid spawn(const char *const *argv)
{
    spawn_arg s = {.argv = argv};

    ck_assert_int_eq(gr_probe_run(probe, do_spawn, &s), 0);
    return s.pid;
}

/* Next message of the probe whose first element is `tag`; its unpacked form. */
static girder_msg *recv_tagged(const char *tag, msgpack_unpacked *up)
{
    for (;;) {
        girder_msg *m = NULL;

        ck_assert_msg(gr_probe_recv(probe, WAIT_MS, &m) == 0, "no %s", tag);
        msgpack_unpacked_init(up);
        if (girder_msg_unpack(m, up) == 0 && up->data.type == MSGPACK_OBJECT_ARRAY &&
            up->data.via.array.size >= 1 && gr_term_is_str(&up->data.via.array.ptr[0], tag)) {
            return m;
        }
        msgpack_unpacked_destroy(up);
        girder_msg_unref(m);
    }
}

/* Wait for the DOWN and return its reason printed as text (static buffer). */
static const char *down_reason(void)
{
    static char buf[256];
    msgpack_unpacked up;
    girder_msg *m = recv_tagged("DOWN", &up);

    ck_assert_uint_eq(up.data.via.array.size, 5);
    msgpack_object_print_buffer(buf, sizeof(buf), up.data.via.array.ptr[4]);
    msgpack_unpacked_destroy(&up);
    girder_msg_unref(m);
    return buf;
}

START_TEST(exits_are_reasons)
{
    static const char *const st3[] = {"sh", "-c", "exit 3", NULL};
    static const char *const sig9[] = {"sh", "-c", "kill -9 $$", NULL};
    static const char *const ok[] = {"sh", "-c", "exit 0", NULL};
    static const char *const none[] = {"/nonexistent/program", NULL};

    spawn(st3);
    ck_assert_str_eq(down_reason(), "[\"exit_status\", 3]");
    spawn(sig9);
    ck_assert_str_eq(down_reason(), "[\"signal\", 9]");
    spawn(ok);
    ck_assert_str_eq(down_reason(), "\"normal\"");
    spawn(none);
    ck_assert_str_eq(down_reason(), "\"spawn_failed\"");
}
END_TEST

START_TEST(garbage_stops_the_port)
{
    static const char *const huge[] = {"sh", "-c", "printf 'AAAAAAAA'; exec sleep 30", NULL};
    static const char *const bad[] = {
        "sh", "-c", "printf '\\000\\000\\000\\002\\300\\300'; exec sleep 30", NULL};
    static const char *const shape[] = {"sh", "-c",
                                        "printf '\\000\\000\\000\\001\\300'; exec sleep 30", NULL};

    spawn(huge);
    ck_assert_str_eq(down_reason(), "\"frame_too_big\"");
    spawn(bad);
    ck_assert_str_eq(down_reason(), "\"bad_frame\"");
    spawn(shape); /* one msgpack value, but not msgpack-RPC */
    ck_assert_str_eq(down_reason(), "\"bad_frame\"");
}
END_TEST

static int reg_probe(girder_ctx *ctx, void *arg)
{
    return girder_register(ctx, "tprobe", girder_self(ctx));
}

typedef struct call_arg {
    girder_pid to;
    girder_ref ref;
} call_arg;

static int do_call(girder_ctx *ctx, void *arg)
{
    call_arg *a = arg;
    girder_msg *req = girder_msg_atom("x");
    int r = girder_call(ctx, a->to, req, true, &a->ref);

    girder_msg_unref(req);
    return r;
}

static int do_kill(girder_ctx *ctx, void *arg)
{
    girder_msg *kill = girder_msg_atom("kill");
    int r = girder_exit(ctx, *(girder_pid *)arg, kill);

    girder_msg_unref(kill);
    return r;
}

START_TEST(send_and_call)
{
    /* [2, "send", ["tprobe", "hi"]], 18 bytes, then wait for stdin EOF. */
    static const char *const sender[] = {
        "sh", "-c",
        "printf '\\000\\000\\000\\022\\223\\002\\244send\\222\\246tprobe\\242hi';"
        " exec cat >/dev/null",
        NULL};
    static const char *const echo[] = {"cat", NULL};
    msgpack_unpacked up;
    girder_msg *m = NULL;
    call_arg ca;
    girder_pid pid;

    ck_assert_int_eq(gr_probe_run(probe, reg_probe, NULL), 0);
    pid = spawn(sender);
    ck_assert_int_eq(gr_probe_recv(probe, WAIT_MS, &m), 0);
    ck_assert(girder_msg_is_atom(m, "hi"));
    girder_msg_unref(m);
    /* Killing the port closes the program's stdin: cat ends, the port is gone. */
    ck_assert_int_eq(gr_probe_run(probe, do_kill, &pid), 0);
    ck_assert_str_eq(down_reason(), "\"killed\"");

    ca.to = spawn(echo);
    ck_assert_int_eq(gr_probe_run(probe, do_call, &ca), 0);
    m = recv_tagged("$reply", &up);
    ck_assert_uint_eq(up.data.via.array.size, 3);
    {
        char buf[128];

        msgpack_object_print_buffer(buf, sizeof(buf), up.data.via.array.ptr[2]);
        ck_assert_str_eq(buf, "[\"error\", \"undef_function\"]");
    }
    msgpack_unpacked_destroy(&up);
    girder_msg_unref(m);
    ck_assert_int_eq(gr_probe_run(probe, do_kill, &ca.to), 0);
}
END_TEST

/* ---- messages and "send" frames pass byte for byte ------------------------------------------ */

typedef struct raw_msgs {
    girder_pid to;
    const uint8_t *const *bytes; /* NULL-terminated */
    const size_t *lens;
} raw_msgs;

static int send_raw(girder_ctx *ctx, void *arg)
{
    raw_msgs *r = arg;

    for (size_t i = 0; r->bytes[i]; i++) {
        girder_msg *m = girder_msg_new(r->bytes[i], r->lens[i]);

        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(girder_send(ctx, r->to, m), 0);
    }
    return 0;
}

/* The file's bytes once it holds at least want (bounded wait); *ret_len. */
static uint8_t *read_file_once(const char *path, size_t want, size_t *ret_len)
{
    uint8_t *buf = malloc(65536);
    size_t n = 0;

    ck_assert_ptr_nonnull(buf);
    for (int i = 0; i < WAIT_MS; i++) {
        FILE *f = fopen(path, "rb");

        n = f ? fread(buf, 1, 65536, f) : 0;
        if (f) {
            fclose(f);
        }
        if (n >= want) {
            break;
        }
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    *ret_len = n;
    return buf;
}

START_TEST(messages_go_out_as_they_are)
{
    /* [1, 5] with 5 as a uint8 (not canonical): out as it is; ["$foo", 1]
     * and ["DOWN", 1, 2] look tagged but are not the port's: out as
     * messages; 0xc1 and two terms are not one term: dropped; "x". */
    static const uint8_t m1[] = {0x92, 0x01, 0xcc, 0x05};
    static const uint8_t m2[] = {0x92, 0xa4, '$', 'f', 'o', 'o', 0x01};
    static const uint8_t m3[] = {0x93, 0xa4, 'D', 'O', 'W', 'N', 0x01, 0x02};
    static const uint8_t m4[] = {0xc1};
    static const uint8_t m5[] = {0x01, 0x02};
    static const uint8_t m6[] = {0xa1, 'x'};
    static const uint8_t *const bytes[] = {m1, m2, m3, m4, m5, m6, NULL};
    static const size_t lens[] = {sizeof(m1), sizeof(m2), sizeof(m3),
                                  sizeof(m4), sizeof(m5), sizeof(m6)};
    static const uint8_t *const out[] = {m1, m2, m3, m6};
    static const size_t out_lens[] = {sizeof(m1), sizeof(m2), sizeof(m3), sizeof(m6)};
    static const uint8_t head[] = {0x93, 0x02, 0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e', 0x91};
    char path[] = "/tmp/girder-port-test.XXXXXX", cmd[64];
    const char *argv[] = {"sh", "-c", cmd, NULL};
    raw_msgs r = {.bytes = bytes, .lens = lens};
    size_t want, n, off;
    uint8_t *got;
    int fd = mkstemp(path);

    ck_assert_int_ge(fd, 0);
    close(fd);
    snprintf(cmd, sizeof(cmd), "exec cat > %s", path);
    r.to = spawn(argv);
    ck_assert_int_eq(gr_probe_run(probe, send_raw, &r), 0);
    /* the init frame first (its length from its header), then the four */
    got = read_file_once(path, 4, &n);
    ck_assert_uint_ge(n, 4);
    off = 4 + ((size_t)got[0] << 24 | (size_t)got[1] << 16 | (size_t)got[2] << 8 | got[3]);
    want = off;
    for (size_t i = 0; i < 4; i++) {
        want += 4 + sizeof(head) + out_lens[i];
    }
    free(got);
    got = read_file_once(path, want, &n);
    ck_assert_uint_eq(n, want);
    for (size_t i = 0; i < 4; i++) {
        size_t plen = sizeof(head) + out_lens[i];

        ck_assert_uint_eq(got[off + 3], plen);
        ck_assert_mem_eq(got + off + 4, head, sizeof(head));
        ck_assert_mem_eq(got + off + 4 + sizeof(head), out[i], out_lens[i]);
        off += 4 + plen;
    }
    free(got);
    unlink(path);
    ck_assert_int_eq(gr_probe_run(probe, do_kill, &r.to), 0);
    (void)down_reason();
}
END_TEST

/* The probe's pid, packed. */
static int pack_probe_pid(girder_ctx *ctx, void *arg)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, arg, msgpack_sbuffer_write);
    return girder_pack_pid(ctx, &pk, gr_probe_pid(probe));
}

START_TEST(send_frames_pass_the_term_as_is)
{
    /* [2, "send", [ProbePid, [5, "y"]]] with 5 a uint8 and "y" a str 8 (not
     * canonical: a repacked term would differ), then [2, "send", [ProbePid,
     * {"k": [nil]}]]; the probe gets each Term byte for byte. */
    static const uint8_t t1[] = {0x92, 0xcc, 0x05, 0xd9, 0x01, 'y'};
    static const uint8_t t2[] = {0x81, 0xa1, 'k', 0x91, 0xc0};
    static const uint8_t *const terms[] = {t1, t2};
    static const size_t tlens[] = {sizeof(t1), sizeof(t2)};
    static const uint8_t head[] = {0x93, 0x02, 0xa4, 's', 'e', 'n', 'd', 0x92};
    msgpack_sbuffer pid;
    char cmd[2048], *w = cmd;
    const char *argv[] = {"sh", "-c", cmd, NULL};
    girder_pid port;

    msgpack_sbuffer_init(&pid);
    ck_assert_int_eq(gr_probe_run(probe, pack_probe_pid, &pid), 0);
    w += sprintf(w, "printf '");
    for (size_t i = 0; i < 2; i++) {
        size_t plen = sizeof(head) + pid.size + tlens[i];
        uint8_t frame[512];

        ck_assert_uint_lt(4 + plen, sizeof(frame));
        frame[0] = frame[1] = frame[2] = 0;
        frame[3] = (uint8_t)plen;
        memcpy(frame + 4, head, sizeof(head));
        memcpy(frame + 4 + sizeof(head), pid.data, pid.size);
        memcpy(frame + 4 + sizeof(head) + pid.size, terms[i], tlens[i]);
        for (size_t k = 0; k < 4 + plen; k++) {
            w += sprintf(w, "\\%03o", frame[k]);
        }
    }
    snprintf(w, sizeof(cmd) - (size_t)(w - cmd), "'; exec cat >/dev/null");
    msgpack_sbuffer_destroy(&pid);
    port = spawn(argv);
    for (size_t i = 0; i < 2; i++) {
        girder_msg *m = NULL;

        ck_assert_int_eq(gr_probe_recv(probe, WAIT_MS, &m), 0);
        ck_assert_uint_eq(girder_msg_size(m), tlens[i]);
        ck_assert_mem_eq(girder_msg_data(m), terms[i], tlens[i]);
        girder_msg_unref(m);
    }
    ck_assert_int_eq(gr_probe_run(probe, do_kill, &port), 0);
    (void)down_reason();
}
END_TEST

/* ---- busy ports ---------------------------------------------------------------------------- */

static girder_pid busy_target; /* the deaf port the sender sends to */

/* "go": send 64 KiB to busy_target with girder_send, then "sent" to the probe. */
static int sender_handle(girder_ctx *ctx, void *state, const girder_msg *msg)
{
    static uint8_t body[65536];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    girder_msg *m, *sent;

    if (!girder_msg_is_atom(msg, "go")) {
        return GIRDER_CONTINUE;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_bin_with_body(&pk, body, sizeof(body));
    m = girder_msg_new(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(girder_send(ctx, busy_target, m), 0);
    sent = girder_msg_atom("sent");
    ck_assert_int_eq(girder_send(ctx, gr_probe_pid(probe), sent), 0);
    return GIRDER_CONTINUE;
}

static const girder_behaviour sender_beh = {.name = "tsender", .handle = sender_handle};

static int spawn_sender(girder_ctx *ctx, void *arg)
{
    return girder_spawn(ctx, &sender_beh, NULL, 0, (girder_pid *)arg, NULL);
}

static int nosuspend_small(girder_ctx *ctx, void *arg)
{
    girder_msg *m = girder_msg_atom("x");
    int r = girder_send_nosuspend(ctx, busy_target, m);

    if (r < 0) {
        girder_msg_unref(m);
    }
    return r;
}

static uint64_t suspended_now(void)
{
    uint64_t total, now, us;

    gr_rt_suspend_counters(rt, &total, &now, &us);
    return now;
}

/* Wait (bounded) until suspended_now() == want. */
static void wait_suspended(uint64_t want)
{
    for (int i = 0; i < WAIT_MS && suspended_now() != want; i++) {
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    ck_assert_uint_eq(suspended_now(), want);
}

static void go_and_sent(girder_pid sender)
{
    girder_msg *m = girder_msg_atom("go");

    ck_assert_int_eq(gr_rt_send(rt, sender, m), 0);
    ck_assert_int_eq(gr_probe_recv(probe, WAIT_MS, &m), 0);
    ck_assert(girder_msg_is_atom(m, "sent"));
    girder_msg_unref(m);
}

/* Sends of 64 KiB by a fresh sender to busy_target until it is busy; how
 * many it took. The sender is left behind (killed). */
static int sends_until_busy(void)
{
    girder_pid sender;
    int i;

    ck_assert_int_eq(gr_probe_run(probe, spawn_sender, &sender), 0);
    for (i = 0; i < 64 && !gr_rt_proc_is_busy(rt, busy_target); i++) {
        go_and_sent(sender);
        wait_suspended(0);
    }
    ck_assert_int_eq(gr_probe_run(probe, do_kill, &sender), 0);
    return i;
}

START_TEST(busy_marks_per_port)
{
    static const char *const deaf[] = {"sleep", "30", NULL};
    static const int64_t bad[][2] = {
        {4095, -1},                               /* busy_high below its minimum */
        {(int64_t)GR_PORT_BUSY_HIGH_MAX + 1, -1}, /* above its maximum */
        {65536, 65536},                           /* low not below high */
        {65536, 100000},                          /* low above high */
    };
    spawn_arg s = {.argv = deaf, .busy_high = 128 << 10, .busy_low = 16 << 10};
    int n;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        spawn_arg b = {.argv = deaf, .busy_high = bad[i][0], .busy_low = bad[i][1]};

        ck_assert_int_eq(gr_probe_run(probe, do_spawn, &b), 0);
        ck_assert_str_eq(down_reason(), "\"bad_busy_marks\"");
    }
    /* 128 KiB high mark: busy after a few 64 KiB sends (the pipe takes
     * up to 64 KiB first), where the default 1 MiB takes 16 or more. */
    ck_assert_int_eq(gr_probe_run(probe, do_spawn, &s), 0);
    busy_target = s.pid;
    n = sends_until_busy();
    ck_assert_msg(n >= 2 && n <= 6, "busy after %d x 64 KiB with a 128 KiB mark", n);
    ck_assert_int_eq(gr_probe_run(probe, do_kill, &busy_target), 0);
    (void)down_reason();
    /* busy_high alone, below the default low mark: low is high / 4; fine. */
    s = (spawn_arg){.argv = deaf, .busy_high = 8192, .busy_low = -1};
    ck_assert_int_eq(gr_probe_run(probe, do_spawn, &s), 0);
    ck_assert_int_eq(gr_probe_run(probe, do_kill, &s.pid), 0);
    ck_assert_str_ne(down_reason(), "\"bad_busy_marks\"");
}
END_TEST

START_TEST(busy_port_suspends_senders)
{
    static const char *const deaf[] = {"sleep", "30", NULL};
    girder_pid sender;
    girder_msg *m = NULL;
    int i;

    busy_target = spawn(deaf);
    ck_assert_int_eq(gr_probe_run(probe, spawn_sender, &sender), 0);
    ck_assert(!gr_rt_proc_is_busy(rt, busy_target));
    /* 64 KiB per turn: busy once more than GR_PORT_BUSY_HIGH waits (plus
     * what the pipe took), far below the cap. */
    for (i = 0; i < 64 && !gr_rt_proc_is_busy(rt, busy_target); i++) {
        go_and_sent(sender);
        wait_suspended(0); /* not busy when it sent: never suspended */
    }
    ck_assert_msg(gr_rt_proc_is_busy(rt, busy_target), "busy after %d x 64 KiB", i);
    ck_assert_int_ge(i, (int)(GR_PORT_BUSY_HIGH / 65536));
    /* This turn sends to a busy port: the sender is suspended after it. */
    go_and_sent(sender);
    wait_suspended(1);
    /* The non-blocking send is told, with its own error. */
    ck_assert_int_eq(gr_probe_run(probe, nosuspend_small, NULL), GR_EPROCBUSY);
    /* A suspended sender's mailbox waits: "go" is not handled ... */
    m = girder_msg_atom("go");
    ck_assert_int_eq(gr_rt_send(rt, sender, m), 0);
    /* ... until the port ends (its mark is cleared): then it runs again. */
    ck_assert_int_eq(gr_probe_run(probe, do_kill, &busy_target), 0);
    ck_assert_int_eq(gr_probe_recv(probe, WAIT_MS, &m), 0);
    while (!girder_msg_is_atom(m, "sent")) { /* the port's DOWN first, maybe */
        girder_msg_unref(m);
        ck_assert_int_eq(gr_probe_recv(probe, WAIT_MS, &m), 0);
    }
    girder_msg_unref(m);
    wait_suspended(0);
    ck_assert(!gr_rt_proc_is_busy(rt, busy_target));
    ck_assert_int_eq(gr_probe_run(probe, do_kill, &sender), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("port");
    TCase *tc = tcase_create("port");
    SRunner *sr;
    int failed;

    signal(SIGPIPE, SIG_IGN); /* as girderd: a program gone is EPIPE (port.h) */
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, exits_are_reasons);
    tcase_add_test(tc, garbage_stops_the_port);
    tcase_add_test(tc, send_and_call);
    tcase_add_test(tc, messages_go_out_as_they_are);
    tcase_add_test(tc, send_frames_pass_the_term_as_is);
    tcase_add_test(tc, busy_port_suspends_senders);
    tcase_add_test(tc, busy_marks_per_port);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
