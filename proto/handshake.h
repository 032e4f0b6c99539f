/* SPDX-License-Identifier: Apache-2.0 */
/*
 * handshake.h - authenticating a new connection and deriving its keys.
 *
 * Four plaintext messages, each a record of its own:
 *
 *   OFFSET  SIZE  DESCRIPTION
 *   0       4     N, unsigned big-endian, 1 <= N <= GR_HANDSHAKE_MSG_MAX
 *   4       N     girder.Handshake, protobuf encoding
 *
 *   M1 initiator -> responder  Hello       versions, name, hidden, ephemeral key
 *   M2 responder -> initiator  HelloReply  chosen version, name, ephemeral key, echo
 *   M3 initiator -> responder  Proof       echo, MAC proving the cookie
 *   M4 responder -> initiator  Proof       echo, MAC proving the cookie
 *
 * Both sides prove the cookie without sending it, bound to a BLAKE2b transcript
 * of every handshake byte (names, versions, both fresh X25519 keys), then use one
 * key per direction (record.h). The initiator proves first, so an unauthenticated
 * client learns nothing it could test cookie guesses against. Derivation step by
 * step: docs/protocol.md, "Handshake". A side that fails queues a Reject with the
 * reason, which the caller sends (best effort) before closing.
 *
 * Driving it (the caller owns the socket and the timeout):
 *   gr_handshake_new      (initiator: M1 is queued at once)
 *   loop: send gr_handshake_output(); feed received bytes to gr_handshake_feed
 *         until it returns 1 (done) or < 0 (send the output, log, close)
 *   send gr_handshake_output() once more (the responder's M4), then
 *   gr_handshake_finish -> peer identity and the two record halves;
 *   bytes left over after the last message belong to gr_record_feed.
 * Or, as an initiator with early records: once the feed that absorbed M2 has
 *   queued M3, take M3 from gr_handshake_output (copy it: it is valid until
 *   the next feed), gr_handshake_early_tx -> the sending half, seal the first
 *   records and send M3 and them in one write; then feed until 1 (M4 verified)
 *   and gr_handshake_finish -> the receiving half only (*ret_tx NULL).
 *
 * Early records (docs/protocol.md "Early records") take the initiator's first
 * records from the third round trip to the second: keyed from the cookie like
 * every record, they tell a responder without the cookie nothing M3 does not.
 * The initiator still accepts nothing from the responder before feed returned
 * 1; the responder needs no change: it verifies M3 before it reads the bytes
 * after it as records.
 *
 * Nothing is allocated per unauthenticated peer but the fixed-size state of
 * gr_handshake_new; messages are size-checked before they are parsed, and are
 * parsed in an arena inside that state. Threading: one thread per handshake.
 */
#ifndef GR_HANDSHAKE_H
#define GR_HANDSHAKE_H

#include "proto/cookie.h"
#include "proto/frame.h"
#include "proto/nodename.h"
#include "proto/record.h"

#include <stddef.h>
#include <stdint.h>

#define GR_PROTO_VERSION 1        /* the protocol version this code speaks */
#define GR_HANDSHAKE_MSG_MAX 1024 /* largest handshake message body */
#define GR_HANDSHAKE_ACCEPT_MAX 4 /* further cookies a responder may accept (rotation) */

/* What a connection may do (docs/protocol.md, "Roles"): the initiator claims
 * it in M1 and proves it with the role's key; M1 is in the transcript. */
enum {
    GR_ROLE_MEMBER = 0,   /* the cluster cookie: full rights, nodes and CLI */
    GR_ROLE_OBSERVER = 1, /* the observer key: a hidden client that may only read */
};

enum {
    GR_HANDSHAKE_INITIATOR = 1, /* dialled out: sends M1 and M3 */
    GR_HANDSHAKE_RESPONDER = 2, /* accepted: sends M2 and M4 */
};

/* What a side says about itself. Everything is copied by gr_handshake_new. */
typedef struct gr_handshake_config {
    const char *name;              /* our node name, "name@host", NUL-terminated */
    const gr_cookie *cookie;       /* the cluster secret; only a derived key is kept.
                                    * May be NULL for an initiator with role observer */
    const gr_cookie *accept;       /* responder: n_accept further cookies a member
                                    * may prove instead of `cookie` (cookie
                                    * rotation, docs/operations.md); initiators
                                    * ignore them and prove `cookie`. Only derived
                                    * keys are kept */
    size_t n_accept;               /* 0..GR_HANDSHAKE_ACCEPT_MAX */
    const gr_cookie *observer_key; /* responder: the observer key accepted (NULL:
                                    * observers refused, GR_EROLE); initiator with
                                    * role observer: the key proven. Only a
                                    * derived key is kept */
    int role;                      /* initiator: GR_ROLE_x claimed; observer needs
                                    * hidden and observer_key. Responder: unused */
    uint32_t creation;             /* our incarnation, told to the peer */
    int hidden;                    /* initiator: connect as a client, never a member */
    const char *expect_peer;       /* initiator: the node name dialled, or NULL for any */
    gr_limits limits;              /* what we accept (zero fields: defaults); advertised */
    uint32_t version_min;          /* lowest version we speak; 0: GR_PROTO_VERSION */
    uint32_t version_max;          /* highest version we speak; 0: GR_PROTO_VERSION */
    uint32_t ciphers;              /* record ciphers we accept besides ChaCha20-Poly1305, a
                                    * bit (1u << GR_CIPHER_x) each; those this build or
                                    * CPU does not run fast (gr_record_cipher_fast) are
                                    * left out. 0: ChaCha20-Poly1305 only */
} gr_handshake_config;

/* What the peer proved and said, from gr_handshake_finish. No secrets. */
typedef struct gr_handshake_peer {
    char name[GR_NODENAME_MAX + 1]; /* peer node name, NUL-terminated, checked */
    uint32_t creation;              /* peer incarnation */
    int hidden;                     /* peer is a hidden client (responder side only) */
    int role;                       /* the role the peer proved, GR_ROLE_x (responder
                                     * side; an initiator sees its own claim) */
    uint32_t version;               /* negotiated protocol version */
    uint32_t cipher;                /* the records' cipher, GR_CIPHER_x (record.h) */
    gr_limits limits;               /* peer's receive limits: size batches with these */
    uint64_t peer_time_ms;          /* peer wall clock in its hello (ms since epoch) */
    uint64_t local_time_ms;         /* our wall clock when that hello arrived */
} gr_handshake_peer;

/* Handshake state: fixed size, opaque. */
typedef struct gr_handshake gr_handshake;

/* Start a handshake as `role`. Checks the config (-EINVAL: bad role, versions,
 * limits or cipher bits or role, no cookie (or observer key), more than
 * GR_HANDSHAKE_ACCEPT_MAX accepted cookies or an empty one; GR_EBADNODE: bad name or expect_peer)
 * before allocating one fixed-size state. The initiator's M1 is queued for gr_handshake_output.
 * Returns 0, an error above, -ENOMEM, or -ENOSYS if libsodium cannot start. */
int gr_handshake_new(const gr_handshake_config *cfg, int role, gr_handshake **ret_hs);

/* Wipe all secrets and free. NULL-safe. */
void gr_handshake_free(gr_handshake *hs);

/* Feed bytes received from the peer. Consumes at most one handshake message per
 * call and sets *ret_used to the bytes taken: call again with the rest. Returns
 * 0 (more needed), 1 (handshake complete: later bytes are records), or an error:
 *   GR_EFRAMETOOBIG  a message longer than GR_HANDSHAKE_MSG_MAX (checked first)
 *   GR_EBADFRAME     empty or undecodable message, wrong field sizes, a
 *                    cipher chosen that we did not offer
 *   GR_EVERSION      no common protocol version
 *   GR_EBADNODE      malformed peer name, or not the expect_peer we dialled
 *   GR_ENAMECLASH    the peer claims our own name
 *   GR_EREPLAY       a message out of order, or one that echoes a key that is
 *                    not ours (recorded in another handshake)
 *   GR_EBADCOOKIE    the peer's proof is wrong: a different cookie (or
 *                    observer key, or a role changed on the way); a
 *                    responder with accepted cookies refuses a proof that
 *                    matches none of them (each is compared in constant
 *                    time, all of them every time)
 *   GR_EROLE         responder: an unknown role, an observer that is not
 *                    hidden, or an observer while no observer key is set
 *   GR_ECRYPTO       the peer's key is degenerate
 *   GR_EBUSY         the peer sent a Reject "busy": it refused the connection
 *                    for load (too many handshakes in progress), not for
 *                    anything about us; retry later
 *   GR_EREJECTED     the peer sent a Reject with a reason this version does not
 *                    know; a known reason maps to its own code above
 *   -ENOBUFS         output was not taken between calls
 * Errors are sticky. After an error other than a received Reject, a Reject
 * naming the reason is queued: send gr_handshake_output, then close. */
int gr_handshake_feed(gr_handshake *hs, const void *data, size_t len, size_t *ret_used);

/* Bytes to send now: sets *ret_buf and returns their length (0: nothing). The
 * bytes are taken: they stay valid until the next feed or free, and are not
 * returned again. */
size_t gr_handshake_output(gr_handshake *hs, const uint8_t **ret_buf);

/* Did the handshake fail because the peer sent a Reject? 1 or 0 (for the log:
 * "rejected by peer: bad_cookie" versus "rejected peer: bad_cookie"). */
int gr_handshake_peer_rejected(const gr_handshake *hs);

/* The node name the peer gave in its hello (M1 for a responder, M2 for an
 * initiator) once that hello passed its checks, else NULL. Not proven until
 * the handshake is done: for logs ("handshake with b@host (unverified)").
 * Valid until gr_handshake_free. */
const char *gr_handshake_claimed_name(const gr_handshake *hs);

/* Write a standalone Reject record (length prefix and Handshake{reject}) with
 * reason `reason` into buf[0..cap), without any handshake state: what a node
 * sends to a connection it refuses before spending a handshake on it
 * (GR_EBUSY). reason must be one a Reject may carry (the gr_handshake_feed
 * errors above, or GR_EBUSY). Returns the record's length, -EINVAL or
 * -ENOBUFS. Pure. */
int gr_handshake_reject_record(int reason, uint8_t *buf, size_t cap);

/* Initiator, after the feed that absorbed M2 (M3 is queued) and before finish:
 * fill *ret_peer with what the responder said in M2 (name, creation, version,
 * limits, times: not proven until M4 is verified) and make the record half for
 * our direction (initiator -> responder key), whose records may follow M3 on
 * the wire at once. Once per handshake: finish then returns no tx. Returns 0,
 * -EINVAL (a responder, M2 not absorbed yet, failed, finished, or taken
 * already) or -ENOMEM (nothing is taken; may be called again). */
int gr_handshake_early_tx(gr_handshake *hs, gr_handshake_peer *ret_peer, gr_record_tx **ret_tx);

/* After feed returned 1: fill *ret_peer and make the two record halves, keyed
 * for our direction (ret_tx) and the peer's (ret_rx, with our limits), then wipe
 * every key in hs. If gr_handshake_early_tx handed out our direction already,
 * *ret_tx is set to NULL instead (the caller keeps sealing with the early tx,
 * its record counter running on). Returns 0, -EINVAL if the handshake is not
 * complete or was finished already, -ENOMEM (nothing is returned, hs stays
 * finishable). */
int gr_handshake_finish(gr_handshake *hs, gr_handshake_peer *ret_peer, gr_record_tx **ret_tx,
                        gr_record_rx **ret_rx);

#endif
