/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handshake.c - the handshake state machine: cookie proofs, ephemeral X25519,
 * transcript hashing and key derivation (handshake.h, docs/protocol.md).
 *
 * Design notes
 * - Cryptography, every step (docs/protocol.md repeats it for implementers):
 *     ck     = BLAKE2b-256(key = "girder-cookie-key-v1", msg = cookie), or
 *              for Hello.role = OBSERVER
 *              BLAKE2b-256(key = "girder-observer-key-v1", msg = observer key)
 *     T      = BLAKE2b-512 over "girder-handshake-v1" || M1 || M2 || M3 || M4,
 *              each Mi being the whole record: 4 length bytes and the body
 *     dh     = X25519(own ephemeral secret, peer ephemeral public)
 *     h2     = T after M2
 *     master = BLAKE2b-256(key = ck, msg = dh || h2)
 *     k_id   = crypto_kdf_derive_from_key(32, id, "girderv1", master), id =
 *              1 initiator proof, 2 responder proof, 3 initiator->responder
 *              records, 4 responder->initiator records
 *     M3.mac = BLAKE2b-256(key = k_1, msg = T after M2)
 *     M4.mac = BLAKE2b-256(key = k_2, msg = T after M3)
 * - Why it resists what it must: the transcript covers both names, all version
 *   fields and both fresh ephemeral keys, so a proof is good for one connection
 *   only; each proof message also echoes the receiver's own ephemeral key in the
 *   clear, so a proof (or a HelloReply) recorded elsewhere is recognised as a
 *   replay (GR_EREPLAY) before its MAC is even checked; a MAC that fails with
 *   the right echo means a different cookie (GR_EBADCOOKIE). Forward secrecy:
 *   the record keys depend on dh, and the ephemeral secret is wiped as soon as
 *   dh is computed.
 * - Bounded work for strangers: one aligned allocation of this fixed struct per
 *   connection; a message's length is checked against GR_HANDSHAKE_MSG_MAX
 *   before its bytes are even buffered (into `in`, inside the struct), and
 *   protobuf-c unpacks into `arena`, also inside it. A message whose decoding
 *   needs more than the arena is malformed.
 * - Secrets (cookie key, ephemeral secret, derived keys) live only in this
 *   struct and are wiped on failure, on finish and on free.
 * - The records' cipher (record.h) is agreed in M1/M2: the initiator lists the
 *   ciphers it accepts besides ChaCha20-Poly1305 (Hello.ciphers), the
 *   responder names the one records use (HelloReply.cipher): the first of its
 *   own that was offered, else ChaCha20-Poly1305. Both messages are in T, so a
 *   changed offer or answer fails the proofs (GR_EBADCOOKIE): no downgrade
 *   past the MACs. A choice that was not offered is GR_EBADFRAME.
 * - Roles: the initiator claims one in M1 (absent: MEMBER) and every key of
 *   the connection derives from that role's ck, so the role is proven by the
 *   proofs themselves and, M1 being in T, cannot be changed on the way: a
 *   flipped role makes the responder derive from the other secret and M3
 *   fails (GR_EBADCOOKIE). The responder keeps both derived keys until M1
 *   says which one counts, then wipes the other. An observer must be hidden
 *   (a node never accepts one as a member) and needs an observer key on the
 *   responder; otherwise GR_EROLE. A responder that predates roles ignores the
 *   field, checks an observer's proof against the cookie and refuses it: the
 *   field fails closed, which is why it needed no new protocol version.
 * - Cookie rotation (handshake.h `accept`): a responder may hold further
 *   cookies. M1 does not say which cookie the initiator holds, and nothing
 *   before M3 depends on it, so the responder derives one master per
 *   candidate from the same dh and h2, checks M3 against every candidate's
 *   k_1 (crypto_verify_32, all of them whatever matched: the time taken does
 *   not tell which or whether one did), and keys M4 and the records from the
 *   one that matched. The wire and the initiator are unchanged. An observer
 *   claim drops the candidates: it proves the observer key alone.
 * - k_3 exists from M2 on, so the initiator's sending half can be handed out
 *   before M4 (gr_handshake_early_tx, for records sent with M3); finish then
 *   makes no second tx on that key, which would reuse its nonces.
 */
#include "proto/handshake.h"

#include "proto/err.h"
#include "proto/handshake_int.h"
#include "proto/wire_int.h"

#include <errno.h>
#include <sodium.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRANSCRIPT_LABEL "girder-handshake-v1"
#define COOKIE_KEY_LABEL "girder-cookie-key-v1"
#define OBSERVER_KEY_LABEL "girder-observer-key-v1"
#define KDF_CONTEXT "girderv1"
#define REC_MAX (GR_RECORD_HDR + GR_HANDSHAKE_MSG_MAX)
#define ARENA_SIZE 4096
#define KEY 32  /* every symmetric key, public key and MAC here */
#define HASH 64 /* transcript hash */
#define CIPHER_BIT(c) (1u << (c))
#define CIPHERS_KNOWN CIPHER_BIT(GR_CIPHER_AES128_OCB) /* besides ChaCha20-Poly1305 */

enum { KDF_PROOF_I = 1, KDF_PROOF_R = 2, KDF_I2R = 3, KDF_R2I = 4 };

_Static_assert(sizeof(COOKIE_KEY_LABEL) - 1 >= crypto_generichash_KEYBYTES_MIN, "label as key");
_Static_assert(sizeof(OBSERVER_KEY_LABEL) - 1 >= crypto_generichash_KEYBYTES_MIN, "label as key");
_Static_assert(sizeof(KDF_CONTEXT) - 1 == crypto_kdf_CONTEXTBYTES, "kdf context");
_Static_assert(crypto_scalarmult_BYTES == KEY && crypto_scalarmult_SCALARBYTES == KEY, "x25519");
_Static_assert(crypto_kdf_KEYBYTES == KEY, "kdf master");

enum state {
    ST_WAIT_HELLO = 1, /* responder: expecting M1 */
    ST_WAIT_REPLY,     /* initiator: M1 sent, expecting M2 */
    ST_WAIT_PROOF,     /* expecting M3 (responder) or M4 (initiator) */
    ST_DONE,           /* authenticated; keys ready for finish */
    ST_FINISHED,       /* keys handed out and wiped */
    ST_FAILED,         /* err is set */
};

struct gr_handshake {
    crypto_generichash_state transcript;       /* T so far; first: wants 64-byte alignment */
    int role;                                  /* GR_HANDSHAKE_INITIATOR or _RESPONDER */
    enum state state;                          /* where the exchange is */
    int err;                                   /* sticky error once ST_FAILED */
    int peer_rejected;                         /* the failure was a Reject from the peer */
    uint32_t version_min;                      /* lowest version we speak */
    uint32_t version_max;                      /* highest version we speak */
    uint32_t creation;                         /* our incarnation */
    int hidden;                                /* we are a hidden client (initiator) */
    uint32_t ciphers;                          /* CIPHER_BIT()s we accept besides ChaCha20 */
    gr_limits limits;                          /* our receive limits, resolved */
    char name[GR_NODENAME_MAX + 1];            /* our node name */
    size_t name_len;                           /* its length */
    char expect[GR_NODENAME_MAX + 1];          /* the peer name we dialled, if any */
    size_t expect_len;                         /* its length; 0: any peer */
    int fixed_clock;                           /* tests: use fixed_now instead of the wall clock */
    uint64_t fixed_now;                        /* tests: the clock */
    uint8_t cookie_key[KEY];                   /* ck; wiped once master is derived */
    uint8_t observer_key[KEY];                 /* responder: the observer ck until M1 is in */
    uint8_t alt[GR_HANDSHAKE_ACCEPT_MAX][KEY]; /* responder: accepted cookies' ck, then
                                                * (derive) each one's master until M3 */
    size_t n_alt;                              /* alt entries in use */
    int has_observer;                          /* responder: observer_key is set */
    int claim;                                 /* initiator: the role claimed, GR_ROLE_x */
    uint8_t eph_sk[KEY];                       /* our ephemeral secret; wiped once dh is computed */
    uint8_t eph_pk[KEY];                       /* our ephemeral public key */
    uint8_t peer_eph[KEY];                     /* the peer's ephemeral public key */
    uint8_t k_proof_i[KEY];                    /* k_1 */
    uint8_t k_proof_r[KEY];                    /* k_2 */
    uint8_t k_i2r[KEY];                        /* k_3 */
    uint8_t k_r2i[KEY];                        /* k_4 */
    gr_handshake_peer peer;                    /* what the peer said, once its hello is in */
    uint8_t in[REC_MAX];                       /* the message being received, prefix included */
    size_t in_have;                            /* bytes of it so far */
    uint8_t out[2 * REC_MAX];                  /* messages queued for sending */
    size_t out_len;                            /* bytes queued */
    int out_taken;     /* out was handed to the caller; next queue restarts */
    int early_tx;      /* initiator: our tx was handed out by early_tx */
    size_t arena_used; /* bytes of arena used by the current message */
    alignas(max_align_t) uint8_t arena[ARENA_SIZE]; /* protobuf-c allocations */
};

/* ---------------------------------------------------------------- helpers */

static uint64_t now_ms(const gr_handshake *hs)
{
    struct timespec ts;

    if (hs->fixed_clock) {
        return hs->fixed_now;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *arena_alloc(void *data, size_t size)
{
    gr_handshake *hs = data;
    size_t a = ((size ? size : 1) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    void *p;

    if (a < size || a > ARENA_SIZE - hs->arena_used) {
        return NULL; /* protobuf-c then fails the unpack: GR_EBADFRAME */
    }
    p = hs->arena + hs->arena_used;
    hs->arena_used += a;
    return p;
}

static void arena_free(void *data, void *ptr)
{
    (void)data;
    (void)ptr; /* the arena is reset per message */
}

static void wipe_secrets(gr_handshake *hs)
{
    sodium_memzero(hs->cookie_key, sizeof(hs->cookie_key));
    sodium_memzero(hs->observer_key, sizeof(hs->observer_key));
    sodium_memzero(hs->alt, sizeof(hs->alt));
    sodium_memzero(hs->eph_sk, sizeof(hs->eph_sk));
    sodium_memzero(hs->k_proof_i, sizeof(hs->k_proof_i));
    sodium_memzero(hs->k_proof_r, sizeof(hs->k_proof_r));
    sodium_memzero(hs->k_i2r, sizeof(hs->k_i2r));
    sodium_memzero(hs->k_r2i, sizeof(hs->k_r2i));
}

/* Reasons a Reject may carry, both ways. Anything else maps to GR_EREJECTED. */
static int is_reject_reason(int err)
{
    switch (err) {
    case GR_EFRAMETOOBIG:
    case GR_EBADFRAME:
    case GR_EVERSION:
    case GR_EBADNODE:
    case GR_ENAMECLASH:
    case GR_EREPLAY:
    case GR_EBADCOOKIE:
    case GR_ECRYPTO:
    case GR_EBUSY:
    case GR_EROLE:
        return 1;
    default:
        return 0;
    }
}

/* Snapshot of T: the hash of everything absorbed so far; T goes on. */
static void transcript_peek(const gr_handshake *hs, uint8_t out[HASH])
{
    crypto_generichash_state st = hs->transcript;

    crypto_generichash_final(&st, out, HASH);
    sodium_memzero(&st, sizeof(st));
}

/* BLAKE2b-256 keyed with `key` over the current transcript hash. */
static void proof_mac(const gr_handshake *hs, const uint8_t key[KEY], uint8_t out[KEY])
{
    uint8_t h[HASH];

    transcript_peek(hs, h);
    crypto_generichash(out, KEY, h, sizeof(h), key, KEY);
    sodium_memzero(h, sizeof(h));
}

/* Pack `m` as a record at the end of out; absorb it into T if asked. */
static int queue_msg(gr_handshake *hs, const Girder__Handshake *m, int absorb)
{
    size_t n = girder__handshake__get_packed_size(m);
    uint8_t *at;

    if (n == 0 || n > GR_HANDSHAKE_MSG_MAX) {
        return -EINVAL;
    }
    if (hs->out_taken) {
        hs->out_len = 0;
        hs->out_taken = 0;
    }
    if (GR_RECORD_HDR + n > sizeof(hs->out) - hs->out_len) {
        return -ENOBUFS;
    }
    at = hs->out + hs->out_len;
    gr_wire_put_be32(at, (uint32_t)n);
    girder__handshake__pack(m, at + GR_RECORD_HDR);
    if (absorb) {
        crypto_generichash_update(&hs->transcript, at, GR_RECORD_HDR + n);
    }
    hs->out_len += GR_RECORD_HDR + n;
    return 0;
}

static int fail(gr_handshake *hs, int err)
{
    hs->state = ST_FAILED;
    hs->err = err;
    wipe_secrets(hs);
    if (!hs->peer_rejected && is_reject_reason(err)) {
        Girder__Reject rj = GIRDER__REJECT__INIT;
        Girder__Handshake m = GIRDER__HANDSHAKE__INIT;

        rj.reason = (char *)gr_errid(err);
        m.msg_case = GIRDER__HANDSHAKE__MSG_REJECT;
        m.reject = &rj;
        (void)queue_msg(hs, &m, 0); /* best effort: we are closing anyway */
    }
    return err;
}

/* The four keys from one master. */
static void derive_keys(gr_handshake *hs, const uint8_t master[KEY])
{
    crypto_kdf_derive_from_key(hs->k_proof_i, KEY, KDF_PROOF_I, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(hs->k_proof_r, KEY, KDF_PROOF_R, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(hs->k_i2r, KEY, KDF_I2R, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(hs->k_r2i, KEY, KDF_R2I, KDF_CONTEXT, master);
}

/* master = BLAKE2b-256(key = ck, msg = dh || h2) */
static void master_of(const uint8_t ck[KEY], const uint8_t dh[KEY], const uint8_t h2[HASH],
                      uint8_t out[KEY])
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, ck, KEY, KEY);
    crypto_generichash_update(&st, dh, KEY);
    crypto_generichash_update(&st, h2, HASH);
    crypto_generichash_final(&st, out, KEY);
    sodium_memzero(&st, sizeof(st));
}

/* dh, master and the four keys, from T after M2; with accepted cookies, each
 * one's master too (in place of its ck). Wipes what it no longer needs. */
static int derive(gr_handshake *hs)
{
    uint8_t dh[KEY], h2[HASH], master[KEY];
    int r = 0;

    if (crypto_scalarmult(dh, hs->eph_sk, hs->peer_eph) != 0) {
        r = GR_ECRYPTO; /* low-order point: the shared secret would be zero */
        goto out;
    }
    transcript_peek(hs, h2);
    master_of(hs->cookie_key, dh, h2, master);
    derive_keys(hs, master);
    for (size_t i = 0; i < hs->n_alt; i++) {
        master_of(hs->alt[i], dh, h2, master);
        memcpy(hs->alt[i], master, KEY);
    }
out:
    sodium_memzero(dh, sizeof(dh));
    sodium_memzero(h2, sizeof(h2));
    sodium_memzero(master, sizeof(master));
    sodium_memzero(hs->eph_sk, sizeof(hs->eph_sk));
    sodium_memzero(hs->cookie_key, sizeof(hs->cookie_key));
    return r;
}

/* The peer's name: well-formed, not ours, the one dialled if any. */
static int check_peer_name(const gr_handshake *hs, const ProtobufCBinaryData *n)
{
    if (gr_nodename_check((const char *)n->data, n->len) < 0) {
        return GR_EBADNODE;
    }
    if (n->len == hs->name_len && memcmp(n->data, hs->name, n->len) == 0) {
        return GR_ENAMECLASH;
    }
    if (hs->expect_len != 0 &&
        (n->len != hs->expect_len || memcmp(n->data, hs->expect, n->len) != 0)) {
        return GR_EBADNODE;
    }
    return 0;
}

/* Record what the peer said about itself (all checked by the caller). */
static void set_peer(gr_handshake *hs, const ProtobufCBinaryData *name, uint32_t creation,
                     uint32_t version, const gr_limits *lim, uint64_t time_ms)
{
    memcpy(hs->peer.name, name->data, name->len);
    hs->peer.name[name->len] = '\0';
    hs->peer.creation = creation;
    hs->peer.version = version;
    hs->peer.limits = *lim;
    hs->peer.peer_time_ms = time_ms;
    hs->peer.local_time_ms = now_ms(hs);
}

static int peer_limits(uint32_t max_frame, uint32_t max_record, gr_limits *ret_lim)
{
    gr_limits in = {max_frame, max_record};

    return gr_frame_limits_resolve(&in, ret_lim) < 0 ? GR_EBADFRAME : 0;
}

static int is_key(const ProtobufCBinaryData *d)
{
    return d->len == KEY;
}

/* ---------------------------------------------------------------- messages */

static int send_hello(gr_handshake *hs)
{
    Girder__Hello h = GIRDER__HELLO__INIT;
    Girder__Handshake m = GIRDER__HANDSHAKE__INIT;
    Girder__Cipher offer[1];

    h.version_min = hs->version_min;
    h.version_max = hs->version_max;
    h.name.data = (uint8_t *)hs->name;
    h.name.len = hs->name_len;
    h.creation = hs->creation;
    h.hidden = hs->hidden != 0;
    h.ephemeral.data = hs->eph_pk;
    h.ephemeral.len = KEY;
    h.time_ms = now_ms(hs);
    h.max_frame = hs->limits.max_frame;
    h.max_record = hs->limits.max_record;
    if (hs->ciphers & CIPHER_BIT(GR_CIPHER_AES128_OCB)) {
        offer[h.n_ciphers++] = GIRDER__CIPHER__AES128_OCB;
    }
    h.ciphers = offer;
    h.role = (Girder__Role)hs->claim;
    m.msg_case = GIRDER__HANDSHAKE__MSG_HELLO;
    m.hello = &h;
    return queue_msg(hs, &m, 1);
}

static int send_reply(gr_handshake *hs)
{
    Girder__HelloReply h = GIRDER__HELLO_REPLY__INIT;
    Girder__Handshake m = GIRDER__HANDSHAKE__INIT;

    h.version = hs->peer.version;
    h.name.data = (uint8_t *)hs->name;
    h.name.len = hs->name_len;
    h.creation = hs->creation;
    h.ephemeral.data = hs->eph_pk;
    h.ephemeral.len = KEY;
    h.echo.data = hs->peer_eph;
    h.echo.len = KEY;
    h.time_ms = now_ms(hs);
    h.max_frame = hs->limits.max_frame;
    h.max_record = hs->limits.max_record;
    h.cipher = (Girder__Cipher)hs->peer.cipher;
    m.msg_case = GIRDER__HANDSHAKE__MSG_HELLO_REPLY;
    m.hello_reply = &h;
    return queue_msg(hs, &m, 1);
}

/* A Proof echoing the peer's key, with a MAC under `key` over T so far. */
static int send_proof(gr_handshake *hs, const uint8_t key[KEY])
{
    Girder__Proof p = GIRDER__PROOF__INIT;
    Girder__Handshake m = GIRDER__HANDSHAKE__INIT;
    uint8_t mac[KEY];
    int r;

    proof_mac(hs, key, mac);
    p.echo.data = hs->peer_eph;
    p.echo.len = KEY;
    p.mac.data = mac;
    p.mac.len = KEY;
    m.msg_case = GIRDER__HANDSHAKE__MSG_PROOF;
    m.proof = &p;
    r = queue_msg(hs, &m, 1);
    sodium_memzero(mac, sizeof(mac));
    return r;
}

/* Responder: the role M1 claims decides which derived key is ck. */
static int take_role(gr_handshake *hs, const Girder__Hello *h)
{
    switch ((int)h->role) {
    case GR_ROLE_MEMBER:
        break;
    case GR_ROLE_OBSERVER:
        if (!h->hidden || !hs->has_observer) {
            return GR_EROLE; /* never a member; or no observer key here */
        }
        memcpy(hs->cookie_key, hs->observer_key, KEY);
        break;
    default:
        return GR_EROLE;
    }
    if (h->role == GIRDER__ROLE__OBSERVER) {
        sodium_memzero(hs->alt, sizeof(hs->alt)); /* the observer key alone */
        hs->n_alt = 0;
    }
    hs->peer.role = (int)h->role;
    sodium_memzero(hs->observer_key, sizeof(hs->observer_key));
    hs->has_observer = 0;
    return 0;
}

/* Responder, M1 in: check, answer with M2, derive. */
static int on_hello(gr_handshake *hs, const Girder__Hello *h, const uint8_t *rec, size_t rlen)
{
    uint32_t v, lo;
    gr_limits lim;
    int r;

    if (!is_key(&h->ephemeral) || h->version_min == 0 || h->version_min > h->version_max) {
        return GR_EBADFRAME;
    }
    v = h->version_max < hs->version_max ? h->version_max : hs->version_max;
    lo = h->version_min > hs->version_min ? h->version_min : hs->version_min;
    if (v < lo) {
        return GR_EVERSION;
    }
    if ((r = check_peer_name(hs, &h->name)) < 0 ||
        (r = peer_limits(h->max_frame, h->max_record, &lim)) < 0) {
        return r;
    }
    if ((r = take_role(hs, h)) < 0) {
        return r;
    }
    set_peer(hs, &h->name, h->creation, v, &lim, h->time_ms);
    hs->peer.hidden = h->hidden;
    hs->peer.cipher = GR_CIPHER_CHACHA20_POLY1305;
    for (size_t i = 0; i < h->n_ciphers; i++) {
        /* one cipher besides ChaCha20 today: offered and ours means chosen */
        if (h->ciphers[i] == GIRDER__CIPHER__AES128_OCB &&
            (hs->ciphers & CIPHER_BIT(GR_CIPHER_AES128_OCB))) {
            hs->peer.cipher = GR_CIPHER_AES128_OCB;
        }
    }
    memcpy(hs->peer_eph, h->ephemeral.data, KEY);
    crypto_generichash_update(&hs->transcript, rec, rlen);
    if ((r = send_reply(hs)) < 0 || (r = derive(hs)) < 0) {
        return r;
    }
    hs->state = ST_WAIT_PROOF;
    return 0;
}

/* Initiator, M2 in: check, derive, prove with M3. */
static int on_reply(gr_handshake *hs, const Girder__HelloReply *h, const uint8_t *rec, size_t rlen)
{
    gr_limits lim;
    int r;

    if (!is_key(&h->ephemeral) || !is_key(&h->echo)) {
        return GR_EBADFRAME;
    }
    if (sodium_memcmp(h->echo.data, hs->eph_pk, KEY) != 0) {
        return GR_EREPLAY;
    }
    if (h->version < hs->version_min || h->version > hs->version_max) {
        return GR_EVERSION;
    }
    if (h->cipher != GIRDER__CIPHER__CHACHA20_POLY1305 &&
        ((unsigned)h->cipher >= 32 || !(hs->ciphers & CIPHER_BIT((unsigned)h->cipher)))) {
        return GR_EBADFRAME; /* a cipher we did not offer */
    }
    if ((r = check_peer_name(hs, &h->name)) < 0 ||
        (r = peer_limits(h->max_frame, h->max_record, &lim)) < 0) {
        return r;
    }
    set_peer(hs, &h->name, h->creation, h->version, &lim, h->time_ms);
    hs->peer.cipher = (uint32_t)h->cipher;
    memcpy(hs->peer_eph, h->ephemeral.data, KEY);
    crypto_generichash_update(&hs->transcript, rec, rlen);
    if ((r = derive(hs)) < 0 || (r = send_proof(hs, hs->k_proof_i)) < 0) {
        return r;
    }
    hs->state = ST_WAIT_PROOF;
    return 0;
}

/* Responder with accepted cookies, M3's MAC failed under the cookie's keys:
 * check it under every accepted cookie's (all of them, constant time each)
 * and, unless `have` (the cookie matched), take the keys of the one that
 * matched. 1 (a candidate matched) or 0. */
static int match_alt(gr_handshake *hs, const uint8_t *theirs, int have)
{
    uint8_t k[KEY], mac[KEY];
    int hit = -1;

    for (size_t i = 0; i < hs->n_alt; i++) {
        crypto_kdf_derive_from_key(k, KEY, KDF_PROOF_I, KDF_CONTEXT, hs->alt[i]);
        proof_mac(hs, k, mac);
        if (crypto_verify_32(mac, theirs) == 0 && hit < 0) {
            hit = (int)i;
        }
    }
    sodium_memzero(k, sizeof(k));
    sodium_memzero(mac, sizeof(mac));
    if (hit < 0) {
        return 0;
    }
    if (!have) {
        derive_keys(hs, hs->alt[hit]);
    }
    return 1;
}

/* M3 (responder) or M4 (initiator) in: check echo then MAC; responder answers M4. */
static int on_proof(gr_handshake *hs, const Girder__Proof *p, const uint8_t *rec, size_t rlen)
{
    const uint8_t *key = hs->role == GR_HANDSHAKE_RESPONDER ? hs->k_proof_i : hs->k_proof_r;
    uint8_t mac[KEY];
    int ok, r;

    if (!is_key(&p->echo) || !is_key(&p->mac)) {
        return GR_EBADFRAME;
    }
    if (sodium_memcmp(p->echo.data, hs->eph_pk, KEY) != 0) {
        return GR_EREPLAY;
    }
    proof_mac(hs, key, mac);
    ok = crypto_verify_32(mac, p->mac.data) == 0;
    sodium_memzero(mac, sizeof(mac));
    if (hs->n_alt > 0 && hs->role == GR_HANDSHAKE_RESPONDER) {
        /* every candidate is checked whether the cookie matched or not */
        ok = match_alt(hs, p->mac.data, ok) || ok;
        sodium_memzero(hs->alt, sizeof(hs->alt));
        hs->n_alt = 0;
    }
    if (!ok) {
        return GR_EBADCOOKIE;
    }
    crypto_generichash_update(&hs->transcript, rec, rlen);
    if (hs->role == GR_HANDSHAKE_RESPONDER && (r = send_proof(hs, hs->k_proof_r)) < 0) {
        return r;
    }
    hs->state = ST_DONE;
    return 0;
}

static int on_reject(gr_handshake *hs, const Girder__Reject *rj)
{
    int code = gr_err_from_id(rj->reason, strlen(rj->reason));

    hs->peer_rejected = 1;
    return is_reject_reason(code) ? code : GR_EREJECTED;
}

/* One whole message rec[0..rlen) (prefix included) is in `in`: act on it. */
static int process(gr_handshake *hs, const uint8_t *rec, size_t rlen)
{
    ProtobufCAllocator a = {arena_alloc, arena_free, hs};
    Girder__Handshake *m;

    hs->arena_used = 0;
    m = girder__handshake__unpack(&a, rlen - GR_RECORD_HDR, rec + GR_RECORD_HDR);
    if (m == NULL || m->msg_case == GIRDER__HANDSHAKE__MSG__NOT_SET) {
        return GR_EBADFRAME;
    }
    if (m->msg_case == GIRDER__HANDSHAKE__MSG_REJECT) {
        return on_reject(hs, m->reject);
    }
    if (hs->state == ST_WAIT_HELLO && m->msg_case == GIRDER__HANDSHAKE__MSG_HELLO) {
        return on_hello(hs, m->hello, rec, rlen);
    }
    if (hs->state == ST_WAIT_REPLY && m->msg_case == GIRDER__HANDSHAKE__MSG_HELLO_REPLY) {
        return on_reply(hs, m->hello_reply, rec, rlen);
    }
    if (hs->state == ST_WAIT_PROOF && m->msg_case == GIRDER__HANDSHAKE__MSG_PROOF) {
        return on_proof(hs, m->proof, rec, rlen);
    }
    return GR_EREPLAY; /* a real message, at the wrong time */
}

/* ---------------------------------------------------------------- public */

static int bad_secret(const gr_cookie *c)
{
    return c == NULL || c->len == 0 || c->len > GR_COOKIE_MAX;
}

static int check_config(const gr_handshake_config *cfg, int role)
{
    int observer;

    if (cfg == NULL || cfg->name == NULL) {
        return -EINVAL;
    }
    if (role != GR_HANDSHAKE_INITIATOR && role != GR_HANDSHAKE_RESPONDER) {
        return -EINVAL;
    }
    observer = role == GR_HANDSHAKE_INITIATOR && cfg->role == GR_ROLE_OBSERVER;
    if (role == GR_HANDSHAKE_INITIATOR && cfg->role != GR_ROLE_MEMBER && !observer) {
        return -EINVAL;
    }
    if (observer ? (bad_secret(cfg->observer_key) || !cfg->hidden) : bad_secret(cfg->cookie)) {
        return -EINVAL;
    }
    if (role == GR_HANDSHAKE_RESPONDER && cfg->observer_key != NULL &&
        bad_secret(cfg->observer_key)) {
        return -EINVAL;
    }
    if (cfg->n_accept > GR_HANDSHAKE_ACCEPT_MAX || (cfg->n_accept > 0 && cfg->accept == NULL)) {
        return -EINVAL;
    }
    for (size_t i = 0; i < cfg->n_accept; i++) {
        if (bad_secret(&cfg->accept[i])) {
            return -EINVAL;
        }
    }
    if (gr_nodename_check(cfg->name, strlen(cfg->name)) < 0) {
        return GR_EBADNODE;
    }
    if (cfg->expect_peer != NULL &&
        gr_nodename_check(cfg->expect_peer, strlen(cfg->expect_peer)) < 0) {
        return GR_EBADNODE;
    }
    if (cfg->ciphers & ~CIPHERS_KNOWN) {
        return -EINVAL;
    }
    return 0;
}

static int create(const gr_handshake_config *cfg, int role, const uint8_t *eph_sk, int fixed_clock,
                  uint64_t now, gr_handshake **ret_hs)
{
    uint32_t vmin, vmax;
    gr_limits lim;
    gr_handshake *hs;
    size_t size = (sizeof(*hs) + 63) & ~(size_t)63;
    int r;

    if ((r = check_config(cfg, role)) < 0) {
        return r;
    }
    vmin = cfg->version_min ? cfg->version_min : GR_PROTO_VERSION;
    vmax = cfg->version_max ? cfg->version_max : GR_PROTO_VERSION;
    if (vmin > vmax || gr_frame_limits_resolve(&cfg->limits, &lim) < 0) {
        return -EINVAL;
    }
    if (sodium_init() < 0) {
        return -ENOSYS;
    }
    if ((hs = aligned_alloc(64, size)) == NULL) {
        return -ENOMEM;
    }
    memset(hs, 0, sizeof(*hs));
    hs->role = role;
    hs->version_min = vmin;
    hs->version_max = vmax;
    hs->creation = cfg->creation;
    hs->hidden = role == GR_HANDSHAKE_INITIATOR && cfg->hidden;
    if (cfg->ciphers & CIPHER_BIT(GR_CIPHER_AES128_OCB) &&
        gr_record_cipher_fast(GR_CIPHER_AES128_OCB)) {
        hs->ciphers |= CIPHER_BIT(GR_CIPHER_AES128_OCB);
    }
    hs->limits = lim;
    hs->name_len = strlen(cfg->name);
    memcpy(hs->name, cfg->name, hs->name_len);
    if (role == GR_HANDSHAKE_INITIATOR && cfg->expect_peer != NULL) {
        hs->expect_len = strlen(cfg->expect_peer);
        memcpy(hs->expect, cfg->expect_peer, hs->expect_len);
    }
    hs->fixed_clock = fixed_clock;
    hs->fixed_now = now;
    if (role == GR_HANDSHAKE_INITIATOR && cfg->role == GR_ROLE_OBSERVER) {
        hs->claim = GR_ROLE_OBSERVER;
        hs->peer.role = GR_ROLE_OBSERVER;
        crypto_generichash(hs->cookie_key, KEY, cfg->observer_key->bytes, cfg->observer_key->len,
                           (const uint8_t *)OBSERVER_KEY_LABEL, sizeof(OBSERVER_KEY_LABEL) - 1);
    } else {
        crypto_generichash(hs->cookie_key, KEY, cfg->cookie->bytes, cfg->cookie->len,
                           (const uint8_t *)COOKIE_KEY_LABEL, sizeof(COOKIE_KEY_LABEL) - 1);
    }
    if (role == GR_HANDSHAKE_RESPONDER && cfg->observer_key != NULL) {
        hs->has_observer = 1;
        crypto_generichash(hs->observer_key, KEY, cfg->observer_key->bytes, cfg->observer_key->len,
                           (const uint8_t *)OBSERVER_KEY_LABEL, sizeof(OBSERVER_KEY_LABEL) - 1);
    }
    for (size_t i = 0; role == GR_HANDSHAKE_RESPONDER && i < cfg->n_accept; i++) {
        crypto_generichash(hs->alt[i], KEY, cfg->accept[i].bytes, cfg->accept[i].len,
                           (const uint8_t *)COOKIE_KEY_LABEL, sizeof(COOKIE_KEY_LABEL) - 1);
        hs->n_alt++;
    }
    if (eph_sk != NULL) {
        memcpy(hs->eph_sk, eph_sk, KEY);
    } else {
        randombytes_buf(hs->eph_sk, KEY);
    }
    crypto_scalarmult_base(hs->eph_pk, hs->eph_sk);
    crypto_generichash_init(&hs->transcript, NULL, 0, HASH);
    crypto_generichash_update(&hs->transcript, (const uint8_t *)TRANSCRIPT_LABEL,
                              sizeof(TRANSCRIPT_LABEL) - 1);
    hs->state = role == GR_HANDSHAKE_INITIATOR ? ST_WAIT_REPLY : ST_WAIT_HELLO;
    if (role == GR_HANDSHAKE_INITIATOR && (r = send_hello(hs)) < 0) {
        gr_handshake_free(hs);
        return r;
    }
    *ret_hs = hs;
    return 0;
}

int gr_handshake_new(const gr_handshake_config *cfg, int role, gr_handshake **ret_hs)
{
    return create(cfg, role, NULL, 0, 0, ret_hs);
}

int gr_handshake_new_fixed(const gr_handshake_config *cfg, int role, const uint8_t eph_sk[32],
                           uint64_t now_ms, gr_handshake **ret_hs)
{
    return create(cfg, role, eph_sk, 1, now_ms, ret_hs);
}

void gr_handshake_free(gr_handshake *hs)
{
    if (hs == NULL) {
        return;
    }
    sodium_memzero(hs, sizeof(*hs));
    free(hs);
}

int gr_handshake_feed(gr_handshake *hs, const void *data, size_t len, size_t *ret_used)
{
    const uint8_t *p = data;
    size_t used = 0, n, want;
    int r;

    if (hs->state == ST_FAILED) {
        return hs->err;
    }
    if (hs->state == ST_DONE || hs->state == ST_FINISHED) {
        *ret_used = 0;
        return 1;
    }
    while (hs->in_have < GR_RECORD_HDR && used < len) {
        hs->in[hs->in_have++] = p[used++];
    }
    if (hs->in_have < GR_RECORD_HDR) {
        *ret_used = used;
        return 0;
    }
    n = gr_wire_get_be32(hs->in);
    if (n > GR_HANDSHAKE_MSG_MAX) {
        return fail(hs, GR_EFRAMETOOBIG);
    }
    if (n == 0) {
        return fail(hs, GR_EBADFRAME);
    }
    want = GR_RECORD_HDR + n - hs->in_have;
    if (want > len - used) {
        want = len - used;
    }
    memcpy(hs->in + hs->in_have, p + used, want);
    hs->in_have += want;
    used += want;
    if (hs->in_have < GR_RECORD_HDR + n) {
        *ret_used = used;
        return 0;
    }
    hs->in_have = 0;
    if ((r = process(hs, hs->in, GR_RECORD_HDR + n)) < 0) {
        return fail(hs, r);
    }
    *ret_used = used;
    return hs->state == ST_DONE;
}

size_t gr_handshake_output(gr_handshake *hs, const uint8_t **ret_buf)
{
    if (hs->out_taken || hs->out_len == 0) {
        return 0;
    }
    hs->out_taken = 1;
    *ret_buf = hs->out;
    return hs->out_len;
}

int gr_handshake_peer_rejected(const gr_handshake *hs)
{
    return hs->peer_rejected;
}

const char *gr_handshake_claimed_name(const gr_handshake *hs)
{
    return hs->peer.name[0] != '\0' ? hs->peer.name : NULL;
}

int gr_handshake_reject_record(int reason, uint8_t *buf, size_t cap)
{
    Girder__Reject rj = GIRDER__REJECT__INIT;
    Girder__Handshake m = GIRDER__HANDSHAKE__INIT;
    size_t n;

    if (!is_reject_reason(reason)) {
        return -EINVAL;
    }
    rj.reason = (char *)gr_errid(reason);
    m.msg_case = GIRDER__HANDSHAKE__MSG_REJECT;
    m.reject = &rj;
    n = girder__handshake__get_packed_size(&m);
    if (GR_RECORD_HDR + n > cap) {
        return -ENOBUFS;
    }
    gr_wire_put_be32(buf, (uint32_t)n);
    girder__handshake__pack(&m, buf + GR_RECORD_HDR);
    return (int)(GR_RECORD_HDR + n);
}

int gr_handshake_early_tx(gr_handshake *hs, gr_handshake_peer *ret_peer, gr_record_tx **ret_tx)
{
    gr_record_tx *tx = NULL;
    int r;

    /* ST_WAIT_PROOF for the initiator: M2 is in, keys derived, M3 queued */
    if (hs->role != GR_HANDSHAKE_INITIATOR || hs->early_tx ||
        (hs->state != ST_WAIT_PROOF && hs->state != ST_DONE)) {
        return -EINVAL;
    }
    if ((r = gr_record_tx_new((int)hs->peer.cipher, hs->k_i2r, &tx)) < 0) {
        return r;
    }
    hs->early_tx = 1;
    *ret_peer = hs->peer;
    *ret_tx = tx;
    return 0;
}

int gr_handshake_finish(gr_handshake *hs, gr_handshake_peer *ret_peer, gr_record_tx **ret_tx,
                        gr_record_rx **ret_rx)
{
    int init = hs->role == GR_HANDSHAKE_INITIATOR;
    gr_record_tx *tx = NULL;
    gr_record_rx *rx = NULL;
    int r;

    if (hs->state != ST_DONE) {
        return -EINVAL;
    }
    /* after early_tx the caller holds our direction already: a second tx with
     * the same key would reuse its nonces */
    if (!hs->early_tx &&
        (r = gr_record_tx_new((int)hs->peer.cipher, init ? hs->k_i2r : hs->k_r2i, &tx)) < 0) {
        return r;
    }
    if ((r = gr_record_rx_new((int)hs->peer.cipher, init ? hs->k_r2i : hs->k_i2r, &hs->limits,
                              &rx)) < 0) {
        gr_record_tx_free(tx);
        return r;
    }
    wipe_secrets(hs);
    hs->state = ST_FINISHED;
    *ret_peer = hs->peer;
    *ret_tx = tx;
    *ret_rx = rx;
    return 0;
}

void gr_handshake_transcript(const gr_handshake *hs, uint8_t out[64])
{
    transcript_peek(hs, out);
}
